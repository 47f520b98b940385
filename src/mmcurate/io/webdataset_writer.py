"""Export items as MINT-1T / NeMo Curator WebDataset shards, written inside Spark executors.

Per sample, NeMo Curator's layout: image members `{key}.{position}.{ext}` in position order, then
`{key}.json` = {"sample_id", "texts", "images", **passthrough}. Samples go to shards by a hash of
their id; each task streams its samples into `{prefix}-{shard:06d}.tar` and returns manifest rows.

>>> manifest = write_webdataset(items, images, "s3://bucket/wds", samples_per_shard=1000, seed=7)
>>> manifest.select(F.sum("n_samples"), F.sum("n_bytes")).show()
"""
from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import io
import itertools
import json
import math
import mimetypes
import os
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Iterable, Iterator, Optional
from urllib.parse import quote

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.errors import PythonException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.io.nemo import interleaved_rows
from mmcurate.schema import CORE_ITEM_COLUMNS, METADATA_POSITION, MODALITIES, require_columns

DEFAULT_SAMPLES_PER_SHARD = 1000

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
_SHARD = "__shard"
_PREFIX = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def shard_of(n_shards: int, seed: Optional[int] = None, sample_id: str | Column = "sample_id") -> Column:
    """The shard a sample goes to: pmod(xxhash64(sample_id[, seed]), n_shards), the same on every run.

    >>> items.select("sample_id", shard_of(100, seed=7).alias("shard"))
    """
    hashed = F.xxhash64(sample_id) if seed is None else F.xxhash64(sample_id, F.lit(seed))
    return F.pmod(hashed, F.lit(n_shards)).cast("int")


def member_key(sample_id: str) -> str:
    """A sample's tar key: NeMo's `quote(sample_id, safe="")` with '.' escaped too (as %2E).

    The key never holds '/', so no member can land outside the folder a tar is extracted into.
    Escaping dots is our one departure from NeMo Curator: the `webdataset` library splits member
    names at the first dot, so with NeMo's key it skips samples whose id starts with '.' ('../x')
    and mis-groups ids like 'doc.pdf'. `unquote(key) == sample_id` still holds, and the JSON
    carries the id verbatim.
    """
    return quote(sample_id, safe="").replace(".", "%2E")


def write_webdataset(
    items: DataFrame,
    images: DataFrame,
    out_dir: str,
    *,
    samples_per_shard: Optional[int] = None,
    shard_bytes: Optional[int] = None,
    prefix: str = "shard",
    seed: Optional[int] = None,
    overwrite: bool = False,
    storage_options: Optional[dict] = None,
) -> DataFrame:
    """Write `{prefix}-{shard:06d}.tar` shards under `out_dir` and return their manifest (MANIFEST).

    The number of shards comes from one aggregation over the data: samples / `samples_per_shard`
    (default 1000) or payload bytes (texts + image bytes) / `shard_bytes`; give at most one. Each
    sample goes to shard `shard_of(n_shards, seed)`; every shard number gets a tar, empty if no
    sample hashed to it. Tasks write each shard to a hidden temporary name and rename it when it
    is complete, so a killed task never leaves a truncated tar under a final name. Output is
    byte-identical across reruns of the same data, seed and sizing.

    out_dir: a local path or an fsspec URI (`storage_options` go to fsspec); a non-empty one is
        refused unless `overwrite=True`, which deletes everything in it first.
    Items with a modality other than text/image/metadata, or at an invalid position, fail the
    job with a ValueError naming the sample. Only the manifest (one row per shard) reaches the
    driver.

    >>> write_webdataset(items, images, "/data/wds", shard_bytes=512 * 2**20, seed=7).show()
    """
    samples_per_shard = _samples_per_shard(samples_per_shard, shard_bytes)
    if not _PREFIX.match(prefix):
        raise ValueError(f"prefix must be a plain file-name stem (letters, digits, _ . -), got {prefix!r}")
    passthrough = _passthrough_columns(items)
    if shard_bytes is not None:
        require_columns(images, {"n_bytes": "bigint"}, where="write_webdataset(images, shard_bytes=...)")
    rows = interleaved_rows(items, images).drop("image_id", "source_ref", "materialize_error")
    target = _Target(_absolute(out_dir), prefix, dict(storage_options or {}))
    fs, root = target.filesystem()
    _prepare_out_dir(fs, root, overwrite)
    n_shards = _shard_count(items, images, samples_per_shard, shard_bytes)
    written = _write_shards(_shard_plan(rows, n_shards, seed), target, passthrough) if n_shards else []
    done = {record["shard"] for record in written}
    written += [_write_shard(fs, root, target, n, (), passthrough) for n in range(n_shards) if n not in done]
    ordered = sorted(written, key=lambda record: record["shard"])
    return items.sparkSession.createDataFrame(
        [tuple(record[name] for name in MANIFEST.fieldNames()) for record in ordered], MANIFEST
    )


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


def _passthrough_columns(items: DataFrame) -> list[str]:
    """Items columns beyond the core ones; they become JSON keys, so they must not shadow the layout's own."""
    columns = [name for name in items.columns if name not in CORE_ITEM_COLUMNS]
    clash = sorted(set(columns) & set(_JSON_KEYS))
    if clash:
        raise ValueError(f"passthrough columns {clash} would overwrite the JSON's own keys {list(_JSON_KEYS)}")
    return columns


def _absolute(out_dir: str) -> str:
    """out_dir as every executor must see it: URIs as given, local paths made absolute."""
    out_dir = os.fspath(out_dir)
    return out_dir.rstrip("/") if "://" in out_dir else os.path.abspath(out_dir)


def _prepare_out_dir(fs: fsspec.AbstractFileSystem, root: str, overwrite: bool) -> None:
    """Refuse a non-empty out_dir unless overwrite, which empties it; make sure it exists."""
    if fs.exists(root) and fs.ls(root, detail=False):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; pass overwrite=True to replace its contents")
        fs.rm(root, recursive=True)
    fs.makedirs(root, exist_ok=True)


def _shard_count(items: DataFrame, images: DataFrame, samples_per_shard: Optional[int],
                 shard_bytes: Optional[int]) -> int:
    """Number of shards from the data's totals in one aggregation; never more shards than samples."""
    if shard_bytes is None:
        (n_samples,) = items.agg(F.countDistinct("sample_id")).first()
        return math.ceil(n_samples / samples_per_shard)
    sized = items.join(images.select("image_id", "n_bytes"), "image_id", "left")
    payload = F.coalesce(F.octet_length("text_content"), F.lit(0)) + F.coalesce("n_bytes", F.lit(0))
    n_samples, n_bytes = sized.agg(F.countDistinct("sample_id"), F.sum(payload)).first()
    return min(n_samples, max(1, math.ceil((n_bytes or 0) / shard_bytes)))


def _shard_plan(rows: DataFrame, n_shards: int, seed: Optional[int]) -> DataFrame:
    """The writer tasks' input: partition i holds shard i, sorted by (shard, sample_id, position).

    `repartitionById` places shard i in partition i; hash partitioning would put several shards in
    one task while leaving others empty.
    """
    return (
        rows.withColumn(_SHARD, shard_of(n_shards, seed))
        .repartitionById(n_shards, _SHARD)
        .sortWithinPartitions(_SHARD, "sample_id", "position")
    )


def _write_shards(plan: DataFrame, target: _Target, passthrough: list[str]) -> list[dict]:
    """Run the writer tasks; surface a task's ValueError as one; sweep temporary files left by killed tasks."""
    task = partial(_write_partition, target=target, passthrough=passthrough)
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
    """mapInArrow body: rows sorted by (shard, sample_id, position) in, one manifest row per shard out."""
    fs, root = target.filesystem()
    for number, samples in itertools.groupby(_samples(batches), key=lambda rows: rows[0][_SHARD]):
        record = _write_shard(fs, root, target, number, samples, passthrough)
        yield pa.RecordBatch.from_pylist([record], schema=_ARROW_MANIFEST)


def _samples(batches: Iterable[pa.RecordBatch]) -> Iterator[list[dict]]:
    """Each sample's rows in turn from batches sorted by sample (a sample may span batches);
    only the current sample is turned into Python objects."""
    pending: list[dict] = []
    for batch in batches:
        for start, stop in _runs(batch.column("sample_id")):
            rows = batch.slice(start, stop - start).to_pylist()
            if pending and pending[0]["sample_id"] != rows[0]["sample_id"]:
                yield pending
                pending = []
            pending.extend(rows)
    if pending:
        yield pending


def _runs(values: pa.Array) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal consecutive values."""
    if len(values) == 0:
        return []
    changed = pc.not_equal(values.slice(1), values.slice(0, len(values) - 1)).fill_null(True)
    cuts = [0, *(i + 1 for i in pc.indices_nonzero(changed).to_pylist()), len(values)]
    return list(zip(cuts, cuts[1:]))


def _write_shard(fs: fsspec.AbstractFileSystem, root: str, target: _Target, number: int,
                 samples: Iterable[list[dict]], passthrough: list[str]) -> dict:
    """Stream one shard's samples into a hidden temporary file, rename it into place when complete,
    and return its manifest record; a failure removes the temporary file."""
    name = target.shard_name(number)
    temp = f"{root}/.{name}.{uuid.uuid4().hex}.tmp"
    counts = {"n_samples": 0, "n_items": 0, "n_images": 0}
    try:
        with fs.open(temp, "wb") as raw:
            sink = _HashingWriter(raw)
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for rows in samples:
                    members, n_items = _sample_members(rows, passthrough)
                    for member, data in members:
                        tar.addfile(_tar_info(member, len(data)), io.BytesIO(data))
                    counts["n_samples"] += 1
                    counts["n_items"] += n_items
                    counts["n_images"] += len(members) - 1
        fs.mv(temp, f"{root}/{name}")
    except BaseException:
        if fs.exists(temp):
            fs.rm(temp)
        raise
    return {"shard": number, "path": f"{target.out_dir}/{name}", **counts, "n_bytes": sink.size,
            "sha256": sink.sha256.hexdigest()}


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


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    """A regular-file header with fixed mode, owner and mtime (NeMo's defaults), so reruns are byte-identical."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _sample_members(rows: list[dict], passthrough: list[str]) -> tuple[list[tuple[str, bytes]], int]:
    """One sample's tar members in NeMo's order (images by position, then `{key}.json`) and its item count.

    URL-only images (no bytes) put their URL in `images` and write no member.
    """
    sample_id = rows[0]["sample_id"]
    if sample_id is None:
        raise ValueError("items with a null sample_id cannot be written")
    key = member_key(sample_id)
    content = [row for row in rows if _is_content(row)]
    size = max((row["position"] for row in content), default=-1) + 1
    texts, images, members = [None] * size, [None] * size, []
    for row in content:
        position = row["position"]
        if row["modality"] == "text":
            texts[position] = row["text_content"]
        elif row["binary_content"] is None:
            images[position] = row["image_url"]
        else:
            images[position] = f"{key}.{position}.{_extension(row['content_type'])}"
            members.append((images[position], row["binary_content"]))
    metadata = next((row for row in rows if row["modality"] == "metadata"), None)
    record = {"sample_id": sample_id, "texts": texts, "images": images,
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
