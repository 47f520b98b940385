"""Documents stored as position-aligned `texts`/`images` lists (MINT-1T, OBELICS, NeMo WebDataset).

An item's order is its index. Like NeMo Curator, lists of unequal length are read as if the shorter were
padded with nulls, and an index holding both a text and an image gives both, the text first (positions are
then renumbered 0..n-1, so they never overlap). How an image entry becomes bytes differs per format, so the
caller passes a resolver.
"""
from __future__ import annotations

from typing import Any, Callable, Union

from mmcurate.io.documents import Bad, Document, Item, ReaderOptions, select_fields

ImageResolver = Callable[[Any, int], Item]
"""(image entry, image ordinal within the document) -> an image Item (bytes, URL, or error)."""


def aligned_document(
    record: Any,
    source: str,
    locator: str,
    default_sample_id: str,
    resolve_image: ImageResolver,
    options: ReaderOptions,
    doc_source_ref: dict | None = None,
) -> Union[Document, Bad]:
    """A Document from one record, or a Bad saying precisely what is wrong with it."""
    if not isinstance(record, dict):
        return Bad(source, locator, "not_an_object", f"expected a JSON object, got {type(record).__name__}",
                   snippet=record)
    texts, images = record.get(options.texts_field), record.get(options.images_field)
    sample_id = _sample_id(record, default_sample_id, options)
    if texts is None and images is None:
        return Bad(source, locator, "missing_lists",
                   f"neither '{options.texts_field}' nor '{options.images_field}' present",
                   snippet=record, sample_id=sample_id)
    texts = [] if texts is None else texts
    images = [] if images is None else images
    if not isinstance(texts, list) or not isinstance(images, list):
        return Bad(source, locator, "lists_not_lists", "texts/images must be JSON arrays", snippet=record,
                   sample_id=sample_id)

    try:
        per_image = _per_item_lists(record, options.per_image_fields)
        per_text = _per_item_lists(record, options.per_text_fields)
    except TypeError as e:
        return Bad(source, locator, "per_item_field_not_a_list", str(e), snippet=record, sample_id=sample_id)
    items: list[Item] = []
    n_text = n_image = 0
    for index in range(max(len(texts), len(images))):
        text = texts[index] if index < len(texts) else None
        image = images[index] if index < len(images) else None
        if text is not None:
            item = Item("text", text=text, content_type="text/plain", source_ref=doc_source_ref)
            item.fields = {k: _nth(v, n_text) for k, v in per_text.items()}
            n_text += 1
            items.append(item)
        if image is not None:
            item = resolve_image(image, n_image)
            item.fields = {**item.fields, **{k: _nth(v, n_image) for k, v in per_image.items()}}
            n_image += 1
            items.append(item)
    exclude = {options.texts_field, options.images_field, *options.per_image_fields, *options.per_text_fields}
    return Document(sample_id, source, locator, items, select_fields(record, exclude, options), doc_source_ref)


def _sample_id(record: dict, default: str, options: ReaderOptions) -> str:
    field = options.sample_id_field
    if field and record.get(field) is not None:
        return str(record[field])
    return default


def _per_item_lists(record: dict, names: tuple) -> dict:
    out = {}
    for name in names:
        value = record.get(name)
        if value is not None and not isinstance(value, list):
            raise TypeError(f"per-item field {name!r} must be a list, got {type(value).__name__}")
        out[name] = value or []
    return out


def _nth(values: list, n: int):
    return values[n] if n < len(values) else None
