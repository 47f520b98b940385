"""Annotate stages: compute signals into keyed tables without filtering anything, and the catalogue of them.

`STAGES` maps a stage name (also its table's name) to its class; the CLI, the YAML config and the
error that tells a user which stage makes a missing column all read it.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from mmcurate.annotate.alignment import ImageAlignment, PairScores
from mmcurate.annotate.clusters import Clusters, ClusterSummary
from mmcurate.annotate.embeddings import ImageEmbeddings, SampleEmbeddings, TextEmbeddings
from mmcurate.annotate.heads import AestheticScores, NsfwScores
from mmcurate.annotate.image_scores import ImageQR, ImageScores
from mmcurate.annotate.perplexity import DocumentPerplexity, TextPerplexity
from mmcurate.annotate.quality import QualityScores
from mmcurate.annotate.rewrite import Rewrites
from mmcurate.annotate.text_tokens import TextTokenCounts
from mmcurate.annotate.text_scores import (
    DocumentScores,
    ParagraphScores,
    ParagraphWebQualityScores,
    SampleCounts,
    WebQualityScores,
)
from mmcurate.dedup.exact import (
    DocumentDuplicates,
    DocumentParagraphDuplicates,
    ImageCopies,
    ParagraphDuplicates,
    SampleImageDuplicates,
)
from mmcurate.dedup.minhash import NearDuplicateDocuments
from mmcurate.dedup.phash import NearDuplicateImages
from mmcurate.dedup.semantic import SemanticDuplicates
from mmcurate.stage import Stage

STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (
    ImageScores, ImageQR, SampleCounts, DocumentScores, ParagraphScores, WebQualityScores, ParagraphWebQualityScores,
    ImageCopies, SampleImageDuplicates, DocumentDuplicates, ParagraphDuplicates, DocumentParagraphDuplicates,
    NearDuplicateDocuments, NearDuplicateImages,
    ImageEmbeddings, TextEmbeddings, SampleEmbeddings, SemanticDuplicates, Clusters, ClusterSummary,
    PairScores, ImageAlignment,
    AestheticScores, NsfwScores, TextPerplexity, DocumentPerplexity, QualityScores, Rewrites,
    TextTokenCounts,
)}
"""Every catalogued stage by name; a stage that reads another stage's table comes after it."""


def build_stage(spec: str | Mapping[str, Any]) -> Stage:
    """A stage from its name, or from a config mapping `{stage: name, <parameter>: value, ...}`.

    >>> build_stage("image_scores"); build_stage({"stage": "image_scores", "batch_size": 32})
    """
    if isinstance(spec, str):
        spec = {"stage": spec}
    if not isinstance(spec, Mapping) or "stage" not in spec:
        raise ValueError(f"a stage is a name or a mapping with a 'stage' key, got {spec!r}")
    name, params = spec["stage"], {k: v for k, v in spec.items() if k != "stage"}
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known stages: {sorted(STAGES)}")
    try:
        return STAGES[name](**params)
    except TypeError as e:
        raise ValueError(f"stage {name!r}: {e}") from e


def default_stages() -> list[Stage]:
    """The stages that run with no configuration: no required parameter (a model path), and every table they
    read made by the lakehouse or by another such stage."""
    ready: dict[str, Stage] = {}
    for name, cls in STAGES.items():  # inputs come first in the catalogue
        reads = (cls.input, *cls.joins)
        if not cls.needs_parameters() and all(t in ("items", "images") or t in ready for t in reads):
            ready[name] = cls()
    return list(ready.values())


def stage_for_column(column: str, key: Optional[tuple[str, ...]] = None) -> Optional[type[Stage]]:
    """The catalogued stage whose table has `column` (among stages keyed by `key`, when given), else None."""
    for cls in STAGES.values():
        if (key is None or cls.key == key) and column in cls.schema.fieldNames() and column not in cls.key:
            return cls
    return None
