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


COMMANDS: dict[str, tuple[Callable, str]] = {
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
