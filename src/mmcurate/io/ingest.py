"""Ingest source files into `items`, `images` and `quarantine`, parsing inside Spark executors.

One task per input file streams its documents through the format's reader and yields bounded
Arrow batches of one union schema; the driver only lists paths and splits the union into the three
tables (plus the small set of passthrough field names and kinds).

>>> with ingest(spark, ["s3://bucket/mint/"], "webdataset") as result:
...     result.items.groupBy("modality").count().show()
>>> steps.ingest(lake, ["tests/data/mmc4/docs.jsonl"], "mmc4")     # into the lakehouse
"""
from __future__ import annotations

import json
import re
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Sequence

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from mmcurate.io.documents import STAGE, Bad, ReaderOptions, arrow_batch, document_rows, quarantine_row
from mmcurate.io.readers.html import PAGE_FIELDS, read_html
from mmcurate.io.readers.nemo_parquet import read_nemo_parquet
from mmcurate.io.readers.pdf import PDF_FIELDS, read_pdf
from mmcurate.io.readers.records import read_documents, read_mmc4
from mmcurate.io.readers.warc import read_warc
from mmcurate.io.readers.webdataset import read_webdataset
from mmcurate.io.staging import PART, Part, Staging, release
from mmcurate.lakehouse.base import no_rows
from mmcurate.schema import IMAGES, ITEMS, QUARANTINE
from mmcurate.spark import persist_large_rows

READERS: dict[str, Callable] = {
    "webdataset": read_webdataset,  # MINT-1T (HTML/PDF/ArXiv) and NeMo Curator interleaved shards
    "documents": read_documents,  # OBELICS / MINT-1T HTML records in JSONL, JSON or Parquet
    "mmc4": read_mmc4,
    "nemo_parquet": read_nemo_parquet,
    "pdf": read_pdf,  # PDF files, one document each (text blocks and embedded images, via PDFium)
    "warc": read_warc,  # crawl archives (WARC, ARC): each HTML 200 response is a page document
    "html": read_html,  # saved web pages, one document per file
}
FIELDS: dict[str, dict[str, str]] = {"warc": PAGE_FIELDS, "html": PAGE_FIELDS, "pdf": PDF_FIELDS}
"""Passthrough columns a format always has (name -> kind), beyond those seen in the data."""
PATTERNS = {
    "webdataset": ("*.tar", "*.tar.gz", "*.tgz"),
    "documents": ("*.jsonl", "*.jsonl.gz", "*.json", "*.parquet"),
    "mmc4": ("*.jsonl", "*.jsonl.gz", "*.json"),
    "nemo_parquet": ("*.parquet",),
    "pdf": ("*.pdf",),
    "warc": ("*.warc", "*.warc.gz", "*.arc", "*.arc.gz"),
    "html": ("*.html", "*.htm"),
}

UNION = T.StructType(
    [T.StructField("kind", T.StringType()), T.StructField("origin", T.StringType()),
     T.StructField("ordinal", T.LongType())]
    + [T.StructField(f.name, f.dataType) for f in ITEMS.fields]
    + [T.StructField("passthrough", T.StringType()), T.StructField("passthrough_kinds", T.StringType())]
    + [T.StructField(f.name, f.dataType) for f in IMAGES.fields if f.name not in ITEMS.fieldNames()]
    + [T.StructField(f.name, f.dataType) for f in QUARANTINE.fields if f.name not in ITEMS.fieldNames()]
)
_ARROW_UNION = pa.schema(
    [pa.field(f.name, {"string": pa.string(), "bigint": pa.int64(), "int": pa.int32(), "binary": pa.binary()}[
        f.dataType.simpleString()]) for f in UNION.fields]
)
_FACT_COLUMNS = ("kind", "sample_id", "position", "modality", "image_id", "passthrough_kinds")
_COUNTS = ("documents", "text_items", "image_items", "quarantined", "image_rows", "uses")
_FACT_ROWS = T.StructType([T.StructField("key", T.StringType())] + [T.StructField(c, T.LongType()) for c in _COUNTS])
"""What a parse's tasks hand Spark: their rows' facts summed per key (`_task_facts`)."""
_KINDS = {"string": T.StringType(), "bigint": T.LongType(), "double": T.DoubleType(), "boolean": T.BooleanType()}
BATCH_ROWS = 512
BATCH_BYTES = 32 * 2**20
ITEMS_GROUP_ROWS = 128 * 1024
ITEMS_GROUP_BYTES = 64 * 2**20
"""Row groups of the items a task stages as the table's rows (the union's parts keep one group per batch)."""
_DELTA_UNSAFE = re.compile(r"[ ,;{}()\n\t=]")


def list_files(paths: Sequence[str] | str, patterns: Iterable[str]) -> list[str]:
    """Input files: files as given, directories searched recursively for `patterns`, globs expanded."""
    found: list[str] = []
    for path in [paths] if isinstance(paths, str) else paths:
        fs, root = fsspec.core.url_to_fs(path)
        protocol = path.split("://")[0] + "://" if "://" in path else ""
        if fs.isdir(root):
            matches = [m for p in patterns for m in fs.glob(f"{root.rstrip('/')}/**/{p}")]
        elif any(ch in root for ch in "*?["):
            matches = fs.glob(root)
        else:
            matches = [root]
        found.extend(protocol + m if protocol and not m.startswith(protocol) else m for m in matches)
    return sorted(set(found))


def _parse_files(reader: Callable, options: ReaderOptions, files: Sequence[str]):
    """The mapInArrow function: file indexes (`id`) in, union rows of those `files` out, at most
    BATCH_ROWS/BATCH_BYTES per batch."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows, size, seen_images = [], 0, set()
        for batch in batches:
            for path in (files[i] for i in batch.column("id").to_pylist()):
                for row in _file_rows(reader, path, options):
                    if row["kind"] == "image":  # an image repeated within a task travels once
                        if row["image_id"] in seen_images:
                            continue
                        seen_images.add(row["image_id"])
                    rows.append(row)
                    size += len(row.get("binary_content") or b"") + len(row.get("text_content") or "")
                    if len(rows) >= BATCH_ROWS or size >= BATCH_BYTES:
                        yield _to_batch(rows)
                        rows, size = [], 0
        if rows:
            yield _to_batch(rows)

    return run


def _to_batch(rows: list[dict]) -> pa.RecordBatch:
    """Rows as one Arrow batch; a row Arrow cannot encode becomes a quarantine row instead of
    failing the task (the last line of defence behind the readers' own checks)."""
    try:
        return arrow_batch(rows, _ARROW_UNION)
    except (pa.ArrowException, UnicodeError, TypeError, ValueError):
        safe = []
        for row in rows:
            try:
                arrow_batch([row], _ARROW_UNION)
                safe.append(row)
            except (pa.ArrowException, UnicodeError, TypeError, ValueError) as e:
                bad = Bad(str(row.get("source")), str(row.get("locator")), "unencodable_row",
                          f"{type(e).__name__}: {str(e)[:200]}")
                safe.append(quarantine_row(bad, row.get("ordinal") or -1))
        return arrow_batch(safe, _ARROW_UNION)


def _staged_parse(stage: Staging, parse: Callable, items: Optional[tuple[list, T.StructType]]):
    """The mapInArrow function of a staged parse: `parse`'s union rows staged and their facts returned
    (`_TaskFacts`, with the parts' names), and with `items` (the passthrough columns and the table schema they
    make) the item rows also staged as `items` rows, in a part of their own, which `steps.ingest` can commit
    as they are."""
    arrow_items = to_arrow_schema(items[1]) if items else None

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        part = Part(stage, arrow_items, "items") if items else None
        group: list[pa.RecordBatch] = []  # the items of the next row group: the table's files keep large groups

        def flush() -> None:
            if group:
                part.write(pa.Table.from_batches(group))
                group.clear()

        def tee(union: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in union:
                if part is not None:
                    rows = batch.filter(pc.equal(batch.column("kind"), "item"))
                    if rows.num_rows:
                        group.append(_items_batch(rows, items[0], arrow_items))
                        if sum(b.num_rows for b in group) >= ITEMS_GROUP_ROWS or \
                                sum(b.nbytes for b in group) >= ITEMS_GROUP_BYTES:
                            flush()
                yield batch

        facts = _TaskFacts()
        try:
            for keys in stage.split(tee(parse(batches)), _ARROW_UNION, _FACT_COLUMNS):
                facts.add(keys)
            if part is not None:
                flush()
        finally:
            if part is not None:
                part.close()
        if part is not None and part.rows:
            part.publish()
            facts.items_parts.add(part.name)
        yield facts.batch()

    return run


class _TaskFacts:
    """One task's facts, summed per key: `s<id>` per sample id (its documents), `i<id>` per image id (its image
    rows, and the items using it), `t` the item and quarantine counts, `k<json>` each passthrough kinds map seen,
    `p<name>` / `q<name>` the union and items parts written. A task hands Spark these few rows, not a row per
    parsed row: the grouping of all tasks' keys is then sums only, which Spark hashes with generated code (sets
    of strings fell back to sorting every task's rows)."""

    def __init__(self):
        self.documents: Counter = Counter()
        self.images: dict[str, list[int]] = {}
        self.totals = [0, 0, 0]  # text items, image items, quarantined
        self.kinds: set[str] = set()
        self.parts: set[str] = set()
        self.items_parts: set[str] = set()

    def add(self, keys: pa.RecordBatch) -> None:
        """Count a batch of `_FACT_COLUMNS` rows (and PART, when staged)."""
        kind, modality = keys.column("kind"), keys.column("modality")
        item = pc.equal(kind, "item")
        self.documents.update(keys.column("sample_id").filter(pc.and_(item, pc.equal(keys.column("position"), -1)))
                              .to_pylist())
        self.totals[0] += pc.sum(pc.and_(item, pc.equal(modality, "text"))).as_py() or 0
        self.totals[1] += pc.sum(pc.and_(item, pc.equal(modality, "image"))).as_py() or 0
        self.totals[2] += pc.sum(pc.equal(kind, "quarantine")).as_py() or 0
        image_id = keys.column("image_id")
        for column, index in (("image", 0), ("item", 1)):
            for value in image_id.filter(pc.and_(pc.equal(kind, column), pc.is_valid(image_id))).to_pylist():
                self.images.setdefault(value, [0, 0])[index] += 1
        self.kinds.update(pc.unique(keys.column("passthrough_kinds").filter(item).drop_null()).to_pylist())
        if PART in keys.schema.names:
            self.parts.update(pc.unique(keys.column(PART)).to_pylist())

    def batch(self) -> pa.RecordBatch:
        """The rows of `_FACT_ROWS`."""
        rows = [("s" + k, n, 0, 0, 0, 0, 0) for k, n in self.documents.items()]
        rows += [("i" + k, 0, 0, 0, 0, image_rows, uses) for k, (image_rows, uses) in self.images.items()]
        rows.append(("t", 0, *self.totals, 0, 0))
        rows += [(prefix + v, 0, 0, 0, 0, 0, 0) for prefix, values in (("k", self.kinds), ("p", self.parts),
                                                                        ("q", self.items_parts)) for v in values]
        columns = list(zip(*rows))
        return pa.RecordBatch.from_arrays([pa.array(columns[0], pa.string())]
                                          + [pa.array(c, pa.int64()) for c in columns[1:]],
                                          names=_FACT_ROWS.fieldNames())


def _task_facts(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The mapInArrow function giving a cached parse's facts: `_TaskFacts` of each task's rows."""
    facts = _TaskFacts()
    for batch in batches:
        facts.add(batch)
    yield facts.batch()


def _items_batch(rows: pa.RecordBatch, columns: list[tuple], schema: pa.Schema) -> pa.RecordBatch:
    """Union item rows as `items` rows: the passthrough JSON typed into `columns` in Python, as `_with_passthrough`
    types it in Spark. A value of another kind becomes null; the driver commits these rows only when no item had
    one (`_adoptable`)."""
    values = [json.loads(v) if v else {} for v in rows.column("passthrough").to_pylist()]
    arrays = [rows.column(name) for name in ITEMS.fieldNames()]
    for field_name, column, kind, _ in columns:
        arrays.append(pa.array([_typed(v.get(field_name), kind) for v in values], schema.field(column).type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _typed(text: Optional[str], kind: str):
    if text is None or kind == "string":
        return text
    if kind == "boolean":
        return text == "true"
    try:
        return int(text) if kind == "bigint" else float(text)
    except ValueError:
        return None


def _file_rows(reader: Callable, path: str, options: ReaderOptions) -> Iterator[dict]:
    """Union rows of one file; an unexpected reader exception quarantines the rest of the file."""
    ordinal = 0
    try:
        for doc in reader(path, options):
            if isinstance(doc, Bad):
                yield quarantine_row(doc, ordinal)
            else:
                yield from document_rows(doc, ordinal, options)
            ordinal += 1
    except Exception as e:  # a reader bug must not kill the job: the rest of the file is quarantined
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        yield quarantine_row(Bad(path, f"after:{ordinal}", "reader_error", detail), ordinal)


@dataclass
class IngestResult:
    """The three tables of one ingest (lazy DataFrames over a persisted or staged parse) and the files read.

    A context manager: leaving the `with` block releases the cached parse and removes the staged one (or call
    `unpersist()`).
    """

    items: DataFrame
    images: DataFrame
    quarantine: DataFrame
    files: list[str]
    _persisted: list[DataFrame] = field(default_factory=list, repr=False)
    requested: tuple[str, ...] = ()
    counts: Optional[dict] = None
    """documents, text_items, image_items of `items` and the `quarantined` rows, when the parse already counted
    them (else counted here)."""
    staging: Optional[Staging] = field(default=None, repr=False)
    items_files: Optional[list[str]] = None
    """Staged Parquet files holding exactly `items`, in its schema, which a lakehouse can take over as they are
    (`Lakehouse.adopt`); None when the items are to be written."""

    def summary(self, unique_images: Optional[int] = None, absent: Optional[list[str]] = None) -> dict:
        """Small counts for reports and invariants: documents, items per modality, images, quarantine per reason.

        unique_images, absent: pass them when already known (a write result; `absent_fields()` before the items
        were adopted), saving a job."""
        if self.counts is not None:
            per_modality = {"metadata": self.counts["documents"], "text": self.counts["text_items"],
                            "image": self.counts["image_items"]}
        else:
            per_modality = {r.modality: r["count"] for r in self.items.groupBy("modality").count().collect()}
        reasons = {} if (self.counts or {}).get("quarantined") == 0 else {
            r.reason: r["count"] for r in self.quarantine.groupBy("reason").count().collect()}
        absent = self.absent_fields() if absent is None else absent
        if absent:
            warnings.warn(f"requested fields absent from every ingested document: {absent}", stacklevel=2)
        return {
            "files": len(self.files),
            "documents": per_modality.get("metadata", 0),
            "text_items": per_modality.get("text", 0),
            "image_items": per_modality.get("image", 0),
            "unique_images": self.images.count() if unique_images is None else unique_images,
            "quarantined": sum(reasons.values()),
            "quarantine_reasons": reasons,
            "absent_fields": absent,
        }

    def absent_fields(self) -> list[str]:
        """The requested fields (`fields`, `per_image_fields`, `per_text_fields`) no ingested item has a value
        for: a misspelt field name gives an all-null column, so it is named (and warned about) instead."""
        present = [name for name in self.requested if name in self.items.columns]
        counts = self.items.agg(*[F.count(F.col(f"`{name}`")).alias(name) for name in present]).first() \
            if present else None
        return sorted(name for name in self.requested if name not in present or not counts[name])

    def unpersist(self) -> None:
        release(self._persisted, self.staging)

    def __enter__(self) -> "IngestResult":
        return self

    def __exit__(self, *exc) -> None:
        self.unpersist()


def ingest(
    spark: SparkSession,
    paths: Sequence[str] | str,
    format: str,
    options: Optional[ReaderOptions] = None,
    patterns: Optional[Iterable[str]] = None,
    staging: Optional[str] = None,
) -> IngestResult:
    """Parse `paths` (files, directories, globs; any fsspec URI) in `format` into items/images/quarantine.

    The parse is kept for the three tables: use the result in a `with` block (or `unpersist()` it). staging: a
    folder executors and this process both reach (`Lakehouse.scratch`): the tasks write the parsed rows there as
    Parquet and hand Spark only the columns the facts need, which are aggregated in the parsing job itself; the
    tables read the Parquet back (io/staging.py). None: Spark caches the parse on disk.

    format: one of READERS ("webdataset", "documents", "mmc4", "nemo_parquet", "pdf", "warc", "html").
    An empty list of paths gives an empty result (NeMo Curator's readers do the same); folders or globs
    that match no file raise FileNotFoundError, so a mistyped location never passes for an empty dataset.
    Samples whose id appears in more than one document keep the first document (ordered by
    file, then position in the file) and quarantine the others as `duplicate_sample_id`.
    """
    if format not in READERS:
        raise ValueError(f"format must be one of {sorted(READERS)}, got {format!r}")
    options = options or ReaderOptions()
    files = list_files(paths, patterns or PATTERNS[format]) if paths else []
    if not files and paths:  # a folder or glob matching nothing is a mistake; an empty list is empty input (as NeMo)
        raise FileNotFoundError(f"no {format} input files under {paths!r}")
    # One partition per file with no shuffle: range gives slice i exactly the id i; the task maps it to its path.
    listing = spark.range(0, len(files), 1, max(1, len(files)))
    parse = _parse_files(READERS[format], options, files)
    persisted: list[DataFrame] = []  # what to release, also when this fails half-way
    stage = Staging.new(staging) if staging is not None else None
    try:
        if stage is None:
            # Both caches (the parse, the items) hold image bytes or long texts: persist_large_rows. They fill on
            # first use: the parse in the facts job, the items in the first write, so no job runs to fill them.
            union = persist_large_rows(listing.mapInArrow(parse, UNION))
            persisted.append(union)
            facts = _parse_facts(union.select(*_FACT_COLUMNS).mapInArrow(_task_facts, _FACT_ROWS))  # fills it
        else:  # the one job that parses: the facts of the keys, and the parts holding the rows
            columns = _passthrough_columns([], options, FIELDS.get(format, {}))
            known = FIELDS.get(format) is not None or options.fields is not None  # columns known before the parse
            items = (columns, _items_schema(columns)) if known else None
            facts = _parse_facts(listing.mapInArrow(_staged_parse(stage, parse, items), _FACT_ROWS))
            union = stage.read(spark, UNION, facts["parts"])
            if items is not None and _adoptable(facts, columns, options, format):
                parts = sorted(facts["items_parts"])
                result = _tables(union, facts, files, options, format, persisted, stage,
                                 stage.read(spark, items[1], parts))
                result.items_files = [stage.path(part) for part in parts]
                return result
        return _tables(union, facts, files, options, format, persisted, stage)
    except BaseException:
        release(persisted, stage)
        raise


def _tables(union: DataFrame, facts: dict, files: list[str], options: ReaderOptions, format: str,
            persisted: list[DataFrame], stage: Optional[Staging], items: Optional[DataFrame] = None) -> IngestResult:
    """The IngestResult of a parse (`union`) and its facts: duplicate sample ids quarantined, passthrough columns
    typed, one row per image; what it caches joins `persisted`. items: the items as the table's rows already (the
    staged ones `_adoptable` accepts)."""
    quarantine = union.where("kind = 'quarantine'").select(*QUARANTINE.fieldNames())
    if items is None:
        items = union.where("kind = 'item'")
        if facts["duplicate_sample_ids"]:
            docs = items.where("position = -1").select("sample_id", "origin", "source", "locator", "ordinal")
            rank = Window.partitionBy("sample_id").orderBy("source", "ordinal")
            losers = (
                docs.withColumn("_rank", F.row_number().over(rank))
                .withColumn("_first", F.first("origin").over(rank))
                .where("_rank > 1")
            )
            items = items.join(losers.select("sample_id", "origin"), ["sample_id", "origin"], "left_anti")
            quarantine = quarantine.unionByName(losers.select(
                "source", "locator", F.lit(STAGE).alias("stage"), F.lit("duplicate_sample_id").alias("reason"),
                F.concat(F.lit("sample id also in "), "_first").alias("detail"), "sample_id",
                F.lit(None).cast("string").alias("snippet"),
            ))
        items = _with_passthrough(items, facts["kinds"], options, FIELDS.get(format, {}))
        if stage is None:
            items = persist_large_rows(items, StorageLevel.MEMORY_AND_DISK)  # read 3 times (staged: Parquet will do)
            persisted.append(items)

    # An image is one row per (image_id, file): each task emits an image once. When every image row is the only
    # copy of an image some kept item uses (the facts tell), they are the images; otherwise the copy from the
    # first file is kept, and the copies to leave out (from later files, or used by no kept item) are found on
    # the ids alone and cached, so the planner sees their real size: while they are few the bytes are filtered
    # by a broadcast join where they lie, never shuffled.
    image_rows = union.where("kind = 'image'")
    if facts["duplicate_sample_ids"] or facts["image_copies"] or facts["unreferenced_images"]:
        copies = image_rows.select("image_id", "source")
        referenced = items.where("image_id IS NOT NULL").select("image_id").distinct()
        first = (copies.join(referenced, "image_id", "left_semi")
                 .groupBy("image_id").agg(F.min("source").alias("source")))
        unwanted = copies.join(first, ["image_id", "source"], "left_anti").persist(StorageLevel.MEMORY_AND_DISK)
        unwanted.count()
        persisted.append(unwanted)
        image_rows = image_rows.join(unwanted, ["image_id", "source"], "left_anti")
    images = image_rows.select(*IMAGES.fieldNames())
    if not facts["image_rows"]:
        images = no_rows(images)  # written without a Spark job
    if not facts["quarantined"] and not facts["duplicate_sample_ids"]:
        quarantine = no_rows(quarantine)
    counts = None if facts["duplicate_sample_ids"] else {
        k: facts[k] for k in ("documents", "text_items", "image_items", "quarantined")}
    requested = (*(options.fields or ()), *options.per_image_fields, *options.per_text_fields)
    return IngestResult(items, images, quarantine, files, persisted, tuple(dict.fromkeys(requested)), counts, stage)


def _parse_facts(rows: DataFrame) -> dict:
    """What the parse holds, from its tasks' facts (`_TaskFacts` rows): item counts per modality, whether a sample
    id or an image repeats or an image row is used by no item (each of which needs a join to settle), the
    distinct passthrough kinds (one JSON map per field combination, a small set) and, staged, the parts written.
    The keys of all tasks summed, then one row."""
    per_key = rows.groupBy("key").agg(*[F.sum(c).alias(c) for c in _COUNTS])
    totals = ("documents", "text_items", "image_items", "quarantined", "image_rows")
    row = per_key.selectExpr(  # SQL text: a few calls to the JVM where column objects take hundreds
        *[f"coalesce(sum({name}), 0) AS {name}" for name in totals],
        "coalesce(max(documents) > 1, false) AS duplicate_sample_ids",
        "coalesce(max(CASE WHEN startswith(key, 'i') THEN image_rows END) > 1, false) AS image_copies",
        # an image row no item uses, or an item whose image has no row: the copies must be chosen by a join
        "count_if(startswith(key, 'i') AND (image_rows > 0) != (uses > 0)) > 0 AS unreferenced_images",
        *[f"collect_list(CASE WHEN startswith(key, '{p}') THEN substring(key, 2) END) AS {p}" for p in "kpq"],
    ).first()
    facts = {name: row[name] for name in (*totals, "duplicate_sample_ids", "image_copies", "unreferenced_images")}
    return {**facts, "kinds": [json.loads(k) for k in row.k], "parts": row.p, "items_parts": row.q}


def _passthrough_columns(kinds: list[dict], options: ReaderOptions, declared: dict[str, str]) -> list[tuple]:
    """(field, column name, column kind, kinds seen) of each passthrough column of `items`.

    `kinds`: the distinct field -> kind maps of the parsed items (duplicates included); with the format's
    `declared` fields they give the columns. A field seen with several kinds becomes a string column (numbers as
    their JSON text)."""
    kinds_seen: dict[str, set] = {name: {kind} for name, kind in declared.items()}
    for seen in kinds:
        for name, kind in seen.items():
            kinds_seen.setdefault(name, set()).add(kind)
    names = list(options.fields) if options.fields is not None else sorted(kinds_seen)
    return [(name, _DELTA_UNSAFE.sub("_", name), _column_kind(kinds_seen.get(name, set()) - {"null"}),
             frozenset(kinds_seen.get(name, set()) - {"null"})) for name in names]


def _items_schema(columns: list[tuple]) -> T.StructType:
    """The `items` table's schema with these passthrough columns (every column nullable, as Spark reads them)."""
    return T.StructType([T.StructField(f.name, f.dataType) for f in ITEMS.fields]
                        + [T.StructField(column, _KINDS[kind]) for _, column, kind, _ in columns])


def _adoptable(facts: dict, columns: list[tuple], options: ReaderOptions, format: str) -> bool:
    """Whether the staged items parts are `items` as it is to be written: every item was staged typed (as the
    facts name its parts), no sample id repeats (no row to leave out) and the parse saw no passthrough field, and
    no kind of one, beyond the `columns` the tasks typed before the parse."""
    seen = _passthrough_columns(facts["kinds"], options, FIELDS.get(format, {}))
    return (bool(facts["items_parts"]) and not facts["duplicate_sample_ids"]
            and [c[:3] for c in seen] == [c[:3] for c in columns] and all(k <= {kind} for _, _, kind, k in seen))


def _with_passthrough(items: DataFrame, kinds: list[dict], options: ReaderOptions,
                      declared: dict[str, str]) -> DataFrame:
    """Expand the encoded passthrough JSON of `items` into one typed column per field (`_passthrough_columns`)."""
    values = F.from_json("passthrough", "map<string,string>")
    columns = []
    for name, column, kind, _ in _passthrough_columns(kinds, options, declared):
        value = values[name]
        if kind == "boolean":
            value = value == F.lit("true")
        elif kind != "string":
            value = value.cast(kind)
        columns.append(value.alias(column))
    return items.select(*ITEMS.fieldNames(), *columns)


def _column_kind(kinds: set) -> str:
    if kinds == {"boolean"}:
        return "boolean"
    if kinds == {"bigint"}:
        return "bigint"
    if kinds and kinds <= {"bigint", "double"}:
        return "double"
    return "string"
