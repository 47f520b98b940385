"""Export items as MINT-1T / NeMo Curator WebDataset shards, written inside Spark executors.

Per sample, NeMo Curator's layout: image members `{key}.{position}.{ext}` in position order, then
`{key}.json` = {"sample_id", "texts", "images", **passthrough}. Samples (or sample copies, with a
`repeats` table) go to shards by a hash of their id; each task streams its samples into
`{prefix}-{shard:06d}.tar` and returns manifest rows. The run ends with `manifest.json` (shards,
totals, options, the caller's lineage) and `lineage/` (Parquet: where each written sample came from).

>>> manifest = write_webdataset(items, images, "s3://bucket/wds", samples_per_shard=1000, seed=7)
>>> manifest.select(F.sum("n_samples"), F.sum("n_bytes")).show()
"""
from __future__ import annotations

import base64
import datetime
import decimal
import functools
import hashlib
import itertools
import json
import math
import mimetypes
import os
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional
from urllib.parse import quote

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.errors import PythonException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.io.materialize import export_inputs
from mmcurate.io.nemo import IMAGE_COLUMNS, image_bytes, join_image_bytes, literal_column
from mmcurate.schema import CORE_ITEM_COLUMNS, METADATA_POSITION, MODALITIES, items_columns, require_columns

DEFAULT_SAMPLES_PER_SHARD = 1000
BROADCAST_BYTES = 128 * 2**20
"""Largest estimated size of a broadcast join side: the images table (joined after the byte-free shuffle, so
no shuffle carries bytes) or else the byte-free image occurrences (so bytes are shuffled once)."""

MANIFEST = T.StructType(
    [
        T.StructField("shard", T.IntegerType()),
        T.StructField("path", T.StringType()),
        T.StructField("n_samples", T.LongType()),
        T.StructField("n_items", T.LongType()),
        T.StructField("n_images", T.LongType()),
        T.StructField("n_bytes", T.LongType()),
        T.StructField("sha256", T.StringType()),
    ]
)
"""One row per shard: its path, samples, content items (text + image), image members, tar size and digest."""

_ARROW_MANIFEST = pa.schema(
    [("shard", pa.int32()), ("path", pa.string()), ("n_samples", pa.int64()), ("n_items", pa.int64()),
     ("n_images", pa.int64()), ("n_bytes", pa.int64()), ("sha256", pa.string())]
)
_CONTENT_TYPE_EXT = {  # NeMo Curator's table; other types go through mimetypes, else "bin"
    "image/jpeg": "jpg", "image/png": "png", "image/tiff": "tiff", "image/webp": "webp",
    "image/gif": "gif", "image/bmp": "bmp", "image/avif": "avif",
}
_JSON_KEYS = ("sample_id", "texts", "images")
_COPY_KEY = "copy"
_SHARD, _COPY, _ORDER = "__shard", "__copy", "__order"
_PROGRESS, _PLAN, _MANIFEST_FILE, _LINEAGE = ".progress", "plan.json", "manifest.json", "lineage"
_PREFIX = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def shard_of(n_shards: int, seed: Optional[int] = None, sample_id: str | Column = "sample_id",
             copy: str | Column | None = None) -> Column:
    """The shard a sample goes to: pmod(xxhash64(sample_id[, seed]), n_shards), the same on every run.

    With `copy` (a repeats export), copy 0 goes there too and copy j >= 1 to
    pmod(xxhash64(sample_id, j[, seed]), n_shards).

    >>> items.select("sample_id", shard_of(100, seed=7).alias("shard"))
    """
    hashed = F.xxhash64(sample_id) if seed is None else F.xxhash64(sample_id, F.lit(seed))
    first = F.pmod(hashed, F.lit(n_shards)).cast("int")
    if copy is None:
        return first
    copy = F.col(copy) if isinstance(copy, str) else copy
    return F.when(copy == 0, first).otherwise(F.pmod(_copy_hash(sample_id, copy, seed), F.lit(n_shards)).cast("int"))


def _copy_hash(sample_id: str | Column, copy: str | Column, seed: Optional[int]) -> Column:
    """xxhash64(sample_id, copy[, seed]): places copies after the first and orders shuffled shards."""
    return F.xxhash64(sample_id, copy) if seed is None else F.xxhash64(sample_id, copy, F.lit(seed))


def member_key(sample_id: str) -> str:
    """A sample's tar key: NeMo's `quote(sample_id, safe="")` with '.' escaped too (as %2E).

    The key never holds '/', so no member can land outside the folder a tar is extracted into.
    Escaping dots is our one departure from NeMo Curator: the `webdataset` library splits member
    names at the first dot, so with NeMo's key it skips samples whose id starts with '.' ('../x')
    and mis-groups ids like 'doc.pdf'. `unquote(key) == sample_id` still holds, and the JSON
    carries the id verbatim.
    """
    return quote(sample_id, safe="").replace(".", "%2E")


def copy_key(sample_id: str, copy: int) -> str:
    """The tar key of copy `copy` of a sample: `member_key` for copy 0, `{member_key}+{copy}` after
    ('+' is escaped by `member_key`, so these never collide with another sample's key)."""
    return member_key(sample_id) if copy == 0 else f"{member_key(sample_id)}+{copy}"


def write_webdataset(
    items: DataFrame,
    images: DataFrame,
    out_dir: str,
    *,
    samples_per_shard: Optional[int] = None,
    shard_bytes: Optional[int] = None,
    prefix: str = "shard",
    seed: Optional[int] = None,
    repeats: Optional[DataFrame] = None,
    shuffle: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    lineage: Optional[dict] = None,
    storage_options: Optional[dict] = None,
    materialize_on_write: bool = True,
    on_materialize_error: str = "warn",
) -> DataFrame:
    """Write `{prefix}-{shard:06d}.tar` shards, `manifest.json` and `lineage/` under `out_dir`; return the
    manifest (MANIFEST, one row per shard).

    The number of shards comes from one aggregation over the byte-free items: sample copies /
    `samples_per_shard` (default 1000) or payload bytes (texts + image bytes, times repeats) /
    `shard_bytes`; give at most one. Each sample goes to shard `shard_of(n_shards, seed)`; every
    shard number gets a tar, empty if no sample hashed to it. Tasks write each shard to a hidden
    temporary name and rename it when complete, so a killed task never leaves a truncated tar under
    a final name. Output is byte-identical across reruns of the same data and options.

    repeats: (sample_id string, repeats int); only its samples with repeats > 0 are written, each as
        copies 0..r-1 (key `copy_key`, `"copy": j` in the JSON of copies j >= 1), placed and sized
        as distinct samples.
    shuffle: order each shard's samples by xxhash64(sample_id, copy[, seed]) instead of by id.
    resume: accept an out_dir holding an interrupted run of the same plan: finished shards are kept
        (their image bytes are not even read) and the rest written; a different plan is refused.
    out_dir: a local path or an fsspec URI (`storage_options` go to fsspec; `lineage/` is written by
        Spark, so Spark must be able to write there too); a non-empty one is refused unless
        `overwrite=True` (which deletes everything in it first) or `resume=True`.
    lineage: JSON-serialisable dict stored verbatim in manifest.json (recipe, table versions...).
    materialize_on_write / on_materialize_error: lazy image items are read from their source_ref first;
        image items still without bytes keep their slot (the member name in `images`, no member) with a
        warning ("warn"), fail the export ("error"), or are dropped ("drop_row", "drop_sample").
    Items with a modality other than text/image/metadata, or at an invalid position, fail the
    job with a ValueError naming the sample. Only one row per shard reaches the driver.

    >>> write_webdataset(items, images, "/data/wds", shard_bytes=512 * 2**20, seed=7).show()
    """
    samples_per_shard = _samples_per_shard(samples_per_shard, shard_bytes)
    _check_options(prefix, resume, overwrite, lineage)
    items = items_columns(items, where="write_webdataset(items)")
    passthrough = _passthrough_columns(items, copies=repeats is not None)
    require_columns(images, IMAGE_COLUMNS, where="write_webdataset(images)")
    if shard_bytes is not None:
        require_columns(images, {"n_bytes": "bigint"}, where="write_webdataset(images, shard_bytes=...)")
    items, images, materialized = export_inputs(items, images, materialize_on_write, on_materialize_error)
    try:
        target = _Target(_absolute(out_dir), prefix, dict(storage_options or {}))
        fs, root = target.filesystem()
        _prepare_out_dir(fs, root, overwrite, resume)
        copies = _copies(items, repeats)
        totals = _totals(copies, images, shard_bytes)
        n_shards = _shard_count(totals, samples_per_shard, shard_bytes)
        plan = {"n_shards": n_shards, "samples_per_shard": samples_per_shard, "shard_bytes": shard_bytes, "seed": seed,
                "shuffle": shuffle, "prefix": prefix, "repeats": repeats is not None,
                "fingerprint": _fingerprint(totals, passthrough)}
        done, finished = _start(fs, root, target, plan, resume)
        if finished:  # a resume of a finished export: nothing to do
            records = [done[number] for number in range(n_shards)]
        else:
            placed = _placed(copies, n_shards, seed, shuffle)
            records = _write_missing_shards(placed, images, target, plan, _join_strategy(totals), done, passthrough)
            _write_lineage(placed, f"{target.out_dir}/{_LINEAGE}", totals["with_metadata"] == totals["samples"])
            _finish(fs, root, records, plan, lineage)
        return items.sparkSession.createDataFrame(
            [tuple(record[name] for name in MANIFEST.fieldNames()) for record in records], MANIFEST
        )
    finally:
        if materialized is not None:
            materialized.unpersist()


def _write_missing_shards(placed: DataFrame, images: DataFrame, target: _Target, plan: dict, strategy: str,
                          done: dict[int, dict], passthrough: list[str]) -> list[dict]:
    """Write every shard not in `done` (finished ones are filtered out before any byte is read); return all
    shards' records in shard order. Shards no sample went to are written empty by the driver."""
    n_shards, done = plan["n_shards"], dict(done)
    if len(done) < n_shards:
        todo = placed.where(~F.col(_SHARD).isin(sorted(done))) if done else placed
        writer_input = _writer_input(todo, images, n_shards, plan["shuffle"], strategy)
        done.update((record["shard"], record) for record in _write_shards(writer_input, target, passthrough))
    fs, root = target.filesystem()
    for number in range(n_shards):
        if number not in done:
            done[number] = _write_shard(fs, root, target, number, (), passthrough)
    return [done[number] for number in range(n_shards)]


@dataclass(frozen=True)
class _Target:
    """Where the shards go; travels to the executors with the task."""

    out_dir: str
    prefix: str
    storage_options: dict = field(default_factory=dict)

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The fsspec filesystem and root path of out_dir."""
        return fsspec.core.url_to_fs(self.out_dir, **self.storage_options)

    def shard_name(self, number: int) -> str:
        """File name of shard `number`."""
        return f"{self.prefix}-{number:06d}.tar"


def _samples_per_shard(samples_per_shard: Optional[int], shard_bytes: Optional[int]) -> Optional[int]:
    """Check the sizing options (at most one, positive) and apply the default."""
    if samples_per_shard is not None and shard_bytes is not None:
        raise ValueError("give samples_per_shard or shard_bytes, not both")
    for name, value in (("samples_per_shard", samples_per_shard), ("shard_bytes", shard_bytes)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    return DEFAULT_SAMPLES_PER_SHARD if samples_per_shard is None and shard_bytes is None else samples_per_shard


def _check_options(prefix: str, resume: bool, overwrite: bool, lineage: Optional[dict]) -> None:
    """Refuse a prefix that is not a plain file-name stem, resume with overwrite, and lineage JSON cannot hold."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"prefix must be a plain file-name stem (letters, digits, _ . -), got {prefix!r}")
    if resume and overwrite:
        raise ValueError("resume=True keeps finished shards and overwrite=True deletes them: give one")
    try:
        json.dumps(lineage, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lineage must be JSON-serialisable: {exc}") from exc


def _passthrough_columns(items: DataFrame, copies: bool = False) -> list[str]:
    """Items columns beyond the core ones; they become JSON keys, so they must not shadow the layout's own
    (nor `copy` when copies are written)."""
    columns = [name for name in items.columns if name not in CORE_ITEM_COLUMNS]
    reserved = (*_JSON_KEYS, _COPY_KEY) if copies else _JSON_KEYS
    clash = sorted(set(columns) & set(reserved))
    if clash:
        raise ValueError(f"passthrough columns {clash} would overwrite the JSON's own keys {list(reserved)}")
    return columns


def _absolute(out_dir: str) -> str:
    """out_dir as every executor must see it: URIs as given, local paths made absolute."""
    out_dir = os.fspath(out_dir)
    return out_dir.rstrip("/") if "://" in out_dir else os.path.abspath(out_dir)


def _prepare_out_dir(fs: fsspec.AbstractFileSystem, root: str, overwrite: bool, resume: bool) -> None:
    """Refuse a non-empty out_dir unless overwrite (which empties it) or resume; make sure it exists."""
    if fs.exists(root) and fs.ls(root, detail=False) and not resume:
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; pass overwrite=True to replace its contents "
                                  "(or resume=True to finish an interrupted export)")
        fs.rm(root, recursive=True)
    fs.makedirs(root, exist_ok=True)


def _copies(items: DataFrame, repeats: Optional[DataFrame]) -> DataFrame:
    """The byte-free items rows once per sample copy (`__copy` 0..r-1); copy 0 only without a repeats table."""
    if repeats is None:
        return items.withColumn(_COPY, F.lit(0))
    require_columns(repeats, ["sample_id", "repeats"], where="write_webdataset(repeats)")
    if not isinstance(repeats.schema["repeats"].dataType, T.IntegralType):
        raise ValueError(f"repeats.repeats must be an integer column, got {repeats.schema['repeats'].dataType}")
    wanted = repeats.where(F.col("repeats") > 0).select("sample_id", F.col("repeats").cast("int").alias("__repeats"))
    return (
        items.join(wanted, "sample_id")
        .withColumn(_COPY, F.explode(F.sequence(F.lit(0), F.col("__repeats") - 1)))
        .drop("__repeats")
    )


def _is_occurrence() -> Column:
    """An image item that names an image_id: the only rows that get bytes joined in."""
    return F.coalesce((F.col("modality") == "image") & F.col("image_id").isNotNull(), F.lit(False))


def _totals(copies: DataFrame, images: DataFrame, shard_bytes: Optional[int]) -> dict:
    """One aggregation over the byte-free rows, per sample copy then overall: sample copies, payload bytes
    (with shard_bytes), image occurrences' estimated size (to choose the join), copies with exactly one
    metadata row (to choose the lineage plan), an order-free digest of the rows; plus the images' bytes."""
    payload = F.coalesce(F.octet_length("text_content"), F.lit(0))
    rows = copies.where(F.col("sample_id").isNotNull())  # as count_distinct would count
    if shard_bytes is not None:
        rows = rows.join(images.select("image_id", F.col("n_bytes").alias("__n_bytes")), "image_id", "left")
        payload = payload + F.coalesce("__n_bytes", F.lit(0))
    hashed = [F.to_json(literal_column(f.name)) if isinstance(f.dataType, T.MapType) else literal_column(f.name)
              for f in copies.schema.fields]
    per_copy = rows.groupBy("sample_id", _COPY).agg(
        F.sum(payload).alias("payload"),
        F.sum(F.when(_is_occurrence(), _row_bytes(copies))).alias("occurrence_bytes"),
        F.count(F.when(F.col("modality") == "metadata", 1)).alias("metadata_rows"),
        F.bit_xor(F.xxhash64(*hashed)).alias("digest"),
    )
    image_bytes = F.col("n_bytes") if "n_bytes" in images.columns else F.lit(None).cast("bigint")
    both = per_copy.unionByName(images.select(image_bytes.alias("image_bytes")), allowMissingColumns=True)
    found = both.agg(  # one job: the images' sizes are summed alongside
        F.count("sample_id").alias("samples"),
        F.sum("payload").alias("payload"),
        F.sum("occurrence_bytes").alias("occurrence_bytes"),
        F.count(F.when(F.col("metadata_rows") == 1, 1)).alias("with_metadata"),
        F.bit_xor("digest").alias("digest"),
        F.sum("image_bytes").alias("image_bytes"),
    ).first().asDict()
    return {**{key: value or 0 for key, value in found.items()}, "image_bytes": found["image_bytes"]}


def _row_bytes(df: DataFrame) -> Column:
    """A row's estimated size: its string and binary bytes, 8 for any other column, 16 of overhead."""
    sizes = [F.coalesce(F.octet_length(literal_column(f.name)), F.lit(0))
             if isinstance(f.dataType, (T.StringType, T.BinaryType)) else F.lit(8) for f in df.schema.fields]
    return sum(sizes, F.lit(16))


def _shard_count(totals: dict, samples_per_shard: Optional[int], shard_bytes: Optional[int]) -> int:
    """Number of shards from the totals; never more shards than sample copies."""
    if shard_bytes is None:
        return math.ceil(totals["samples"] / samples_per_shard)
    return min(totals["samples"], max(1, math.ceil(totals["payload"] / shard_bytes)))


def _fingerprint(totals: dict, passthrough: list[str]) -> str:
    """What a resume must find unchanged besides the listed options: the rows' digest and count, the JSON keys."""
    basis = {"digest": totals["digest"], "samples": totals["samples"], "passthrough": passthrough}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode("utf-8")).hexdigest()


def _placed(copies: DataFrame, n_shards: int, seed: Optional[int], shuffle: bool) -> DataFrame:
    """The byte-free rows with their shard and, shuffled, their order key inside it."""
    placed = copies.withColumn(_SHARD, shard_of(n_shards, seed, copy=F.col(_COPY)))
    return placed.withColumn(_ORDER, _copy_hash("sample_id", _COPY, seed)) if shuffle else placed


def _join_strategy(totals: dict) -> str:
    """How image bytes meet their items: broadcast the images table if it is small ("images"), else the
    byte-free occurrences if they are ("occurrences"), else a shuffle join ("shuffle")."""
    if totals["image_bytes"] is not None and totals["image_bytes"] <= BROADCAST_BYTES:
        return "images"
    return "occurrences" if totals["occurrence_bytes"] <= BROADCAST_BYTES else "shuffle"


def _writer_input(placed: DataFrame, images: DataFrame, n_shards: int, shuffle: bool, strategy: str) -> DataFrame:
    """Partition i holds shard i's rows with their image bytes (as `interleaved_rows` gives them), sorted by
    sample_id (or the shuffle key), copy, position.

    With a small images table the byte-free rows are shuffled to their writer task and the images
    broadcast-joined there, so no shuffle carries bytes; otherwise the bytes are joined first
    (`_with_bytes`) and shuffled to the writer. `repartitionById` places shard i in partition i; hash
    partitioning would put several shards in one task while leaving others empty.
    """
    if strategy == "images":
        rows = join_image_bytes(placed.repartitionById(n_shards, _SHARD), F.broadcast(image_bytes(images)), "left")
    else:
        rows = _with_bytes(placed, images, broadcast=strategy == "occurrences").repartitionById(n_shards, _SHARD)
    order = [_SHARD, *([_ORDER] if shuffle else []), "sample_id", _COPY, "position"]
    return rows.drop("image_id", "source_ref").sortWithinPartitions(*order)  # after the join: Spark drops one below


def _with_bytes(placed: DataFrame, images: DataFrame, broadcast: bool) -> DataFrame:
    """The rows with `binary_content`, image occurrences only going through the join.

    The images table is the streamed side; with `broadcast` the byte-free occurrences are broadcast,
    so the bytes' only shuffle is the one to their writer task. Text and metadata rows, and
    occurrences of images the table lacks, are unioned in after.
    """
    occurrences = placed.where(_is_occurrence())
    joined = join_image_bytes(image_bytes(images), F.broadcast(occurrences) if broadcast else occurrences, "inner")
    no_bytes = F.lit(None).cast("binary").alias("binary_content")
    missing = occurrences.join(images.select("image_id"), "image_id", "left_anti").select("*", no_bytes)
    others = placed.where(~_is_occurrence()).select("*", no_bytes)
    return joined.unionByName(missing).unionByName(others)


def _start(fs: fsspec.AbstractFileSystem, root: str, target: _Target, plan: dict,
           resume: bool) -> tuple[dict[int, dict], bool]:
    """The records of shards already finished, by shard, and whether the whole export is; records the plan
    on a first run.

    A resume finds the plan in `.progress/plan.json` (interrupted) or `manifest.json` (finished) and
    refuses to go on if it differs from this one.
    """
    stored = _read_json(fs, f"{root}/{_PROGRESS}/{_PLAN}")
    if stored is None and resume and fs.exists(f"{root}/{_MANIFEST_FILE}"):
        finished = _read_json(fs, f"{root}/{_MANIFEST_FILE}") or {}
        _check_plan(finished.get("options"), plan, root)
        return {record["shard"]: record for record in finished["shards"]}, True
    if stored is None:
        if fs.ls(root, detail=False):
            raise FileExistsError(f"{root} is not empty and holds no export to resume; pass overwrite=True")
        _write_json(fs, root, f"{_PROGRESS}/{_PLAN}", plan)
        return {}, False
    _check_plan(stored, plan, root)
    return _finished_shards(fs, root, target), False


def _check_plan(stored: Optional[dict], plan: dict, root: str) -> None:
    """ValueError naming what differs between the plan found in out_dir and this run's."""
    stored = {key: (stored or {}).get(key) for key in plan}
    changed = {key: (stored[key], plan[key]) for key in plan if stored[key] != plan[key]}
    if changed:
        listed = ", ".join(f"{key}: {before!r} then, {now!r} now" for key, (before, now) in changed.items())
        raise ValueError(f"cannot resume the export in {root}: its plan differs ({listed}); "
                         "rerun with the same data and options, or pass overwrite=True")


def _finished_shards(fs: fsspec.AbstractFileSystem, root: str, target: _Target) -> dict[int, dict]:
    """Manifest records of shards whose tar is in place with the size its progress record gives."""
    sizes = {info["name"].rsplit("/", 1)[-1]: info["size"] for info in fs.ls(root, detail=True)}
    done = {}
    for path in fs.ls(f"{root}/{_PROGRESS}", detail=False):
        name = path.rsplit("/", 1)[-1]
        record = _read_json(fs, path) if name.endswith(".tar.json") else None
        if record and sizes.get(target.shard_name(record["shard"])) == record["n_bytes"]:
            done[record["shard"]] = record
    return done


def _read_json(fs: fsspec.AbstractFileSystem, path: str) -> Optional[Any]:
    """A JSON file's content, or None when it is absent or unreadable (a record cut short by a kill)."""
    try:
        with fs.open(path, "rb") as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, ValueError):
        return None


def _write_json(fs: fsspec.AbstractFileSystem, root: str, name: str, content: Any) -> None:
    """Write `{root}/{name}` whole or not at all: into a temporary file in `.progress/`, then renamed."""
    fs.makedirs(f"{root}/{_PROGRESS}", exist_ok=True)
    temp = f"{root}/{_PROGRESS}/.{uuid.uuid4().hex}.tmp"
    with fs.open(temp, "wb") as handle:
        handle.write(json.dumps(content, ensure_ascii=False, indent=1).encode("utf-8"))
    fs.mv(temp, f"{root}/{name}")


def _write_lineage(placed: DataFrame, path: str, one_metadata_row_each: bool) -> None:
    """Parquet with one row per written sample copy: shard, key, sample_id, copy, source_ref (the metadata
    row's, else the lowest position's) and the tar member of its JSON; byte-free, computed by Spark.

    When every copy has exactly one metadata row (as ingested data has) those rows are the lineage rows,
    without the shuffle of a grouping.
    """
    if one_metadata_row_each:
        copies = placed.where(F.col("modality") == "metadata")
    else:
        first = F.min(F.struct("position", "source_ref"))["source_ref"].alias("source_ref")
        copies = placed.groupBy(_SHARD, "sample_id", _COPY).agg(first)
    (
        copies.withColumn("key", _key_column("sample_id", _COPY))
        .select(F.col(_SHARD).alias("shard"), "key", "sample_id", F.col(_COPY).alias("copy"), "source_ref",
                F.concat("key", F.lit(".json")).alias("member"))
        .write.mode("overwrite").parquet(path)
    )


def _key_column(sample_id: str, copy: str) -> Column:
    """`copy_key` in Spark SQL: Java's URL encoding differs from quote(safe="") only in ' ' ('+'), '*' and '~'
    (a literal '+' is encoded as %2B, so a '+' in its output is a space)."""
    encoded = F.url_encode(sample_id)
    for found, wanted in (("+", "%20"), ("*", "%2A"), ("%7E", "~"), (".", "%2E")):
        encoded = F.replace(encoded, F.lit(found), F.lit(wanted))
    return F.when(F.col(copy) == 0, encoded).otherwise(F.concat(encoded, F.lit("+"), F.col(copy).cast("string")))


def _finish(fs: fsspec.AbstractFileSystem, root: str, records: list[dict], plan: dict,
            lineage: Optional[dict]) -> None:
    """Write manifest.json (shards, totals, options, the caller's lineage), then drop the progress records."""
    totals = {"samples": "n_samples", "items": "n_items", "images": "n_images", "bytes": "n_bytes"}
    document = {
        "format": "webdataset", "layout": "nemo-interleaved", "shards": records,
        "totals": {name: sum(record[column] for record in records) for name, column in totals.items()},
        "options": plan, "lineage": lineage,
    }
    _write_json(fs, root, _MANIFEST_FILE, document)
    fs.rm(f"{root}/{_PROGRESS}", recursive=True)


def _write_shards(plan: DataFrame, target: _Target, passthrough: list[str]) -> list[dict]:
    """Run the writer tasks; surface a task's ValueError as one; sweep temporary files left by killed tasks."""
    task = functools.partial(_write_partition, target=target, passthrough=passthrough)
    fs, root = target.filesystem()
    try:
        return [row.asDict() for row in plan.mapInArrow(task, MANIFEST).collect()]
    except PythonException as exc:
        message = _value_error_message(exc)
        if message is None:
            raise
        raise ValueError(message) from exc
    finally:
        for path in fs.ls(root, detail=False):
            name = path.rsplit("/", 1)[-1]
            if name.startswith(f".{target.prefix}-") and name.endswith(".tmp"):
                fs.rm(path)


def _value_error_message(exc: PythonException) -> Optional[str]:
    """The message of the ValueError a Python worker raised, if that is what failed the job."""
    found = re.findall(r"^ValueError: (.*)$", str(exc), flags=re.MULTILINE)
    return found[-1] if found else None


def _write_partition(batches: Iterator[pa.RecordBatch], target: _Target,
                     passthrough: list[str]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: rows sorted by shard, then sample copy, then position in; one manifest row per shard out."""
    fs, root = target.filesystem()
    for number, samples in itertools.groupby(_samples(batches), key=lambda rows: rows[0][_SHARD]):
        record = _write_shard(fs, root, target, number, samples, passthrough)
        yield pa.RecordBatch.from_pylist([record], schema=_ARROW_MANIFEST)


def _samples(batches: Iterable[pa.RecordBatch]) -> Iterator[list[dict]]:
    """Each sample copy's rows in turn from batches sorted by copy (a copy may span batches);
    only the current copy is turned into Python objects."""
    pending: list[dict] = []
    for batch in batches:
        for start, stop in _runs(batch.column("sample_id"), batch.column(_COPY)):
            rows = batch.slice(start, stop - start).to_pylist()
            if pending and (pending[0]["sample_id"], pending[0][_COPY]) != (rows[0]["sample_id"], rows[0][_COPY]):
                yield pending
                pending = []
            pending.extend(rows)
    if pending:
        yield pending


def _runs(*columns: pa.Array) -> list[tuple[int, int]]:
    """(start, stop) of each run of consecutive rows equal in every column."""
    size = len(columns[0])
    if size == 0:
        return []
    changes = [pc.not_equal(values.slice(1), values.slice(0, size - 1)).fill_null(True) for values in columns]
    changed = changes[0] if len(changes) == 1 else pc.or_(*changes)
    cuts = [0, *(i + 1 for i in pc.indices_nonzero(changed).to_pylist()), size]
    return list(zip(cuts, cuts[1:]))


def _write_shard(fs: fsspec.AbstractFileSystem, root: str, target: _Target, number: int,
                 samples: Iterable[list[dict]], passthrough: list[str]) -> dict:
    """Stream one shard's samples into a hidden temporary file, rename it into place when complete, record
    it in `.progress/` (what a resume keeps), and return its manifest record; a failure removes the
    temporary file."""
    name = target.shard_name(number)
    temp = f"{root}/.{name}.{uuid.uuid4().hex}.tmp"
    counts = {"n_samples": 0, "n_items": 0, "n_images": 0}
    try:
        with fs.open(temp, "wb") as raw:
            sink = _HashingWriter(raw)
            for rows in samples:
                members, n_items = _sample_members(rows, passthrough)
                for member, data in members:
                    _add_member(sink, member, data)
                counts["n_samples"] += 1
                counts["n_items"] += n_items
                counts["n_images"] += len(members) - 1
            _end_archive(sink)
        fs.mv(temp, f"{root}/{name}")
    except BaseException:
        if fs.exists(temp):
            fs.rm(temp)
        raise
    record = {"shard": number, "path": f"{target.out_dir}/{name}", **counts, "n_bytes": sink.size,
              "sha256": sink.sha256.hexdigest()}
    _write_json(fs, root, f"{_PROGRESS}/{name}.json", record)
    return record


class _HashingWriter:
    """Pass writes through to a file, keeping the sha256 and size of all that was written."""

    def __init__(self, raw):
        """Wrap `raw`, a binary file open for writing."""
        self.raw, self.sha256, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        """Hash, count and write `data`."""
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)


def _add_member(sink: _HashingWriter, name: str, data: bytes) -> None:
    """Append a regular file as `tarfile` streams it in PAX format (header, data, zeros to a 512-byte block),
    without its per-member copies."""
    sink.write(_header(name, len(data)))
    sink.write(data)
    sink.write(tarfile.NUL * (-len(data) % tarfile.BLOCKSIZE))


def _header(name: str, size: int) -> bytes:
    """The header `tarfile` writes for a member, built from a template when it is a plain ustar block (ASCII name
    of at most 100 bytes, size below 8 GiB: no PAX record), since its fields are fixed but for name, size, checksum."""
    if not (name.isascii() and len(name) <= 100 and size < 8**11):
        return _tar_info(name, size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    header = bytearray(_ustar_template())
    header[0:len(name)] = name.encode("ascii")
    header[124:136] = b"%011o\0" % size
    header[148:155] = b"%06o\0" % sum(header)  # summed with the checksum field as spaces, as tarfile does
    return bytes(header)


@functools.cache
def _ustar_template() -> bytes:
    """tarfile's ustar header of an empty-named, empty member with our fixed fields, its checksum field as spaces."""
    header = _tar_info("", 0).tobuf(tarfile.USTAR_FORMAT, "ascii", "surrogateescape")
    return header[:148] + b" " * 8 + header[156:]


def _end_archive(sink: _HashingWriter) -> None:
    """Close the archive as `tarfile` does: two zero blocks, then zeros up to a whole 10240-byte record."""
    sink.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
    sink.write(tarfile.NUL * (-sink.size % tarfile.RECORDSIZE))


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    """A regular-file header with fixed mode, owner and mtime (NeMo's defaults), so reruns are byte-identical."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _sample_members(rows: list[dict], passthrough: list[str]) -> tuple[list[tuple[str, bytes]], int]:
    """One sample copy's tar members in NeMo's order (images by position, then `{key}.json`) and its item count.

    Images without bytes write no member: URL-only ones put their URL in `images`, the others the member
    name they would have had (NeMo's writer does the same, so the slot survives). Copies after the first
    carry `"copy": j` after `images`.
    """
    sample_id, copy = rows[0]["sample_id"], rows[0][_COPY]
    if sample_id is None:
        raise ValueError("items with a null sample_id cannot be written")
    key = copy_key(sample_id, copy)
    content = [row for row in rows if _is_content(row)]
    size = max((row["position"] for row in content), default=-1) + 1
    texts, images, members = [None] * size, [None] * size, []
    for row in content:
        position = row["position"]
        if row["modality"] == "text":
            texts[position] = row["text_content"]
        elif row["binary_content"] is None:  # no member; the slot keeps its URL, else (as NeMo) its member name
            images[position] = row["image_url"] or f"{key}.{position}.{_extension(row['content_type'])}"
        else:
            images[position] = f"{key}.{position}.{_extension(row['content_type'])}"
            members.append((images[position], row["binary_content"]))
    metadata = next((row for row in rows if row["modality"] == "metadata"), None)
    record = {"sample_id": sample_id, "texts": texts, "images": images, **({_COPY_KEY: copy} if copy else {}),
              **_passthrough(metadata, content, passthrough)}
    document = json.dumps(record, ensure_ascii=False, default=_json_value).encode("utf-8")
    return members + [(f"{key}.json", document)], len(content)


def _is_content(row: dict) -> bool:
    """True for a text or image row, False for the metadata row; ValueError for a row the layout cannot hold."""
    modality, position = row["modality"], row["position"]
    if modality not in MODALITIES:
        raise ValueError(f"sample {row['sample_id']!r}: unsupported modality {modality!r} at position "
                         f"{position}; supported: {', '.join(MODALITIES)}")
    if (modality == "metadata") != (position == METADATA_POSITION) or position < METADATA_POSITION:
        raise ValueError(f"sample {row['sample_id']!r}: {modality} item at position {position}; the metadata "
                         f"row sits at {METADATA_POSITION}, text and image items at 0 and above")
    return modality != "metadata"


def _passthrough(metadata: Optional[dict], content: list[dict], columns: list[str]) -> dict:
    """Passthrough keys as NeMo's writer builds them: the metadata row's non-null values; for other
    columns a list per image row, per text row, or per content row when both carry values."""
    record = {name: metadata[name] for name in columns if metadata is not None and metadata[name] is not None}
    by_modality = {m: [row for row in content if row["modality"] == m] for m in ("image", "text")}
    for name in columns:
        if name in record:
            continue
        carriers = [m for m, rows in by_modality.items() if any(row[name] is not None for row in rows)]
        if carriers:
            rows = by_modality[carriers[0]] if len(carriers) == 1 else content
            record[name] = [row[name] for row in rows]
    return record


def _json_value(value: Any) -> Any:
    """JSON for passthrough values `json` cannot encode: dates/times as ISO 8601, decimals as strings,
    bytes as base64."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"passthrough value of type {type(value).__name__} cannot be written to JSON")


def _extension(content_type: Optional[str]) -> str:
    """Member extension for a MIME type, as NeMo Curator picks it: its table, then mimetypes, else "bin"."""
    if content_type:
        guessed = mimetypes.guess_extension(content_type, strict=False)
        ext = _CONTENT_TYPE_EXT.get(content_type) or (guessed or "").lstrip(".")
        if ext:
            return ext
    return "bin"
