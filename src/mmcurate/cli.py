"""`mmcurate` command line: explore a lakehouse with SQL, inspect tables, run jobs."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Optional


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


def cmd_history(args) -> int:
    lake = _lakehouse(args)
    _print(lake.history(args.table), args.limit, args.json, args.truncate)
    return 0


def cmd_ingest(args) -> int:
    from mmcurate.io.documents import ReaderOptions
    from mmcurate.io.ingest import ingest_to_lakehouse

    options = ReaderOptions(
        fields=tuple(args.fields.split(",")) if args.fields else None,
        sample_id_field=args.sample_id_field,
        per_image_fields=tuple(args.per_image_fields.split(",")) if args.per_image_fields else (),
        per_text_fields=tuple(args.per_text_fields.split(",")) if args.per_text_fields else (),
    )
    summary = ingest_to_lakehouse(
        _lakehouse(args), args.input, args.format, options,
        app_id=args.app_id, app_version=args.app_version,
    )
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


COMMANDS: dict[str, tuple[Callable, str]] = {
    "ingest": (cmd_ingest, "read source files into the lakehouse's items, images and quarantine tables"),
    "sql": (cmd_sql, "run a SQL query with every lakehouse table visible by name"),
    "tables": (cmd_tables, "list the lakehouse's tables with their latest versions"),
    "history": (cmd_history, "show a table's commits"),
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
    p.add_argument("--format", required=True, choices=["webdataset", "documents", "mmc4", "nemo_parquet"])
    p.add_argument("--sample-id-field", default=None, help="record field holding the sample id")
    p.add_argument("--fields", default=None, help="comma-separated passthrough fields to keep (default: all)")
    p.add_argument("--per-image-fields", default=None, help="comma-separated list fields aligned with images")
    p.add_argument("--per-text-fields", default=None, help="comma-separated list fields aligned with texts")
    p.add_argument("--app-id", default=None, help="idempotent commits: application id (with --app-version)")
    p.add_argument("--app-version", type=int, default=None)

    p = sub.add_parser("sql", parents=[common, shown], help=COMMANDS["sql"][1])
    p.add_argument("query")
    sub.add_parser("tables", parents=[common], help=COMMANDS["tables"][1])
    p = sub.add_parser("history", parents=[common, shown], help=COMMANDS["history"][1])
    p.add_argument("table")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handler = COMMANDS[args.command][0]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
