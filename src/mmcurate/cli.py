"""`mmcurate` command line: explore a lakehouse with SQL, inspect tables, run jobs."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Optional

from mmcurate.io.formats import FORMATS
from mmcurate.packaged import packaged_names


def _lakehouse(args):
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.spark import get_spark

    return Lakehouse.open(get_spark(master=args.master), args.lakehouse, backend=args.backend)


def _print(df, limit: int, as_json: bool, truncate: int) -> None:
    if as_json:
        for row in df.limit(limit).toLocalIterator():
            print(json.dumps(row.asDict(recursive=True), default=str))
    else:
        df.show(limit, truncate=truncate or False)


def cmd_sql(args) -> int:
    lake = _lakehouse(args)
    _print(lake.sql(args.query), args.limit, args.json, args.truncate)
    return 0


def cmd_tables(args) -> int:
    lake = _lakehouse(args)
    for name in lake.tables():
        print(f"{name}\tversion={lake.version(name)}\t{lake.location(name)}")
    return 0


def cmd_vacuum(args) -> int:
    lake = _lakehouse(args)
    for name in args.tables or lake.tables():
        removed = lake.vacuum(name, retention_hours=args.retention_hours)
        print(f"{name}: removed {len(removed)} files/folders")
    return 0


def cmd_optimize(args) -> int:
    lake = _lakehouse(args)
    for name in args.table or lake.tables():
        result = lake.optimize(name, target_size=args.target_size,
                               retention_hours=args.retention_hours if args.vacuum else None)
        line = (f"{name}: {result.files_removed} files ({result.bytes_removed} bytes) compacted into "
                f"{result.files_added} ({result.bytes_added} bytes), version {result.version}")
        print(line + (f"; vacuum removed {len(result.vacuumed)} files/folders" if args.vacuum else ""))
    return 0


def cmd_history(args) -> int:
    lake = _lakehouse(args)
    _print(lake.history(args.table, args.limit), args.limit, args.json, args.truncate)
    return 0


def cmd_ingest(args) -> int:
    from mmcurate import steps
    from mmcurate.io.documents import ReaderOptions

    options = ReaderOptions(
        fields=tuple(args.fields.split(",")) if args.fields else None,
        sample_id_field=args.sample_id_field,
        per_image_fields=tuple(args.per_image_fields.split(",")) if args.per_image_fields else (),
        per_text_fields=tuple(args.per_text_fields.split(",")) if args.per_text_fields else (),
        **({"json_extensions": tuple(args.json_extensions.split(","))} if args.json_extensions else {}),
        **({"image_extensions": tuple(args.image_extensions.split(","))} if args.image_extensions else {}),
        materialize_on_read=not args.lazy_images, on_missing_image=args.on_missing_image,
        verify_images=args.verify_images,
    )
    summary = steps.ingest(
        _lakehouse(args), args.input, args.format, options,
        app_id=args.app_id, app_version=args.app_version,
    )
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def cmd_materialize(args) -> int:
    from mmcurate import steps

    counts = steps.materialize(_lakehouse(args), table=args.table, only_missing_binary=not args.all_images,
                               retry_errors=args.retry_errors)
    print(json.dumps(counts, indent=2, sort_keys=True))
    return 0


def cmd_fetch(args) -> int:
    from mmcurate import steps
    from mmcurate.io.fetch import FetchOptions

    options = FetchOptions(concurrency=args.concurrency, timeout=args.timeout, retries=args.retries,
                           max_bytes=args.max_bytes, deny=args.deny or (), honour_noai=args.honour_noai,
                           **({"user_agent": args.user_agent} if args.user_agent else {}))
    retry = "all" if args.retry_errors == "all" else args.retry_errors is not None
    counts = steps.fetch(_lakehouse(args), table=args.table, options=options, retry_errors=retry)
    print(json.dumps(counts, indent=2, sort_keys=True))
    return 0


def _stage_specs(args) -> list:
    """The stages `annotate` runs: --stages names, a --config file's `stages:` list, or what --recipe reads."""
    import yaml

    from mmcurate import steps
    from mmcurate.annotate import STAGES, build_stage, default_stages

    specs: list = []
    if args.stages:
        specs += [build_stage(name.strip()) for name in args.stages.split(",") if name.strip()]
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
        listed = config.get("stages") if isinstance(config, dict) else None
        if not isinstance(listed, list):
            raise ValueError(f"{args.config}: expected a mapping with a 'stages' list")
        specs += [build_stage(spec) for spec in listed]
    if args.recipe:
        specs += steps.stages_for(args.recipe, configured=specs)
    if not (args.stages or args.config or args.recipe):  # every stage that runs without a model or other config
        specs = default_stages()
    unique = {}
    for stage in specs:
        unique.setdefault(stage.name, stage)
    order = list(STAGES)  # a stage reading another stage's table runs after it
    return sorted(unique.values(), key=lambda s: order.index(s.name) if s.name in order else len(order))


def cmd_annotate(args) -> int:
    from mmcurate import steps
    from mmcurate.select import RecipeError
    from mmcurate.stage import MissingDependencyError

    try:
        stages = _stage_specs(args)  # a bad stage list or recipe fails before Spark starts
    except (ValueError, RecipeError, MissingDependencyError, OSError) as e:
        print(f"annotate: {e}", file=sys.stderr)
        return 2
    for done in steps.annotate(_lakehouse(args), stages, recipes=[args.recipe] if args.recipe else []):
        print(json.dumps(done.as_dict(), sort_keys=True))
    return 0


def cmd_select(args) -> int:
    from mmcurate import steps
    from mmcurate.select import Recipe, RecipeError

    try:
        recipe = Recipe.from_yaml(args.recipe)  # a malformed recipe fails before Spark starts
        selection = steps.select(_lakehouse(args), recipe, curated_table=args.curated_table)
    except RecipeError as e:
        print(f"select: {e}", file=sys.stderr)
        return 2
    print(f"recipe {recipe.name} version {recipe.version}")
    selection.summary.orderBy("order").show(truncate=False)
    return 0


def cmd_mix(args) -> int:
    from mmcurate import steps
    from mmcurate.mixing import Mix, MixError

    try:
        spec = Mix.from_yaml(args.mix)  # a malformed mix fails before Spark starts
        mixed = steps.mix(_lakehouse(args), spec, chart=args.chart)
    except MixError as e:
        print(f"mix: {e}", file=sys.stderr)
        return 2
    print(f"mix {spec.name} version {spec.version}")
    mixed.report.orderBy("dimension", "bucket").drop("mix").show(200, truncate=False)
    if mixed.chart:
        print(f"chart: {mixed.chart}")
    return 0


def cmd_merge(args) -> int:
    from mmcurate import steps

    print(json.dumps(steps.merge_image_duplicates(_lakehouse(args), table=args.table, out=args.out), sort_keys=True))
    return 0


def cmd_export(args) -> int:
    from mmcurate import steps

    options = {"overwrite": args.overwrite, "materialize_on_write": args.materialize_on_write,
               "on_materialize_error": args.on_materialize_error}
    if args.format == "parquet":
        options.update(rows_per_file=args.rows_per_file, compression=args.compression)
    else:
        options.update(samples_per_shard=args.samples_per_shard, shard_bytes=args.shard_bytes, prefix=args.prefix,
                       seed=args.seed, resume=args.resume)
        if args.shuffle is not None:
            options["shuffle"] = args.shuffle
    manifest = steps.export(_lakehouse(args), args.out, format=args.format, table=args.table, mix=args.mix, **options)
    if manifest is None:
        print(f"wrote NeMo interleaved Parquet to {args.out}")
    else:
        _print(manifest, 10_000, args.json, 0)
    return 0


def cmd_view(args) -> int:
    from mmcurate import steps
    from mmcurate.select import RecipeError
    from mmcurate.viewer import ViewerError

    try:
        out = steps.view(_lakehouse(args), args.out, recipe=args.recipe, curated_table=args.curated_table,
                         rule=args.rule, cluster=args.cluster, samples=args.samples, seed=args.seed)
    except (ViewerError, RecipeError) as e:
        print(f"view: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def _step_printer(quiet: bool):
    from mmcurate.runner import describe

    return None if quiet else (lambda name, result: print(describe(result), flush=True))


def _outputs(report: dict) -> None:
    print(f"\nlakehouse: {report['lakehouse']}")
    if report.get("report"):
        print(f"report:    {report['report']}")
    if report.get("mlflow"):
        where = report["mlflow"]
        print(f"mlflow:    run {where['run_id']} in experiment {where['experiment']!r} at {where['tracking_uri']}")
    print(f"explore:   mmcurate sql \"SELECT recipe, rule, count(*) FROM drops GROUP BY 1, 2\" "
          f"--lakehouse {report['lakehouse']}")


def cmd_demo(args) -> int:
    from mmcurate.demo import run_demo
    from mmcurate.spark import get_spark

    report = run_demo(args.out, spark=get_spark(master=args.master), recipe=args.recipe,
                      on_step=_step_printer(args.quiet))
    _outputs(report)
    return 0


def _pipeline(args):
    from mmcurate.pipeline import Pipeline

    return Pipeline.from_yaml(args.config, root=args.root)


def cmd_validate(args) -> int:
    from mmcurate.pipeline import ConfigError

    try:
        pipeline = _pipeline(args)
    except ConfigError as e:
        print(f"validate: {e}", file=sys.stderr)
        return 2
    print(f"{args.config}: valid pipeline {pipeline.name!r}: {len(pipeline.sources)} sources, "
          f"{len(pipeline.stages)} annotate stages, {len(pipeline.selects)} selects, "
          f"mix {pipeline.mix.name if pipeline.mix else 'none'}, {len(pipeline.exports)} exports")
    return 0


def cmd_run(args) -> int:
    from mmcurate.pipeline import ConfigError
    from mmcurate.spark import get_spark

    from mmcurate.runner import STEPS

    only = tuple(s.strip() for s in args.only.split(",") if s.strip()) if args.only else None
    unknown = sorted(set(only or ()) - set(STEPS))
    try:
        if unknown:
            raise ConfigError(f"--only: unknown step kind(s) {unknown}; steps are {list(STEPS)}")
        pipeline = _pipeline(args)  # a bad config fails before Spark starts
    except ConfigError as e:
        print(f"run: {e}", file=sys.stderr)
        return 2
    spark = get_spark(master=args.master or pipeline.spark_master, conf=pipeline.spark_conf)
    report = pipeline.run(spark, on_step=_step_printer(args.quiet), only=only)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, default=str)
        report["report"] = args.report
    _outputs(report)
    return 0


def cmd_tiny_models(args) -> int:
    from mmcurate.models.tiny import save_all

    config = save_all(args.out)
    print(f"wrote tiny random-initialised models and {config}\n"
          f"score with them: mmcurate annotate --config {config} --lakehouse <lakehouse>")
    return 0


def cmd_train_quality(args) -> int:
    from mmcurate.annotate.quality import train_quality_classifier

    if bool(args.table) == bool(args.query):
        print("train-quality: give --table or --query (one of them)", file=sys.stderr)
        return 2
    lake = _lakehouse(args)
    labelled = lake.sql(args.query) if args.query else lake.read(args.table)
    try:
        result = train_quality_classifier(labelled, args.out, text=args.text_column, label=args.label_column,
                                          epoch=args.epoch, word_ngrams=args.word_ngrams)
    except ValueError as e:
        print(f"train-quality: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


COMMANDS: dict[str, tuple[Callable, str]] = {
    "demo": (cmd_demo, "run ingest -> annotate -> select -> mix -> WebDataset export on the packaged sample data"),
    "run": (cmd_run, "run a pipeline config (ingest, annotate, select, mix, export) idempotently, tracked in MLflow"),
    "validate": (cmd_validate, "check a pipeline config (keys, types, stages, recipes, mixes) without running it"),
    "annotate": (cmd_annotate, "compute signal tables (only for keys they lack): --stages, --config or --recipe"),
    "select": (cmd_select, "apply a recipe to items and signal tables; write curated_items and its drops ledger rows"),
    "mix": (cmd_mix, "decide what trains and how often (shares, deciles, clusters, repeats, token budgets); report it"),
    "merge": (cmd_merge, "merge samples that share their images into one sample keeping every text"),
    "export": (cmd_export, "write a table of items (curated_items by default) as WebDataset shards or Parquet"),
    "view": (cmd_view, "write one static HTML page of sampled kept and dropped documents, with their rules and scores"),
    "ingest": (cmd_ingest, "read source files into the lakehouse's items, images and quarantine tables"),
    "materialize": (cmd_materialize, "read the bytes of lazy image items from their source_ref into images"),
    "fetch": (cmd_fetch, "download the bytes of URL-only image items (each URL once) into images"),
    "sql": (cmd_sql, "run a SQL query with every lakehouse table visible by name"),
    "tables": (cmd_tables, "list the lakehouse's tables with their latest versions"),
    "history": (cmd_history, "show a table's commits"),
    "vacuum": (cmd_vacuum, "delete files no recent version reads and folders of writes that never committed"),
    "optimize": (cmd_optimize, "compact small files into larger ones (history kept), then optionally vacuum"),
    "tiny-models": (cmd_tiny_models, "write small random-initialised models and an annotate config to try the model stages offline"),
    "train-quality": (cmd_train_quality, "train a fastText quality classifier from labelled rows of a table or query"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmcurate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lakehouse", required=True, help="lakehouse root: path, URI or catalog schema")
    common.add_argument("--backend", default="auto", choices=["auto", "embedded", "native"])
    common.add_argument("--master", default=None, help="Spark master for a new local session")
    shown = argparse.ArgumentParser(add_help=False)
    shown.add_argument("--limit", type=int, default=20, help="rows to print")
    shown.add_argument("--truncate", type=int, default=60, help="cut cells to N chars (0 = never)")
    shown.add_argument("--json", action="store_true", help="print JSON lines instead of a table")

    p = sub.add_parser("ingest", parents=[common], help=COMMANDS["ingest"][1])
    p.add_argument("input", nargs="+", help="files, directories or globs (local or any fsspec URI)")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--sample-id-field", default=None, help="record field holding the sample id")
    p.add_argument("--fields", default=None, help="comma-separated passthrough fields to keep (default: all)")
    p.add_argument("--per-image-fields", default=None, help="comma-separated list fields aligned with images")
    p.add_argument("--per-text-fields", default=None, help="comma-separated list fields aligned with texts")
    p.add_argument("--json-extensions", default=None, help="WebDataset: comma-separated sample member extensions (.json)")
    p.add_argument("--image-extensions", default=None, help="WebDataset: extensions the {sample_id}{ext} fallback tries")
    p.add_argument("--lazy-images", action="store_true",
                   help="do not read image bytes now: keep source_ref for `mmcurate materialize` or the export")
    p.add_argument("--on-missing-image", default="keep", choices=["keep", "quarantine"],
                   help="an image whose bytes cannot be had: keep the item with materialize_error, or quarantine it")
    p.add_argument("--verify-images", action="store_true",
                   help="decode every image at ingest and quarantine undecodable ones (default: header only)")
    p.add_argument("--app-id", default=None, help="idempotent commits: application id (with --app-version)")
    p.add_argument("--app-version", type=int, default=None)

    p = sub.add_parser("materialize", parents=[common], help=COMMANDS["materialize"][1])
    p.add_argument("--table", default="items", help="items table whose lazy images are read")
    p.add_argument("--all-images", action="store_true", help="re-read every image with a source_ref, not only lazy ones")
    p.add_argument("--retry-errors", action="store_true", help="try again the items whose read failed before")

    p = sub.add_parser("fetch", parents=[common], help=COMMANDS["fetch"][1])
    p.add_argument("--table", default="items", help="items table whose URL-only images are downloaded")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight per Spark task")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request, connect to last byte")
    p.add_argument("--retries", type=int, default=2, help="retries of timeouts, 5xx and connection errors")
    p.add_argument("--max-bytes", type=int, default=32 * 2**20, help="larger responses fail as too_big")
    p.add_argument("--user-agent", default=None, help="User-Agent header (default: mmcurate/<version> ...)")
    p.add_argument("--deny", default=None, help="comma-separated domains or URL prefixes never requested")
    p.add_argument("--honour-noai", action=argparse.BooleanOptionalAction, default=True,
                   help="refuse responses whose X-Robots-Tag says noai or noimageai (default: on)")
    p.add_argument("--retry-errors", nargs="?", const="transient", default=None, choices=["transient", "all"],
                   help="try failed URLs again: transient failures (default), or 'all' including http_404, "
                        "http_410, denied, not_an_image, too_big")

    p = sub.add_parser("annotate", parents=[common], help=COMMANDS["annotate"][1])
    p.add_argument("--stages", default=None, help="comma-separated stage names (default: every catalogued stage reading items, images or a stage's table)")
    p.add_argument("--config", default=None, help="YAML file with a 'stages' list of names or {stage: name, ...params}")
    p.add_argument("--recipe", default=None, help="also run the stages this recipe's rules read; on-demand stages "
                   "(image_qr) score only the rows its earlier rules keep")

    p = sub.add_parser("select", parents=[common], help=COMMANDS["select"][1])
    p.add_argument("--recipe", required=True,
                   help=f"packaged recipe ({', '.join(packaged_names('recipes'))}) or a YAML path")
    p.add_argument("--curated-table", default="curated_items", help="table the kept items go to")

    p = sub.add_parser("mix", parents=[common], help=COMMANDS["mix"][1])
    p.add_argument("--mix", required=True, help="packaged mix (balanced, quality_epochs) or a YAML path")
    p.add_argument("--chart", default=None, help="write the report's chart to this PNG")

    p = sub.add_parser("merge", parents=[common], help=COMMANDS["merge"][1])
    p.add_argument("--table", default="items", help="items table to merge")
    p.add_argument("--out", default="merged_items", help="table the merged items go to")

    p = sub.add_parser("export", parents=[common], help=COMMANDS["export"][1])
    p.add_argument("--out", required=True, help="output directory (local path or fsspec URI)")
    p.add_argument("--format", default="webdataset", choices=["webdataset", "parquet"])
    p.add_argument("--table", default="curated_items", help="items table to export")
    p.add_argument("--samples-per-shard", type=int, default=None)
    p.add_argument("--shard-bytes", type=int, default=None, help="target shard size in bytes instead")
    p.add_argument("--rows-per-file", type=int, default=None, help="Parquet: rows per output file")
    p.add_argument("--compression", default="snappy", help="Parquet: codec (snappy, zstd, gzip, lz4, none)")
    p.add_argument("--prefix", default="shard")
    p.add_argument("--seed", type=int, default=None, help="reshuffles which shard a sample lands in")
    p.add_argument("--mix", default=None, help="export this mix's training set (repeats, shuffled) instead of --table")
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None,
                   help="order samples inside each shard by a seeded hash (default: on for --mix)")
    p.add_argument("--resume", action="store_true", help="keep the finished shards of an interrupted export")
    p.add_argument("--materialize-on-write", action=argparse.BooleanOptionalAction, default=True,
                   help="read lazy image items from their source_ref while exporting (default: on)")
    p.add_argument("--on-materialize-error", default="warn", choices=["warn", "error", "drop_row", "drop_sample"],
                   help="image items still without bytes: keep the slot and warn, fail, drop the item or its sample")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON lines")

    p = sub.add_parser("view", parents=[common], help=COMMANDS["view"][1])
    p.add_argument("--out", default="view.html", help="the HTML file to write (a path or fsspec URI)")
    p.add_argument("--recipe", default=None, help="whose drops to show (default: who wrote --curated-table)")
    p.add_argument("--curated-table", default="curated_items", help="the table of kept items")
    p.add_argument("--rule", default=None, help="show only documents this rule dropped (its filter preselected)")
    p.add_argument("--cluster", default=None, help="show only documents of this cluster (the clusters table)")
    p.add_argument("--samples", type=int, default=8, help="documents per rule, and kept documents")
    p.add_argument("--seed", type=int, default=0, help="another seed shows other documents")

    p = sub.add_parser("demo", help=COMMANDS["demo"][1])
    p.add_argument("--out", default="mmcurate-demo", help="where the lakehouse and shards go")
    p.add_argument("--recipe", default="nemo_default")
    p.add_argument("--master", default=None)
    p.add_argument("--quiet", action="store_true", help="no per-step lines")

    for name in ("run", "validate"):
        p = sub.add_parser(name, help=COMMANDS[name][1])
        p.add_argument("--config", required=True, help="pipeline YAML file, or a packaged pipeline name (demo)")
        p.add_argument("--root", default=None, help="directory relative paths in the config are under")
        if name == "run":
            p.add_argument("--master", default=None, help="Spark master for a new local session")
            p.add_argument("--report", default=None, help="also write the JSON report to this file")
            p.add_argument("--only", default=None, help="run just these kinds of steps (comma-separated: ingest, "
                                                        "materialize, fetch, annotate, merge, select, mix, export, view)")
            p.add_argument("--quiet", action="store_true", help="no per-step lines")

    p = sub.add_parser("sql", parents=[common, shown], help=COMMANDS["sql"][1])
    p.add_argument("query")
    sub.add_parser("tables", parents=[common], help=COMMANDS["tables"][1])
    p = sub.add_parser("history", parents=[common, shown], help=COMMANDS["history"][1])
    p.add_argument("table")
    p = sub.add_parser("vacuum", parents=[common], help=COMMANDS["vacuum"][1])
    p.add_argument("tables", nargs="*", help="tables to vacuum (default: all)")
    p.add_argument("--retention-hours", type=int, default=168, help="keep what versions this recent need")
    p = sub.add_parser("optimize", parents=[common], help=COMMANDS["optimize"][1])
    p.add_argument("--table", action="append", help="a table to optimize; repeat for more (default: all)")
    p.add_argument("--target-size", type=int, default=None,
                   help="bytes per compacted file (default: the table's delta.targetFileSize, else the engine's)")
    p.add_argument("--vacuum", action="store_true", help="vacuum each table after compacting it")
    p.add_argument("--retention-hours", type=int, default=168,
                   help="with --vacuum: keep what versions this recent need (0 frees the replaced files now)")
    p = sub.add_parser("tiny-models", help=COMMANDS["tiny-models"][1])
    p.add_argument("out", help="directory for the models and annotate.yaml")
    p = sub.add_parser("train-quality", parents=[common], help=COMMANDS["train-quality"][1])
    p.add_argument("--out", required=True, help="where the fastText .bin goes")
    p.add_argument("--table", default=None, help="table of labelled rows")
    p.add_argument("--query", default=None, help="or a SQL query giving them")
    p.add_argument("--text-column", default="document")
    p.add_argument("--label-column", default="label", help="boolean or 0/1: 1 = the quality to keep")
    p.add_argument("--epoch", type=int, default=5)
    p.add_argument("--word-ngrams", type=int, default=2)
    return parser


def job(step: str, argv: list[str]) -> int:
    """A per-stage spark-submit job: `--config` naming a pipeline config runs that config's `step` steps only
    (`run --only step`); other arguments are the stage command's own (`mmcurate <step> --help`)."""
    config = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
    if config is not None and _is_pipeline_config(config):
        return main(["run", "--only", step, *argv])
    return main([step, *argv])


def _is_pipeline_config(source: str) -> bool:
    """A YAML with a `lakehouse` key, or a packaged pipeline name (the annotate command's own --config is a
    stage list)."""
    import yaml

    from mmcurate.pipeline import packaged_pipelines

    if source in packaged_pipelines():
        return True
    try:
        with open(source, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "lakehouse" in data


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handler = COMMANDS[args.command][0]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
