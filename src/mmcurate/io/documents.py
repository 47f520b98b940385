"""The in-executor form of one source document, and how any reader's document becomes rows.

Readers only parse their format into `Document`s (or `Bad` records); turning a document into
`items`, `images` and `quarantine` rows (hashing, probing, position numbering, passthrough
encoding) happens here, once, for every format.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import pyarrow as pa

from mmcurate.images import MAX_PIXELS, probe, sha256_hex
from mmcurate.schema import CORE_ITEM_COLUMNS, METADATA_POSITION, SNIPPET_CHARS

STAGE = "ingest"


@dataclass
class Item:
    """One text or image of a document, as parsed; `error` set when its content could not be had."""

    modality: str
    text: Optional[str] = None
    data: Optional[bytes] = None
    url: Optional[str] = None
    content_type: Optional[str] = None
    source_ref: Optional[dict] = None
    fields: dict = field(default_factory=dict)
    error: Optional[tuple[str, str]] = None


@dataclass
class Document:
    """A parsed sample: content items in reading order plus sample-level passthrough fields."""

    sample_id: str
    source: str
    locator: str
    items: list[Item]
    fields: dict = field(default_factory=dict)
    source_ref: Optional[dict] = None


@dataclass
class Bad:
    """Input that could not become a document (or a whole file that could not be read)."""

    source: str
    locator: str
    reason: str
    detail: str = ""
    snippet: Any = None
    sample_id: Optional[str] = None


@dataclass(frozen=True)
class ReaderOptions:
    """Options shared by every reader.

    fields: passthrough fields to keep (None = all non-reserved ones; names that are core item
    columns are refused). sample_id_field: where the sample id comes from (format default when None).
    json_extensions / image_extensions (WebDataset): which members are samples, and which
    extensions the `{sample_id}{ext}` image fallback tries (NeMo Curator's options and defaults).
    max_pixels: images claiming more pixels go to quarantine undecoded (decompression bombs).
    max_text_chars: longer text items are quarantined rather than ingested.
    materialize_on_read: read image bytes at ingest (True), or keep image items lazy: `image_id` null and
        a `source_ref` that `steps.materialize` or an export's `materialize_on_write` reads later.
    on_missing_image: an image whose bytes cannot be had (missing tar member, failed read, bad base64)
        is kept as an item with `materialize_error` ("keep", NeMo Curator's behaviour), or quarantined.
    verify_images: decode every image fully at ingest and quarantine the undecodable ones; by default only
        the header is read (format, size, bomb check) and `image_scores`' `decodable` verdict drops them.
    pdf_max_pages / pdf_max_bytes (PDF): longer or larger files are quarantined as `pdf_too_large`
        (MINT-1T's limits: 50 pages, 50 MB).
    """

    fields: Optional[tuple[str, ...]] = None
    sample_id_field: Optional[str] = None
    texts_field: str = "texts"
    images_field: str = "images"
    image_member_field: Optional[str] = None
    per_image_fields: tuple[str, ...] = ()
    per_text_fields: tuple[str, ...] = ()
    json_extensions: tuple[str, ...] = (".json",)
    image_extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
    max_pixels: int = MAX_PIXELS
    max_text_chars: int = 5_000_000
    max_items: int = 100_000
    materialize_on_read: bool = True
    on_missing_image: str = "keep"
    verify_images: bool = False
    pdf_max_pages: int = 50
    pdf_max_bytes: int = 50 * 2**20

    def __post_init__(self):
        if self.on_missing_image not in ON_MISSING_IMAGE:
            raise ValueError(f"on_missing_image must be one of {ON_MISSING_IMAGE}, got {self.on_missing_image!r}")
        reserved = sorted(set(self.fields or ()) & set(CORE_ITEM_COLUMNS))
        if reserved:
            raise ValueError(f"fields contains reserved keys: {reserved}")
        for name in ("json_extensions", "image_extensions"):
            value = getattr(self, name)
            if isinstance(value, str) or not value or not all(isinstance(e, str) and e.startswith(".") for e in value):
                raise ValueError(f"{name} must be a non-empty tuple of extensions starting with '.', got {value!r}")
            object.__setattr__(self, name, tuple(e.lower() for e in value))


ON_MISSING_IMAGE = ("keep", "quarantine")
DANGEROUS_IMAGE = frozenset({"decompression_bomb"})
"""Probe verdicts that are quarantined even when undecodable images are kept: their pixels must never be decoded."""
_UTF8_BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(raw: bytes) -> tuple[Any, Optional[tuple[str, str]]]:
    """(record, None) or (None, (reason, detail)) for one JSON document given as bytes.

    Refuses what json.loads accepts but no UTF-8 store can hold (lone surrogate escapes), and
    turns every parse failure (deep nesting, huge integers) into a reason instead of an exception.
    A leading UTF-8 byte-order mark (Windows tools write one) is not part of the document.
    """
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, ("invalid_utf8", str(e))
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        return None, ("malformed_json", str(e))
    except (RecursionError, ValueError) as e:
        return None, ("malformed_json", f"{type(e).__name__}: {str(e)[:200]}")
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            return None, ("invalid_utf8", f"lone surrogate escape: {e}")
    return record, None


def source_ref(path: Optional[str], member: Optional[str] = None, byte_offset: Optional[int] = None,
               byte_size: Optional[int] = None, frame_index: Optional[int] = None) -> dict:
    """NeMo Curator's locator: path/member/byte_offset/byte_size always present, frame_index if set."""
    ref = {"path": path, "member": member, "byte_offset": byte_offset, "byte_size": byte_size}
    if frame_index is not None:
        ref["frame_index"] = frame_index
    return ref


def snippet(raw: Any) -> Optional[str]:
    """At most SNIPPET_CHARS characters of raw input, whatever its type."""
    if raw is None:
        return None
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw[: SNIPPET_CHARS * 4]).decode("utf-8", errors="replace")
    elif not isinstance(raw, str):
        raw = repr(raw)[: SNIPPET_CHARS * 2]
    return raw[:SNIPPET_CHARS]


def select_fields(record: dict, exclude: set, options: ReaderOptions) -> dict:
    """Sample-level passthrough: all non-reserved keys, or the requested ones (missing -> None)."""
    if options.fields is None:
        return {k: v for k, v in record.items() if k not in exclude and k not in CORE_ITEM_COLUMNS}
    return {k: record.get(k) for k in options.fields}


def encode_fields(fields: dict) -> tuple[Optional[str], Optional[str]]:
    """Passthrough values and their kinds as two JSON objects of strings.

    Values travel as text (dicts/lists as JSON, like NeMo Curator) and their kinds let the
    driver choose one column type per field across the whole dataset.
    """
    if not fields:
        return None, None
    values, kinds = {}, {}
    for key, value in fields.items():
        kind = _kind(value)
        kinds[key] = kind
        if value is None:
            values[key] = None
        elif kind == "string":
            values[key] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        else:
            values[key] = json.dumps(value)
    return json.dumps(values, ensure_ascii=False), json.dumps(kinds)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return "bigint"
    if isinstance(value, float) and math.isfinite(value):
        return "double"
    return "string"


def document_rows(doc: Document, ordinal: int, options: ReaderOptions) -> Iterator[dict]:
    """Rows of the union schema for one document: its metadata row, content items with
    gap-free positions, one image row per image, and a quarantine row per unusable item."""
    origin = f"{doc.source}::{doc.locator}"
    common = {"source": doc.source, "locator": doc.locator, "origin": origin, "ordinal": ordinal,
              "sample_id": doc.sample_id}
    if len(doc.items) > options.max_items:
        yield quarantine_row(Bad(doc.source, doc.locator, "too_many_items",
                                 f"{len(doc.items)} items > max_items={options.max_items}",
                                 sample_id=doc.sample_id), ordinal)
        return
    content = []
    for index, item in enumerate(doc.items):
        problem = item.error or _item_problem(item, options)
        if problem is None and item.modality == "image" and item.data is not None:
            info = probe(item.data, max_pixels=options.max_pixels, verify=options.verify_images)
            if info.error and (options.verify_images or info.error in DANGEROUS_IMAGE):
                problem = (f"image_{info.error}", info.detail or info.error)
            else:  # undecodable bytes stay an image: the `decodable` rule drops them with a ledger row
                item.content_type = info.content_type or item.content_type
                content.append((item, info))
                continue
        if problem is not None and item.modality == "image" and options.on_missing_image == "keep" \
                and problem[0] in UNMATERIALIZED:
            item.error = problem
            content.append((item, None))
            continue
        if problem is not None:
            reason, detail = problem
            yield {**common, "kind": "quarantine", "locator": f"{doc.locator}#{index}",
                   "position": index, "modality": item.modality, "stage": STAGE, "reason": reason,
                   "detail": detail, "snippet": snippet(item.text if item.text is not None else item.url)}
            continue
        content.append((item, None))
    if not content:
        yield quarantine_row(Bad(doc.source, doc.locator, "empty_document",
                                 "no usable text or image items", sample_id=doc.sample_id), ordinal)
        return
    values, kinds = encode_fields(doc.fields)
    yield {**common, "kind": "item", "position": METADATA_POSITION, "modality": "metadata",
           "content_type": "application/json", "source_ref": _json(doc.source_ref),
           "passthrough": values, "passthrough_kinds": kinds}
    for position, (item, info) in enumerate(content):
        values, kinds = encode_fields(item.fields)
        row = {**common, "kind": "item", "position": position, "modality": item.modality,
               "content_type": item.content_type, "text_content": item.text, "image_url": item.url,
               "source_ref": _json(item.source_ref), "passthrough": values, "passthrough_kinds": kinds,
               "materialize_error": f"{item.error[0]}: {item.error[1]}" if item.error else None}
        if info is not None:
            image_id = sha256_hex(item.data)
            row["image_id"] = image_id
            yield {"kind": "image", "source": doc.source, "locator": doc.locator, "origin": origin,
                   "ordinal": ordinal, "image_id": image_id, "binary_content": item.data,
                   "content_type": info.content_type, "width": info.width, "height": info.height,
                   "n_bytes": len(item.data)}
        yield row


UNMATERIALIZED = frozenset({"missing_image_member", "truncated_member", "missing_tiff_frame", "materialize_failed",
                            "missing_image_bytes", "invalid_image_bytes", "image_without_content"})
"""Image item problems that mean "the bytes could not be had": kept as a lazy item under on_missing_image="keep"."""


def _item_problem(item: Item, options: ReaderOptions) -> Optional[tuple[str, str]]:
    if item.modality == "text":
        if not isinstance(item.text, str):
            return "text_not_a_string", f"text item of type {type(item.text).__name__}"
        if len(item.text) > options.max_text_chars:
            return "text_too_long", f"{len(item.text)} chars > max_text_chars={options.max_text_chars}"
        return None
    if item.data is None and not item.url and not (item.source_ref or {}).get("path"):
        return "image_without_content", "image item with neither bytes, URL nor source_ref path"
    return None


def quarantine_row(bad: Bad, ordinal: int = -1) -> dict:
    """A union row for a quarantined document or file."""
    return {"kind": "quarantine", "source": bad.source, "locator": bad.locator,
            "origin": f"{bad.source}::{bad.locator}", "ordinal": ordinal, "sample_id": bad.sample_id,
            "stage": STAGE, "reason": bad.reason, "detail": bad.detail, "snippet": snippet(bad.snippet)}


def _json(value: Optional[dict]) -> Optional[str]:
    return None if value is None else json.dumps(value, ensure_ascii=True)


def arrow_batch(rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    """Dict rows (a missing key is null) as one Arrow batch of `schema`, built column by column: four times
    faster than `RecordBatch.from_pylist` on rows carrying image bytes."""
    return pa.RecordBatch.from_pydict({name: [row.get(name) for row in rows] for name in schema.names}, schema=schema)
