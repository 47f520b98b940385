"""Record files: JSON Lines, JSON and Parquet files holding one document per record.

`iter_records` streams (locator, record-or-Bad) pairs from a file without loading it whole; the
format modules (OBELICS-style documents, MMC4) turn records into Documents.
"""
from __future__ import annotations

import base64
import binascii
import json
import posixpath
from typing import Any, Iterator, Union

import fsspec
import pyarrow.parquet as pq

from mmcurate.io.documents import Bad, Document, Item, ReaderOptions, parse_json, select_fields, source_ref
from mmcurate.io.readers.aligned import aligned_document

PARQUET_BATCH_ROWS = 256


def iter_records(path: str) -> Iterator[tuple[str, Any]]:
    """(locator, record) per document: `line:N` for JSON Lines, `row:N` for Parquet, `item:N` for a
    JSON array. A line that does not parse yields a Bad instead of a record; a file without any
    record yields one `no_documents` Bad."""
    lower = path.lower()
    if lower.endswith(".parquet"):
        records = _parquet_records(path)
    elif lower.endswith((".json", ".json.gz")):
        records = _json_records(path)
    else:
        records = _jsonl_records(path)
    empty = True
    for locator, record in records:
        empty = False
        yield locator, record
    if empty:
        yield "", Bad(path, "", "no_documents", "the file holds no records")


def _jsonl_records(path: str):
    number = 0
    with fsspec.open(path, "rb", compression="infer") as f:
        try:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                locator = f"line:{number}"
                record, problem = parse_json(line)
                yield locator, (Bad(path, locator, *problem, snippet=line) if problem else record)
        except (EOFError, OSError) as e:  # a cut compressed stream: the lines before it stand
            yield f"after:line:{number}", Bad(path, f"after:line:{number}", "truncated_file", f"{type(e).__name__}: {e}")


def _json_records(path: str):
    with fsspec.open(path, "rb", compression="infer") as f:
        raw = f.read()
    data, problem = parse_json(raw)
    if problem:
        yield "file", Bad(path, "file", *problem, snippet=raw)
        return
    for number, record in enumerate(data if isinstance(data, list) else [data]):
        yield f"item:{number}", record


def _parquet_records(path: str):
    with fsspec.open(path, "rb") as f:
        row = 0
        for batch in pq.ParquetFile(f).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for record in batch.to_pylist():
                yield f"row:{row}", record
                row += 1


def default_sample_id(path: str, locator: str) -> str:
    """A stable id for records without one: file name without extensions, then the locator."""
    name = posixpath.basename(path).split(".")[0]
    return f"{name}/{locator}"


def decode_image_bytes(value: Any) -> Union[bytes, None, str]:
    """Image bytes given as binary or base64 text; a str result is an error message."""
    if value is None or isinstance(value, (bytes, bytearray)):
        return value if value is None else bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as e:
            return f"invalid base64: {e}"
    return f"unsupported image bytes type {type(value).__name__}"


def read_documents(path: str, options: ReaderOptions, image_bytes_field: str = "image_bytes"):
    """OBELICS / MINT-1T HTML style records: aligned `texts`/`images` where images are URLs; a
    parallel `image_bytes_field` list (binary or base64) supplies bytes when the source has them."""
    for locator, record in iter_records(path):
        if isinstance(record, Bad):
            yield record
            continue
        payloads = record.get(image_bytes_field) if isinstance(record, dict) else None
        if payloads is not None and not isinstance(payloads, list):
            yield Bad(path, locator, "lists_not_lists", f"{image_bytes_field} must be a list")
            continue
        images = record.get(options.images_field) if isinstance(record, dict) else None
        payload_at = _payload_by_image_ordinal(images, payloads)
        ref = source_ref(path, locator)

        def resolve(entry, ordinal) -> Item:
            data = decode_image_bytes(payload_at.get(ordinal))
            if isinstance(data, str):
                return Item("image", url=_url(entry), error=("invalid_image_bytes", data))
            return Item("image", data=data, url=_url(entry), source_ref=ref)

        doc = aligned_document(record, path, locator, default_sample_id(path, locator), resolve, options, ref)
        if isinstance(doc, Document):
            doc.fields.pop(image_bytes_field, None)
        yield doc


def _payload_by_image_ordinal(images, payloads) -> dict:
    """Bytes lists are aligned with `images` (null at text indices); map them to image ordinals."""
    if not isinstance(images, list) or not payloads:
        return {}
    out, ordinal = {}, 0
    for index, entry in enumerate(images):
        if entry is not None:
            if index < len(payloads):
                out[ordinal] = payloads[index]
            ordinal += 1
    return out


def _url(entry: Any) -> str:
    if isinstance(entry, dict):  # some dumps store {"src": ..., ...} per image
        return str(entry.get("src") or entry.get("url") or json.dumps(entry))
    return str(entry)


def read_mmc4(path: str, options: ReaderOptions):
    """MMC4 JSON Lines: `text_list` sentences plus `image_info` entries matched to a sentence index.

    Reading order: each image goes immediately BEFORE the sentence it is matched to (as
    OpenFlamingo interleaves MMC4), images matched to the same sentence in `image_info` order.
    Every image_info key other than the URL/bytes (matched_sim, matched_text_index, image_name,
    face_detections...) is kept as a per-image passthrough column.
    """
    for locator, record in iter_records(path):
        if isinstance(record, Bad):
            yield record
            continue
        yield mmc4_document(record, path, locator, options)


def mmc4_document(record: Any, path: str, locator: str, options: ReaderOptions) -> Union[Document, Bad]:
    if not isinstance(record, dict):
        return Bad(path, locator, "not_an_object", "expected a JSON object", snippet=record)
    texts, infos = record.get("text_list"), record.get("image_info") or []
    sample_id = str(record[options.sample_id_field]) if options.sample_id_field and record.get(
        options.sample_id_field) is not None else default_sample_id(path, locator)
    if not isinstance(texts, list) or not isinstance(infos, list):
        return Bad(path, locator, "lists_not_lists", "text_list and image_info must be arrays",
                   snippet=record, sample_id=sample_id)
    ref = source_ref(path, locator)
    before: dict[int, list[Item]] = {}
    trailing: list[Item] = []
    for info in infos:
        item = _mmc4_image(info, ref)
        index = info.get("matched_text_index") if isinstance(info, dict) else None
        if isinstance(index, int) and 0 <= index < len(texts):
            before.setdefault(index, []).append(item)
        else:
            item.error = item.error or ("unmatched_image", f"matched_text_index {index!r} outside 0..{len(texts) - 1}")
            trailing.append(item)
    items: list[Item] = []
    for index, text in enumerate(texts):
        items.extend(before.get(index, []))
        items.append(Item("text", text=text, content_type="text/plain", source_ref=ref))
    items.extend(trailing)
    fields = select_fields(record, {"text_list", "image_info"}, options)
    return Document(sample_id, path, locator, items, fields, ref)


def _mmc4_image(info: Any, ref: dict) -> Item:
    if not isinstance(info, dict):
        return Item("image", error=("malformed_image_info", f"image_info entry is {type(info).__name__}"))
    data = decode_image_bytes(info.get("image_base64") or info.get("image_bytes"))
    fields = {k: v for k, v in info.items() if k not in ("raw_url", "image_base64", "image_bytes")}
    if isinstance(data, str):
        return Item("image", url=info.get("raw_url"), fields=fields, error=("invalid_image_bytes", data))
    return Item("image", data=data, url=info.get("raw_url"), fields=fields, source_ref=ref)

