"""The stage contract: every catalogued stage writes exactly its declared schema, unique on its key."""
from dataclasses import dataclass

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.annotate import STAGES, build_stage, stage_for_column
from mmcurate.images import sha256_hex
from mmcurate.stage import Dependency, MissingDependencyError, Stage

ITEMS = "sample_id string, position int, modality string, text_content string, image_id string"


@pytest.fixture(scope="module")
def inputs(spark, photo_jpg, truncated_jpg, model_stage_params):
    items = spark.createDataFrame([
        ("a", -1, "metadata", None, None), ("a", 0, "text", "A first paragraph of words.", None),
        ("a", 1, "image", None, sha256_hex(photo_jpg)), ("a", 2, "text", "And a second one.", None),
        ("b", 0, "image", None, sha256_hex(truncated_jpg)), ("c", -1, "metadata", None, None),
    ], ITEMS)
    images = spark.createDataFrame([(sha256_hex(b), b) for b in (photo_jpg, truncated_jpg)],
                                   "image_id string, binary_content binary")

    embeddings = spark.createDataFrame([("a", [1.0, 0.0]), ("b", [0.0, 1.0]), ("c", [1.0, 0.0])],
                                       "sample_id string, embedding array<double>")
    tables = {"items": items, "images": images}
    for name, cls in STAGES.items():  # inputs first; each model stage on its tiny model
        stage = cls(**model_stage_params.get(name, {}))
        if stage.input in tables:
            tables[name] = stage(tables[stage.input], **{t: tables[t] for t in stage.joins}).cache()
    tables["sample_embeddings_planted"] = embeddings
    return tables


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_writes_its_declared_schema_unique_on_its_key(inputs, name, model_stage_params):
    stage = STAGES[name](**model_stage_params.get(name, {}))
    assert stage.table == name and stage.input in inputs and stage.version
    assert stage.schema.fieldNames()[: len(stage.key)] == list(stage.key)
    out = inputs[stage.input]
    if name == "semantic_duplicates":
        out = inputs["sample_embeddings_planted"]
    out = stage(out, **{t: inputs[t] for t in stage.joins})
    assert [(f.name, f.dataType) for f in out.schema.fields] == [(f.name, f.dataType) for f in stage.schema.fields]
    rows = out.collect()
    keys = [tuple(r[k] for k in stage.key) for r in rows]
    assert len(keys) == len(set(keys)) > 0


def test_fingerprint_follows_version_and_parameters_but_not_operational_ones():
    default, other = STAGES["image_scores"](), STAGES["image_scores"](max_pixels=10_000)
    assert default.fingerprint == STAGES["image_scores"]().fingerprint != other.fingerprint
    assert default.fingerprint == STAGES["image_scores"](batch_size=8).fingerprint  # how it runs, not what it gives
    assert default.describe()["params"] == {"max_pixels": default.max_pixels, "batch_size": 64}


@dataclass(frozen=True)
class NeedsAMissingPackage(Stage):
    name = table = "missing"
    input = "items"
    key = ("sample_id",)
    version = "1"
    reads = {"sample_id": "string"}
    schema = T.StructType([T.StructField("sample_id", T.StringType())])
    requires = (Dependency("mmcurate_no_such_module", "mmcurate-no-such-package>=1"),)


def test_a_missing_dependency_fails_when_the_stage_is_built_with_an_install_hint():
    with pytest.raises(MissingDependencyError, match="pip install 'mmcurate-no-such-package>=1'"):
        NeedsAMissingPackage()


def test_an_output_that_misses_its_schema_is_refused(spark, inputs):
    @dataclass(frozen=True)
    class Wrong(NeedsAMissingPackage):
        requires = ()
        schema = T.StructType([T.StructField("sample_id", T.StringType()), T.StructField("n", T.LongType())])

        def compute(self, items):
            return items.select("sample_id", F.lit(1).alias("n"))  # an int, not the declared long

    with pytest.raises(Exception, match="n \\(expected bigint, got int\\)"):
        inputs["items"].transform(Wrong())


def test_stages_build_from_names_and_config_mappings():
    assert build_stage({"stage": "paragraph_scores", "punctuation_min_words": 5}).punctuation_min_words == 5
    with pytest.raises(ValueError, match="unknown stage 'clip'; known stages"):
        build_stage("clip")
    with pytest.raises(ValueError, match="stage 'image_scores'.*unexpected keyword"):
        build_stage({"stage": "image_scores", "size": 3})
    assert stage_for_column("sharpness").name == "image_scores"
    assert stage_for_column("lang", ("sample_id",)).name == "document_scores"
    assert stage_for_column("lang", ("sample_id", "position")).name == "paragraph_scores"
