"""NeMo Curator interleaved Parquet: one row per item (sample_id, position, modality, content_type,
text_content, binary_content, source_ref, materialize_error, passthrough columns).

Rows of a sample are expected to be contiguous in a file, as NeMo's writer leaves them; a sample id
that shows up again later is treated as a second document with that id (and quarantined as a
duplicate). Image rows without bytes are materialized from their `source_ref` like NeMo does (at read, unless
`materialize_on_read` is off: then they stay lazy for `steps.materialize` or the export).
"""
from __future__ import annotations

import json
import tarfile
from itertools import groupby
from typing import Iterator, Union

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from mmcurate.io.documents import Bad, Document, Item, ReaderOptions, select_fields
from mmcurate.io.materialize import SourceError, read_source
from mmcurate.io.nemo import NEMO_COLUMNS
from mmcurate.io.readers.records import PARQUET_BATCH_ROWS
from mmcurate.schema import CORE_ITEM_COLUMNS


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_bytes(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_null(t)


REQUIRED = {"sample_id": _is_text, "position": pa.types.is_integer, "modality": _is_text}
OPTIONAL = {"binary_content": _is_bytes, "text_content": lambda t: _is_text(t) or pa.types.is_null(t)}


def read_nemo_parquet(path: str, options: ReaderOptions) -> Iterator[Union[Document, Bad]]:
    """Documents of one NeMo interleaved Parquet file."""
    try:
        with fsspec.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            problem = _schema_problem(parquet.schema_arrow)
            if problem:
                yield Bad(path, "schema", "wrong_column_types", problem)
                return
            first_row = 0
            if parquet.metadata.num_rows == 0:
                yield Bad(path, "", "no_documents", "the file holds no rows")
            for sample_id, group in groupby(_rows(parquet), key=lambda r: r.get("sample_id")):
                rows = list(group)
                locator = f"rows:{first_row}-{first_row + len(rows) - 1}"
                first_row += len(rows)
                if sample_id is None:
                    yield Bad(path, locator, "null_sample_id", "rows without a sample_id", snippet=rows[0])
                    continue
                yield _document(str(sample_id), rows, path, locator, options)
    except (OSError, pa.ArrowException) as e:
        yield Bad(path, "", "unreadable_parquet", f"{type(e).__name__}: {e}")


def _rows(parquet: pq.ParquetFile):
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield from batch.to_pylist()


def _schema_problem(schema: pa.Schema) -> str:
    missing = [c for c in REQUIRED if c not in schema.names]
    wrong = [f"{c} is {schema.field(c).type}" for c, ok in {**REQUIRED, **OPTIONAL}.items()
             if c in schema.names and not ok(schema.field(c).type)]
    if missing or wrong:
        return "; ".join(filter(None, [f"missing {missing}" if missing else "", ", ".join(wrong)]))
    return ""


def _document(sample_id: str, rows: list[dict], path: str, locator: str, options: ReaderOptions) -> Document:
    metadata = [r for r in rows if r.get("modality") == "metadata"]
    content = sorted((r for r in rows if r.get("modality") != "metadata"),
                     key=lambda r: (r.get("position") is None, r.get("position") or 0))
    items, seen = [], set()
    for row in content:
        item = _item(row, path, options)
        position = row.get("position")
        if position is None or position < 0:
            item.error = ("invalid_position", f"content row at position {position}")
        elif position in seen:
            item.error = ("duplicate_position", f"position {position} appears twice in the sample")
        seen.add(position)
        items.append(item)
    head = metadata[0] if metadata else {}
    fields = select_fields(_non_null_extra(head), set(NEMO_COLUMNS), options)
    ref = _parse_ref(head.get("source_ref")) if head else None
    return Document(sample_id, path, locator, items, fields, ref)


def _item(row: dict, path: str, options: ReaderOptions) -> Item:
    modality = row.get("modality")
    # mmcurate's own exports carry `image_id` and `image_url` as passthrough: the url is the item's, the id is
    # recomputed from the bytes; neither may come back as a passthrough column beside the core ones
    fields = _non_null_extra(row)
    url = fields.pop("image_url", None)
    fields = {k: v for k, v in fields.items() if k not in CORE_ITEM_COLUMNS}
    ref = _parse_ref(row.get("source_ref"))
    if modality == "text":
        return Item("text", text=row.get("text_content"), content_type=row.get("content_type"),
                    source_ref=ref, fields=fields)
    if modality != "image":
        return Item(str(modality), error=("unsupported_modality", f"modality {modality!r}"), fields=fields)
    data = row.get("binary_content")
    item = Item("image", data=data, content_type=row.get("content_type"), source_ref=ref, fields=fields, url=url)
    remote = ref and str(ref.get("path") or "").startswith(("http://", "https://"))
    if data is None and remote and not ref.get("member"):
        item.url = item.url or ref["path"]  # a web image: kept by URL, fetched by a download stage
    elif data is None and ref and ref.get("path") and options.materialize_on_read:
        try:
            item.data = read_source(ref)
        except SourceError as e:
            item.error = ("materialize_failed", str(e))
        except (OSError, tarfile.TarError, ValueError, EOFError) as e:
            item.error = ("materialize_failed", f"failed to read path: {type(e).__name__}: {e}")
    elif data is None and not item.url:
        item.error = ("missing_image_bytes", row.get("materialize_error") or "no bytes and no source_ref path")
    return item


def _non_null_extra(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in NEMO_COLUMNS and v is not None}


def _parse_ref(value) -> dict | None:
    if not value:
        return None
    try:
        ref = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return None
    return ref if isinstance(ref, dict) else None
