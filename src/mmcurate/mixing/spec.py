"""The `Mix` spec: which curated samples train and how often, written in YAML like a recipe.

>>> mix = Mix.from_yaml("balanced")             # a packaged mix, or a path
>>> mix.kinds                                   # {"text_only": 1.0, "multimodal": 3.0}

See docs/mixing.md for every key; `Mix.from_dict` checks them all and names what is wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from mmcurate.mixing.tokens import ImageTokens, TextTokens
from mmcurate.packaged import load_spec, packaged_names

KINDS = ("text_only", "caption", "interleaved")
"""Sample kinds: no image; one image and at most one text; images with more text (or several images)."""
KIND_GROUPS = {"text_only": ("text_only",), "multimodal": ("caption", "interleaved"),
               "caption": ("caption",), "interleaved": ("interleaved",)}
"""The names a mix's `kinds` shares may use, and the kinds each covers."""
SHARE_BY = ("samples", "tokens")
OVER_SEQUENCE = ("split", "drop")
SEQUENCE_COUNTS = ("all", "image")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MixError(ValueError):
    """A mix spec is malformed."""


@dataclass(frozen=True)
class Weighted:
    """Weights by the value of a sample-level SQL `expression`: `weights` maps a value (as a string) to a
    weight, `default` for values not listed (and null); `keep` (if given) lists the only values kept."""

    expression: str
    weights: Mapping[str, float] = field(default_factory=dict)
    default: float = 1.0
    keep: Optional[tuple[str, ...]] = None
    cap: Optional[int] = None


@dataclass(frozen=True)
class Repeats:
    """Epochs per sample from a sample-level SQL `expression` over the signal tables, clipped to [0, `max`];
    null means 1."""

    expression: str
    max: float = 4.0


@dataclass(frozen=True)
class Sequence:
    """A per-sequence token limit: documents whose tokens (`count`: all, or image tokens only) exceed
    `max_tokens` are `split` at item boundaries into parts that fit, or dropped."""

    max_tokens: int
    over: str = "split"
    count: str = "all"


@dataclass(frozen=True)
class Mix:
    """A named, versioned mix over a curated items table; `mmcurate.steps.mix` applies it.

    tables: (name, key) of tables its expressions read whose key no annotate stage recorded.
    """

    name: str
    version: str
    description: str = ""
    table: str = "curated_items"
    seed: int = 0
    share_by: str = "samples"
    kinds: Mapping[str, float] = field(default_factory=dict)
    sources: Optional[Weighted] = None
    deciles: Optional[Weighted] = None
    clusters: Optional[Weighted] = None
    repeats: Optional[Repeats] = None
    text_tokens: TextTokens = TextTokens()
    image_tokens: ImageTokens = ImageTokens()
    sequence: Optional[Sequence] = None
    budget_tokens: Optional[int] = None
    budget_samples: Optional[int] = None
    tables: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise MixError(f"a mix's name must be an identifier, got {self.name!r}")
        if not isinstance(self.version, str) or not self.version:
            raise MixError(f"mix {self.name!r}: version must be a non-empty string (quote it in YAML)")
        if self.share_by not in SHARE_BY:
            raise MixError(f"mix {self.name!r}: share_by must be one of {SHARE_BY}, got {self.share_by!r}")
        unknown = sorted(set(self.kinds) - set(KIND_GROUPS))
        if unknown:
            raise MixError(f"mix {self.name!r}: unknown kinds {unknown}; use {sorted(KIND_GROUPS)}")
        covered = [kind for group in self.kinds for kind in KIND_GROUPS[group]]
        if len(covered) != len(set(covered)):
            raise MixError(f"mix {self.name!r}: kinds {sorted(self.kinds)} overlap (multimodal = caption + interleaved)")
        if any(not isinstance(v, (int, float)) or v < 0 for v in self.kinds.values()) or (
                self.kinds and not sum(self.kinds.values()) > 0):
            raise MixError(f"mix {self.name!r}: kinds shares must be numbers >= 0, not all 0, got {dict(self.kinds)}")
        for what, weighted in (("sources", self.sources), ("deciles", self.deciles), ("clusters", self.clusters)):
            if weighted is None:
                continue
            if any(not isinstance(v, (int, float)) or v < 0 for v in [*weighted.weights.values(), weighted.default]):
                raise MixError(f"mix {self.name!r}: {what} weights must be numbers >= 0")
            if weighted.cap is not None and (not isinstance(weighted.cap, int) or weighted.cap < 0):
                raise MixError(f"mix {self.name!r}: {what} cap must be an integer >= 0, got {weighted.cap!r}")
        if self.repeats is not None and not self.repeats.max > 0:
            raise MixError(f"mix {self.name!r}: repeats max must be > 0, got {self.repeats.max}")
        if self.sequence is not None:
            if not isinstance(self.sequence.max_tokens, int) or self.sequence.max_tokens < 1:
                raise MixError(f"mix {self.name!r}: sequence max_tokens must be a positive integer")
            if self.sequence.over not in OVER_SEQUENCE or self.sequence.count not in SEQUENCE_COUNTS:
                raise MixError(f"mix {self.name!r}: sequence over must be one of {OVER_SEQUENCE} and count one of "
                               f"{SEQUENCE_COUNTS}")
        for what, value in (("budget tokens", self.budget_tokens), ("budget samples", self.budget_samples)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise MixError(f"mix {self.name!r}: {what} must be an integer >= 0, got {value!r}")

    @property
    def dimensions(self) -> list[str]:
        """The report's dimensions: kind always, and each weighting the mix uses."""
        used = {"source": self.sources, "decile": self.deciles, "cluster": self.clusters}
        return ["kind", *[name for name, weighted in used.items() if weighted is not None]]

    @classmethod
    def from_yaml(cls, source: str | Path) -> "Mix":
        """Load a mix from a YAML file, or a packaged one by name (`packaged_mixes()`)."""
        return cls.from_dict(load_spec(source, "mixes", "mix", MixError))

    @classmethod
    def from_dict(cls, data: Any) -> "Mix":
        """Build from the YAML structure (docs/mixing.md)."""
        if not isinstance(data, dict) or not {"name", "version"} <= set(data):
            raise MixError("a mix is a mapping with at least the keys name and version")
        where = f"mix {data['name']!r}"
        _keys(data, {"name", "version", "description", "table", "seed", "share_by", "kinds", "sources", "deciles",
                     "clusters", "repeats", "tokens", "budget", "tables"}, where)
        tables = _mapping(data.get("tables"), f"{where} tables")
        if not all(isinstance(k, list) and k for k in tables.values()):
            raise MixError(f"{where}: tables maps each table name to a list of key columns")
        tokens = _mapping(data.get("tokens"), f"{where} tokens")
        _keys(tokens, {"text", "image", "sequence"}, f"{where} tokens")
        budget = _mapping(data.get("budget"), f"{where} budget")
        _keys(budget, {"tokens", "samples"}, f"{where} budget")
        try:
            return cls(
                name=data["name"], version=data["version"], description=data.get("description", ""),
                table=data.get("table", "curated_items"), seed=int(data.get("seed", 0)),
                share_by=data.get("share_by", "samples"),
                kinds={str(k): float(v) for k, v in _mapping(data.get("kinds"), f"{where} kinds").items()},
                sources=_weighted(data.get("sources"), f"{where} sources", None, allow_keep=False),
                deciles=_weighted(data.get("deciles"), f"{where} deciles", "perplexity_decile", allow_keep=True),
                clusters=_weighted(data.get("clusters"), f"{where} clusters", "cluster", allow_keep=False),
                repeats=_build(Repeats, data.get("repeats"), f"{where} repeats", {"expression", "max"}),
                text_tokens=_build(TextTokens, tokens.get("text"), f"{where} tokens text",
                                   {"table", "chars_per_token"}) or TextTokens(),
                image_tokens=_build(ImageTokens, tokens.get("image"), f"{where} tokens image",
                                    set(ImageTokens.__dataclass_fields__)) or ImageTokens(),
                sequence=_build(Sequence, tokens.get("sequence"), f"{where} tokens sequence",
                                {"max_tokens", "over", "count"}),
                budget_tokens=budget.get("tokens"), budget_samples=budget.get("samples"),
                tables=tuple((str(name), tuple(key)) for name, key in tables.items()),
            )
        except (TypeError, ValueError) as e:
            if isinstance(e, MixError):
                raise
            raise MixError(f"{where}: {e}") from e


def packaged_mixes() -> list[str]:
    """Names of the mixes shipped in mmcurate/mixes."""
    return packaged_names("mixes")


def _keys(data: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise MixError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MixError(f"{where} must be a mapping, got {value!r}")
    return value


def _build(cls, value: Any, where: str, allowed: set[str]):
    """`cls(**value)` after checking its keys; None when the section is absent."""
    if value is None:
        return None
    _keys(_mapping(value, where), allowed, where)
    try:
        return cls(**value)
    except (TypeError, ValueError) as e:
        raise MixError(f"{where}: {e}") from e


def _weighted(value: Any, where: str, default_column: Optional[str], allow_keep: bool) -> Optional[Weighted]:
    """A `Weighted` from `{column|expression, weights, default, keep, cap}`; keys are compared as strings."""
    if value is None:
        return None
    value = _mapping(value, where)
    allowed = {"column", "expression", "weights", "default"} | ({"keep"} if allow_keep else {"cap"})
    _keys(value, allowed, where)
    expression = value.get("expression") or value.get("column") or default_column
    if not expression or ("expression" in value and "column" in value):
        raise MixError(f"{where}: give one of column or expression")
    keep = value.get("keep")
    if keep is not None and not isinstance(keep, list):
        raise MixError(f"{where}: keep must be a list of values")
    return Weighted(
        expression=str(expression),
        weights={str(k): v for k, v in _mapping(value.get("weights"), f"{where} weights").items()},
        default=value.get("default", 1.0),
        keep=tuple(str(v) for v in keep) if keep is not None else None,
        cap=value.get("cap"),
    )
