"""One YAML file describes a whole run: lakehouse, sources, annotate stages, selects, mix, exports.

`Pipeline.from_yaml` checks every key, type, stage, recipe, mix and export option before Spark starts
(`mmcurate validate --config F`); `Pipeline.run` runs the steps in order (`mmcurate run --config F`,
`spark-submit jobs/pipeline.py --config F`). A rerun adds no duplicate rows and redoes nothing that is
committed: ingest skips files already ingested, annotate scores only new keys, a select or mix whose
inputs did not change is skipped, an export resumes. See docs/pipeline.md.

>>> pipeline = Pipeline.from_yaml("demo", root="mmcurate-demo")     # packaged, or a YAML path
>>> report = pipeline.run(spark)
"""
from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from mmcurate.io.documents import ReaderOptions
from mmcurate.io.formats import FORMATS
from mmcurate.packaged import load_spec, packaged_names

SECTIONS = {"name", "description", "lakehouse", "backend", "spark", "ingest", "materialize", "fetch", "annotate",
            "select", "merge", "mix", "export", "view", "mlflow"}
PACKAGE_PREFIX = "package://"
"""Paths under the installed package (the demo data): `package://demo_data/wds`."""


class ConfigError(ValueError):
    """A pipeline config is malformed; the message names the key, what it holds and what is allowed."""


@dataclass(frozen=True)
class Source:
    """Files of one format to ingest, with the reader options for them."""

    format: str
    paths: tuple[str, ...]
    options: ReaderOptions = field(default_factory=ReaderOptions)


@dataclass(frozen=True)
class SelectStep:
    recipe: Any  # Recipe
    curated_table: str = "curated_items"


@dataclass(frozen=True)
class ExportStep:
    out: str
    format: str = "webdataset"
    table: str = "curated_items"
    mix: Optional[str] = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ViewStep:
    """A sample-viewer page to write after the selects (`steps.view`); also logged to the MLflow run."""

    out: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Pipeline:
    """A validated run description; paths are resolved against `root` (the config's `root`, or the caller's)."""

    name: str
    lakehouse: str
    sources: tuple[Source, ...] = ()
    backend: str = "auto"
    spark_master: Optional[str] = None
    spark_conf: dict = field(default_factory=dict)
    materialize: Optional[dict] = None
    fetch: Optional[dict] = None  # steps.fetch arguments: table, retry_errors, options (FetchOptions)
    stages: tuple = ()  # Stage instances
    demand: tuple = ()  # Recipes whose rules decide what on-demand stages compute: annotate's and the selects'
    selects: tuple[SelectStep, ...] = ()
    merge: Optional[dict] = None
    mix: Any = None  # Mix
    mix_chart: Optional[str] = None
    exports: tuple[ExportStep, ...] = ()
    views: tuple[ViewStep, ...] = ()
    mlflow: dict = field(default_factory=dict)
    description: str = ""
    config: dict = field(default_factory=dict, repr=False)  # the YAML as given, logged as the run's params

    @classmethod
    def from_yaml(cls, source: str | Path, root: Optional[str] = None) -> "Pipeline":
        """Load and validate a config file, or a packaged one by name (`packaged_pipelines()`)."""
        data = load_spec(source, "pipelines", "pipeline", ConfigError)
        return cls.from_dict(data, root=root, where=Path(str(source)).name)

    @classmethod
    def from_dict(cls, data: Any, root: Optional[str] = None, where: str = "config") -> "Pipeline":
        """Validate the YAML structure (see docs/pipeline.md) into a Pipeline; ConfigError names what is wrong."""
        return _Parser(where, root).pipeline(data)

    def run(self, spark=None, on_step: Optional[Callable[[str, dict], None]] = None,
            only: Optional[tuple[str, ...]] = None) -> dict:
        """Run every configured step in order on `spark` (a new session from `spark:` when None); return a report
        with each step's counts and seconds. `on_step(name, result)` is called as each step ends; `only` runs
        just these kinds of steps (`runner.STEPS`)."""
        from mmcurate.runner import run_pipeline

        return run_pipeline(self, spark, on_step, only)


def packaged_pipelines() -> list[str]:
    return packaged_names("pipelines")


class _Parser:
    """Turns the YAML structure into a Pipeline, naming the exact key of any problem."""

    def __init__(self, where: str, root: Optional[str]):
        self.where, self.root = where, root

    def fail(self, key: str, message: str) -> None:
        raise ConfigError(f"{self.where}: {key}: {message}")

    def mapping(self, value: Any, key: str, allowed: set, required: set = frozenset()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            self.fail(key, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        missing = sorted(required - set(value))
        if missing:
            self.fail(key, f"missing required key(s) {missing}")
        return value

    def typed(self, value: Any, key: str, kind: type | tuple, what: str) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(key, f"expected {what}, got {value!r}")
        return value

    def items(self, value: Any, key: str) -> list:
        """A section that may be one mapping or a list of them."""
        if isinstance(value, dict):
            return [value]
        return self.typed(value, key, list, "a mapping or a list of mappings")

    def path(self, value: Any, key: str) -> str:
        self.typed(value, key, str, "a path string")
        if value.startswith(PACKAGE_PREFIX):
            from importlib.resources import files

            return str(files("mmcurate") / value[len(PACKAGE_PREFIX):])
        if "://" in value or os.path.isabs(value) or self.root is None:
            return value
        return os.path.join(self.root, value)

    def pipeline(self, data: Any) -> Pipeline:
        data = self.mapping(data, "config", SECTIONS | {"root"}, {"name", "lakehouse"})
        if self.root is None and data.get("root") is not None:
            self.root = self.typed(data["root"], "root", str, "a directory")
        name = self.typed(data["name"], "name", str, "a run name")
        lakehouse = self.typed(data["lakehouse"], "lakehouse", str, "a path, URI or catalog.schema")
        if "." not in lakehouse or "/" in lakehouse:  # a path, not catalog.schema
            lakehouse = self.path(lakehouse, "lakehouse")
        backend = data.get("backend", "auto")
        if backend not in ("auto", "embedded", "native"):
            self.fail("backend", f"{backend!r} is not one of ['auto', 'embedded', 'native']")
        spark = self.mapping(data.get("spark") or {}, "spark", {"master", "conf"})
        conf = self.mapping(spark.get("conf") or {}, "spark.conf", set(spark.get("conf") or {}))
        sources = tuple(self.source(s, f"ingest[{i}]") for i, s in enumerate(self.items(data.get("ingest") or [], "ingest")))
        materialize = data.get("materialize")
        if materialize is not None:
            materialize = self.mapping(materialize or {}, "materialize", {"table", "only_missing_binary", "retry_errors"})
        fetch = self.fetch(data["fetch"]) if data.get("fetch") is not None else None
        selects = tuple(self.select(s, f"select[{i}]") for i, s in enumerate(self.items(data.get("select") or [], "select")))
        merge = data.get("merge")
        if merge is not None:
            merge = self.mapping(merge or {}, "merge", {"table", "out"})
        mix, chart = self.mix(data.get("mix"))
        exports = tuple(self.export(e, f"export[{i}]", mix) for i, e in enumerate(self.items(data.get("export") or [], "export")))
        views = tuple(self.view(v, f"view[{i}]") for i, v in enumerate(self.items(data.get("view") or [], "view")))
        mlflow = dict(self.mapping(data.get("mlflow") or {}, "mlflow", {"enabled", "tracking_uri", "experiment",
                                                                       "directory"}))
        if mlflow.get("enabled", True) not in (True, False):
            self.fail("mlflow.enabled", "expected true or false")
        mlflow["directory"] = self.path(mlflow.get("directory", "mlruns"), "mlflow.directory")
        return Pipeline(name=name, lakehouse=lakehouse, sources=sources, backend=backend,
                        spark_master=spark.get("master"), spark_conf={k: str(v) for k, v in conf.items()},
                        materialize=materialize, fetch=fetch, **self.annotate(data.get("annotate"), selects),
                        selects=selects, merge=merge, mix=mix, mix_chart=chart, exports=exports, views=views, mlflow=mlflow,
                        description=str(data.get("description", "")), config=data)

    def source(self, raw: Any, key: str) -> Source:
        raw = self.mapping(raw, key, {"format", "paths", "options"}, {"format", "paths"})
        if raw["format"] not in FORMATS:
            self.fail(f"{key}.format", f"{raw['format']!r} is not one of {list(FORMATS)}")
        paths = raw["paths"] if isinstance(raw["paths"], list) else [raw["paths"]]
        if not paths:
            self.fail(f"{key}.paths", "no paths given")
        allowed = {f.name for f in dataclasses.fields(ReaderOptions)}
        options = self.mapping(raw.get("options") or {}, f"{key}.options", allowed)
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        try:
            reader = ReaderOptions(**options)
        except (TypeError, ValueError) as e:
            self.fail(f"{key}.options", str(e))
        return Source(raw["format"], tuple(self.path(p, f"{key}.paths") for p in paths), reader)

    def fetch(self, raw: Any) -> dict:
        """The fetch step: `table`, `retry_errors` (false, true or all) and any FetchOptions field."""
        from mmcurate.io.fetch import FetchOptions

        allowed = {f.name for f in dataclasses.fields(FetchOptions)}
        raw = dict(self.mapping(raw or {}, "fetch", allowed | {"table", "retry_errors"}))
        table = self.typed(raw.pop("table", "items"), "fetch.table", str, "a table name")
        retry = raw.pop("retry_errors", False)
        if retry not in (False, True, "all"):
            self.fail("fetch.retry_errors", f"{retry!r} is not one of [false, true, 'all']")
        try:
            options = FetchOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
        except (TypeError, ValueError) as e:
            self.fail("fetch", str(e))
        return {"table": table, "retry_errors": retry, "options": options}

    def annotate(self, raw: Any, selects: tuple[SelectStep, ...]) -> dict:
        """The annotate stages (`stages`): `stages:` as given (models, and what a mix reads), plus what `recipes:`
        (default: the selects' recipes) read, one per name, in catalogue order; and the recipes on-demand stages
        compute for (`demand`): those and the selects'."""
        from mmcurate import steps
        from mmcurate.annotate import STAGES, build_stage
        from mmcurate.select import Recipe, RecipeError

        raw = self.mapping(raw or {}, "annotate", {"stages", "recipes"})
        configured = []
        for i, spec in enumerate(self.typed(raw.get("stages") or [], "annotate.stages", list, "a list of stages")):
            try:
                configured.append(build_stage(spec))
            except (ValueError, TypeError) as e:
                self.fail(f"annotate.stages[{i}]", str(e))
        recipes = raw.get("recipes")
        if recipes is None:
            recipes = [s.recipe for s in selects]
        wanted, demand = list(configured), {}
        for i, recipe in enumerate(self.typed(recipes, "annotate.recipes", list, "a list of recipe names or paths")):
            try:
                recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_yaml(recipe)
                wanted += steps.stages_for(recipe, configured=configured)
            except RecipeError as e:
                self.fail(f"annotate.recipes[{i}]", str(e))
            demand.setdefault(recipe.name, recipe)
        for selected in selects:
            demand.setdefault(selected.recipe.name, selected.recipe)
        unique = {}
        for stage in wanted:
            unique.setdefault(stage.name, stage)
        order = list(STAGES)
        stages = sorted(unique.values(), key=lambda s: order.index(s.name) if s.name in order else len(order))
        return {"stages": tuple(stages), "demand": tuple(demand.values())}

    def select(self, raw: Any, key: str) -> SelectStep:
        from mmcurate.select import Recipe, RecipeError

        raw = self.mapping(raw, key, {"recipe", "curated_table"}, {"recipe"})
        try:
            recipe = Recipe.from_yaml(raw["recipe"])
        except RecipeError as e:
            self.fail(f"{key}.recipe", str(e))
        return SelectStep(recipe, self.typed(raw.get("curated_table", "curated_items"), f"{key}.curated_table", str,
                                             "a table name"))

    def mix(self, raw: Any):
        from mmcurate.mixing import Mix, MixError

        if raw is None:
            return None, None
        raw = self.mapping(raw, "mix", {"mix", "chart"}, {"mix"})
        try:
            spec = Mix.from_yaml(raw["mix"])
        except MixError as e:
            self.fail("mix.mix", str(e))
        return spec, self.path(raw["chart"], "mix.chart") if raw.get("chart") else None

    def export(self, raw: Any, key: str, mix) -> ExportStep:
        from mmcurate.io.parquet_writer import write_parquet
        from mmcurate.io.webdataset_writer import write_webdataset

        raw = self.mapping(raw, key, {"out", "format", "table", "mix", "options"}, {"out"})
        format = raw.get("format", "webdataset")
        writers = {"webdataset": write_webdataset, "parquet": write_parquet}
        if format not in writers:
            self.fail(f"{key}.format", f"{format!r} is not one of {sorted(writers)}")
        if raw.get("mix") is not None and (mix is None or raw["mix"] != mix.name):
            self.fail(f"{key}.mix", f"{raw['mix']!r} is not the mix this config runs "
                                    f"({mix.name if mix else 'none'}): add it under mix:")
        internal = {"items", "images", "out_dir", "repeats", "lineage"}
        allowed = set(inspect.signature(writers[format]).parameters) - internal
        options = self.mapping(raw.get("options") or {}, f"{key}.options", allowed)
        return ExportStep(self.path(raw["out"], f"{key}.out"), format, raw.get("table", "curated_items"),
                          raw.get("mix"), dict(options))

    def view(self, raw: Any, key: str) -> ViewStep:
        from mmcurate.viewer import View, ViewerError

        allowed = {f.name for f in dataclasses.fields(View)}
        raw = dict(self.mapping(raw, key, allowed | {"out"}, {"out"}))
        out = self.path(raw.pop("out"), f"{key}.out")
        try:
            View(**raw)
        except (TypeError, ViewerError) as e:
            self.fail(key, str(e))
        return ViewStep(out, raw)
