"""Image bytes read after ingest: lazy image items (`image_id` null, a `source_ref` to read) become images.

NeMo Curator's materialization, on the lakehouse: bytes are read in executors from what `source_ref`
locates (a byte range, a tar member, a whole file; one frame of a multi-frame TIFF), each source file
opened once per task, then content-addressed as at ingest. `steps.materialize` stores the result;
exports use it for `materialize_on_write` and decide with `on_materialize_error` what to do with image
items that still have no bytes.

>>> with materialize_images(items) as done:
...     done.items.where("materialize_error IS NOT NULL").show()
"""
from __future__ import annotations

import json
import tarfile
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence

import fsspec
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema

from mmcurate.images import MAX_PIXELS, ImageInfo, extract_tiff_frame, probe, sha256_hex
from mmcurate.io.documents import DANGEROUS_IMAGE, arrow_batch
from mmcurate.io.staging import PART, Staging, release
from mmcurate.schema import IMAGES, is_modality, items_columns
from mmcurate.spark import persist_large_rows

ON_MATERIALIZE_ERROR = ("error", "warn", "drop_row", "drop_sample")
"""What an export does with image items that have no bytes: NeMo Curator's writer options."""

IMAGE_FIELDS = [(f.name, {"string": pa.string(), "binary": pa.binary(), "int": pa.int32(),
                           "bigint": pa.int64()}[f.dataType.simpleString()]) for f in IMAGES.fields]
"""The `images` columns as Arrow fields, for the rows executors return."""
RESULT = pa.schema([("sample_id", pa.string()), ("position", pa.int32()), ("materialize_error", pa.string()),
                    *IMAGE_FIELDS])
"""One row per image item tried: its new image_id and the image's columns, or the reason it has no bytes."""
BATCH_ROWS = 256
BATCH_BYTES = 4 * 2**20
"""Rows returned to Spark per Arrow batch: a few megabytes keep the worker and the JVM working side by side (a
32 MB batch made a 10,000-URL fetch 1.5 times slower: each side waited for the other's whole batch)."""
_KEYS = ("sample_id", "position", "materialize_error", "image_id")


def source_path() -> Column:
    """The path a source_ref locates (null when it has none)."""
    return F.get_json_object("source_ref", "$.path")


class MaterializeError(RuntimeError):
    """An export met image items without bytes under on_materialize_error="error"."""


class SourceError(ValueError):
    """Bytes a source_ref locates could not be read; `reason` is NeMo Curator's wording of what failed."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def needs_bytes(only_missing_binary: bool = True, retry_errors: bool = False) -> Column:
    """Image items whose bytes are to be read from their `source_ref` (a local or fsspec path; none gives NeMo's
    "missing path" error), leaving web images, a URL without a path or an http(s) path, to the fetch stage:
    those without an image_id (all when not only_missing_binary), skipping ones that failed unless retry_errors."""
    path = source_path()
    web = F.coalesce(F.lower(path).rlike("^https?://"), F.lit(False)) | \
        ((path.isNull() | (path == "")) & F.col("image_url").isNotNull())
    wanted = is_modality("image") & ~web
    if only_missing_binary:
        wanted &= F.col("image_id").isNull()
    if not retry_errors:
        wanted &= F.col("materialize_error").isNull()
    return wanted


@dataclass
class Materialized:
    """Items with `image_id` / `materialize_error` set where bytes were read or failed, the new `images` rows
    (one per image_id) and per tried item its `results` (the keys, image_id and error); a context manager
    releasing the cached reads (`results` and any other frame in `cached`) and the `staging` folder of the
    bytes, if any."""

    items: DataFrame
    images: DataFrame
    results: DataFrame
    cached: tuple = ()
    staging: Optional[Staging] = None

    def counts(self) -> dict:
        """Items tried, materialized, and failed per reason (the error's text before its first colon)."""
        return self._counts(self._per_reason())

    def _per_reason(self, *more: Column) -> list:
        """One row per failure reason (null: materialized) with its item `count` and the aggregates `more`."""
        reason = F.when(F.col("materialize_error").isNotNull(), F.substring_index("materialize_error", ":", 1))
        return self.results.groupBy(reason.alias("reason")).agg(F.count("*").alias("count"), *more).collect()

    @staticmethod
    def _counts(rows: list) -> dict:
        failed = {r.reason: r["count"] for r in rows if r.reason is not None}
        tried = sum(r["count"] for r in rows)
        return {"tried": tried, "materialized": tried - sum(failed.values()), "failed": failed}

    def unpersist(self) -> None:
        release((self.results, *self.cached), self.staging)

    def __enter__(self) -> "Materialized":
        return self

    def __exit__(self, *exc) -> None:
        self.unpersist()


def materialize_images(items: DataFrame, only_missing_binary: bool = True, retry_errors: bool = False,
                       max_pixels: int = MAX_PIXELS, staging: Optional[str] = None) -> Materialized:
    """Read the bytes of `needs_bytes` items in executors (grouped by source file) and content-address them.

    Reading is done once, here; bombs (over max_pixels) are refused from the header, like at ingest. Items not
    tried are returned unchanged. staging: as for `fetch_images`, a folder executors and this process reach, where
    the bytes wait as Parquet while only the keys go through Spark; None: Spark caches them on disk.
    """
    items = items_columns(items, where="materialize_images(items)")
    todo = items.where(needs_bytes(only_missing_binary, retry_errors)).select(
        "sample_id", "position", "source_ref", source_path().alias("_path"),
        F.get_json_object("source_ref", "$.byte_offset").cast("long").alias("_offset"))
    by_file = todo.repartition("_path").sortWithinPartitions("_path", "_offset")
    return produce_once(Materialized, items, by_file.mapInArrow, _read_sources(max_pixels), RESULT, _KEYS,
                        ("sample_id", "position"), staging)


def produce_once(kind: type, items: DataFrame, map_in_arrow: Callable, produce: Callable, schema: pa.Schema,
                 keys: Sequence[str], by: Sequence[str], staging: Optional[str],
                 per_item: Callable[[DataFrame], DataFrame] = lambda keys: keys) -> "Materialized":
    """Run `produce` (mapInArrow over the rows to try, giving `schema` rows: `keys` and the image columns) once,
    now, and return a `kind` (Materialized or a subclass): `items` with each tried item's result, the new images
    (copies found on the keys, `images_of`) and what to release. `per_item` turns the produced keys into one row
    per tried item (its `sample_id`, `position`). The bytes wait in Spark's disk cache, or with `staging` as
    Parquet parts there while only the keys are cached (io/staging.py)."""
    spark_schema = from_arrow_schema(schema)
    cached, stage, results = [], None, None
    try:
        if staging is None:
            rows = persist_large_rows(map_in_arrow(produce, spark_schema))
            cached.append(rows)
            produced = rows.select(*keys)
        else:
            stage = Staging.new(staging)
            key_schema = T.StructType([spark_schema[k] for k in keys] + [T.StructField(PART, T.StringType())])
            produced = map_in_arrow(stage.keeping(produce, schema, keys), key_schema)
        # The keys cached apart: counted and joined to the items without reading the bytes again.
        results = per_item(produced).persist(StorageLevel.MEMORY_AND_DISK)
        if stage is not None:  # the parts of the attempts whose keys Spark kept (one part a task)
            parts = [row[0] for row in results.select(PART).distinct().collect()]
            rows = stage.read(items.sparkSession, spark_schema, parts)
        images, copies = images_of(rows, results, by)
    except BaseException:
        release([*cached, *filter(None, [results])], stage)
        raise
    return kind(apply_results(items, results), images, results, (*cached, *filter(None, [copies])), stage)


def apply_results(items: DataFrame, results: DataFrame) -> DataFrame:
    """`items` with the `image_id` and `materialize_error` of the items `results` (one row per sample_id,
    position tried) has; the others unchanged."""
    tried = results.select("sample_id", "position", F.lit(True).alias("_tried"), F.col("image_id").alias("_id"),
                           F.col("materialize_error").alias("_error"))
    return items.join(tried, ["sample_id", "position"], "left").select(*[
        F.when(F.col("_tried"), F.col("_id")).otherwise(F.col("image_id")).alias("image_id") if c == "image_id" else
        F.when(F.col("_tried"), F.col("_error")).otherwise(F.col("materialize_error")).alias(c)
        if c == "materialize_error" else F.col(f"`{c}`") for c in items.columns])


def images_of(rows: DataFrame, keys: DataFrame, by: Sequence[str]) -> tuple[DataFrame, Optional[DataFrame]]:
    """The `images` rows of the bytes `rows` holds, one per image_id (bytes read twice stored once), and the cached
    frame to release with them (None when there is none). The later copies of an image (usually none) are found on
    `keys` (the `by` columns, unique per row of `rows`, and image_id: small) and cached now, so the planner sees
    their size and leaves them out by a broadcast join where the bytes lie: the bytes are never shuffled or sorted,
    as deduplicating the rows themselves would."""
    ids, key = keys.where("image_id IS NOT NULL"), F.struct(*by)
    images = rows.where("image_id IS NOT NULL")
    first = ids.groupBy("image_id").agg(F.min(key).alias("_first"), F.max(key).alias("_last"))
    if not first.agg(F.count_if(F.col("_first") != F.col("_last"))).first()[0]:  # the usual case: one small job
        return images.select(*IMAGES.fieldNames()), None
    copies = (ids.join(first, "image_id").where(key != F.col("_first")).select(*by).distinct()
              .persist(StorageLevel.MEMORY_AND_DISK))
    copies.count()
    return images.join(copies, list(by), "left_anti").select(*IMAGES.fieldNames()), copies


def image_columns(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[dict, ImageInfo]:
    """The `images` columns of `data` (content-addressed, size from the header) and the header probe, whose
    error the caller judges (undecodable bytes stay images; DANGEROUS_IMAGE ones must not)."""
    info = probe(data, max_pixels=max_pixels, verify=False)
    return dict(image_id=sha256_hex(data), binary_content=data, content_type=info.content_type, width=info.width,
                height=info.height, n_bytes=len(data)), info


def record_batches(rows: Iterable[dict], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """`rows` as Arrow batches of at most BATCH_ROWS rows or about BATCH_BYTES of binary_content (images are
    large: a batch of 10,000 would not fit an executor's Arrow buffer)."""
    batch, size = [], 0
    for row in rows:
        batch.append(row)
        size += len(row.get("binary_content") or b"")
        if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
            yield arrow_batch(batch, schema)
            batch, size = [], 0
    if batch:
        yield arrow_batch(batch, schema)


def _read_sources(max_pixels: int):
    """The mapInArrow function: (sample_id, position, source_ref) rows sorted by path in, RESULT rows out."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with _Sources() as sources:
            rows = (_result(row, sources, max_pixels) for batch in batches
                    for row in batch.select(["sample_id", "position", "source_ref"]).to_pylist())
            yield from record_batches(rows, RESULT)

    return run


def _result(row: dict, sources: "_Sources", max_pixels: int) -> dict:
    out = {"sample_id": row["sample_id"], "position": row["position"], "materialize_error": None,
           **{name: None for name in IMAGES.fieldNames()}}
    try:
        data = read_source(json.loads(row["source_ref"]), sources)
    except SourceError as e:
        out["materialize_error"] = str(e)
        return out
    except (OSError, tarfile.TarError, ValueError, TypeError, EOFError) as e:
        out["materialize_error"] = f"failed to read path: {type(e).__name__}: {e}"
        return out
    columns, info = image_columns(data, max_pixels)
    if info.error in DANGEROUS_IMAGE:
        out["materialize_error"] = f"{info.error}: {info.detail}"
        return out
    out.update(columns)
    return out


_COMPRESSED = (".gz", ".tgz", ".bz2", ".xz", ".zst")


class _Sources:
    """Open files and tars of one task, reused while rows of the same path follow each other."""

    def __init__(self):
        self.path, self.file, self.tar = None, None, None

    def open(self, path: str):
        if path != self.path:
            self.close()
            self.file, self.path = fsspec.open(path, "rb").open(), path
        return self.file

    def tar_of(self, path: str) -> tarfile.TarFile:
        handle = self.open(path)
        if self.tar is None:
            handle.seek(0)
            self.tar = tarfile.open(fileobj=handle, mode="r:*")
        return self.tar

    def close(self) -> None:
        for closable in (self.tar, self.file):
            if closable is not None:
                closable.close()
        self.path, self.file, self.tar = None, None, None

    def __enter__(self) -> "_Sources":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_source(ref: dict, sources: Optional[_Sources] = None) -> bytes:
    """The bytes a NeMo source_ref locates: a byte range, a tar member, or a whole file; one TIFF frame when
    frame_index is set. Errors read like NeMo Curator's (`missing path`, `missing member 'm'`...)."""
    if not isinstance(ref, dict):
        raise SourceError("missing path", f"source_ref is not a JSON object ({type(ref).__name__})")
    own = sources is None
    sources = sources or _Sources()
    try:
        path, member = ref.get("path"), ref.get("member")
        offset, size = ref.get("byte_offset"), ref.get("byte_size")
        if not path:
            raise SourceError("missing path", "source_ref has no path")
        if member and offset is not None and size and not path.lower().endswith(_COMPRESSED):
            handle = sources.open(path)  # offsets of a compressed tar are in its uncompressed stream
            handle.seek(int(offset))
            data = handle.read(int(size))
            if len(data) != int(size):
                raise SourceError("range read error", f"member {member!r}: {len(data)} of {size} bytes")
        elif member:
            try:
                extracted = sources.tar_of(path).extractfile(member)
            except KeyError:
                extracted = None
            if extracted is None:
                raise SourceError("missing member", repr(member))
            data = extracted.read()
        else:
            handle = sources.open(path)
            handle.seek(0)
            data = handle.read()
    finally:
        if own:
            sources.close()
    if ref.get("frame_index") is not None:
        frame = extract_tiff_frame(data, int(ref["frame_index"]))
        if frame is None:
            raise SourceError("failed to extract frame", f"{ref['frame_index']} from {member or path!r}")
        data = frame
    return data


def export_inputs(items: DataFrame, images: DataFrame, materialize_on_write: bool = True,
                  on_materialize_error: str = "warn") -> tuple[DataFrame, DataFrame, Optional[Materialized]]:
    """(items, images, what was materialized) for an export: lazy items read first (materialize_on_write), then
    image items still without bytes kept with a warning ("warn"), refused ("error"), or dropped alone
    ("drop_row") or with their sample ("drop_sample"). The caller unpersists the Materialized."""
    if on_materialize_error not in ON_MATERIALIZE_ERROR:
        raise ValueError(f"on_materialize_error must be one of {ON_MATERIALIZE_ERROR}, got {on_materialize_error!r}")
    items = items_columns(items, where="export(items)")
    done = None
    # image items without an image_id first: a cheap check (Parquet statistics answer it) that spares the
    # usual export, where every image has its bytes, the path parsing of needs_bytes
    lazy = items.where(is_modality("image") & F.col("image_id").isNull())
    if materialize_on_write and not lazy.isEmpty() and not lazy.where(needs_bytes()).isEmpty():
        done = materialize_images(items)
        items = done.items
        images = images.unionByName(
            done.images.join(images.select("image_id"), "image_id", "left_anti"), allowMissingColumns=True)
    known = images.select("image_id", F.lit(True).alias("_known"))
    flagged = items.join(known, "image_id", "left").withColumn(
        "_no_bytes", is_modality("image") & F.col("_known").isNull())
    missing = flagged.where("_no_bytes")
    if on_materialize_error in ("warn", "error"):
        count = missing.count()
        if count:
            first = missing.orderBy("sample_id", "position").first()
            message = (f"{count} image items have no bytes. First: sample {first.sample_id!r} position "
                       f"{first.position}: {first.materialize_error or first.image_url or 'no source'}")
            if on_materialize_error == "error":
                raise MaterializeError(f"Materialization failed ({message})")
            warnings.warn(message + " (written without an image member)", stacklevel=3)
    elif on_materialize_error == "drop_row":
        items = flagged.where(~F.col("_no_bytes")).select(*items.columns)
    else:
        items = items.join(missing.select("sample_id").distinct(), "sample_id", "left_anti")
    return items, images, done
