"""PDF files, read with PDFium (pypdfium2): one file is one document of text blocks and embedded images.

Per page, text blocks are paragraph-ish chunks of PDFium's text layer (split at blank lines and large
vertical gaps) kept in PDFium's order; raster images are placed among them by their top y coordinate.
There is no OCR and no column-aware layout analysis (see docs/pdf.md).
"""
from __future__ import annotations

import ctypes
import io
import posixpath
import statistics
from dataclasses import dataclass
from typing import Iterator, Union

import fsspec
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from mmcurate.io.documents import Bad, Document, Item, ReaderOptions, select_fields, source_ref

PDF_FIELDS = {"n_pages": "bigint", "title": "string", "page": "bigint"}
"""The passthrough columns of every pdf ingest, with their kinds, whether or not the data has a value for them, so
ingests of different PDFs append to one table (and their items are typed as the table's rows in the tasks)."""
LOCATOR = "file"
PARAGRAPH_GAP = 0.8
"""A vertical gap between two lines larger than this many median line heights starts a new text block."""
_HYPHEN = "\x02"  # PDFium's mark for a word hyphenated at the end of a line
_BREAK = "\n"


@dataclass
class _Line:
    text: str
    top: float
    bottom: float


def read_pdf(path: str, options: ReaderOptions) -> Iterator[Union[Document, Bad]]:
    """The one Document of a PDF file, or a Bad (too large, encrypted, unreadable, no pages)."""
    stem = posixpath.splitext(posixpath.basename(path))[0]
    try:
        fs, root = fsspec.core.url_to_fs(path)
        size = fs.size(root)
        if size > options.pdf_max_bytes:
            yield Bad(path, LOCATOR, "pdf_too_large", f"{size} bytes > pdf_max_bytes={options.pdf_max_bytes}",
                      sample_id=stem)
            return
        with fs.open(root, "rb") as f:
            raw = f.read()
    except OSError as e:
        yield Bad(path, LOCATOR, "unreadable_pdf", f"{type(e).__name__}: {e}", sample_id=stem)
        return
    yield _document(path, stem, raw, options)


def _document(path: str, stem: str, raw: bytes, options: ReaderOptions) -> Union[Document, Bad]:
    try:
        pdf = pdfium.PdfDocument(raw)
    except pdfium.PdfiumError as e:
        reason = "pdf_encrypted" if getattr(e, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD else "unreadable_pdf"
        return Bad(path, LOCATOR, reason, str(e), snippet=raw[:64], sample_id=stem)
    try:
        n_pages = len(pdf)
        if n_pages == 0:
            return Bad(path, LOCATOR, "empty_document", "the PDF has no pages", sample_id=stem)
        if n_pages > options.pdf_max_pages:
            return Bad(path, LOCATOR, "pdf_too_large", f"{n_pages} pages > pdf_max_pages={options.pdf_max_pages}",
                       sample_id=stem)
        title = (pdf.get_metadata_dict().get("Title") or "").strip() or None
        ref = source_ref(path)
        items = [item for number in range(n_pages) for item in _page_items(pdf[number], number + 1, ref, options)]
    except pdfium.PdfiumError as e:
        return Bad(path, LOCATOR, "unreadable_pdf", str(e), sample_id=stem)
    finally:
        pdf.close()
    fields = select_fields({"n_pages": n_pages, "title": title}, set(), options)
    return Document(stem, path, LOCATOR, items, fields, ref)


def _page_items(page: pdfium.PdfPage, number: int, ref: dict, options: ReaderOptions) -> list[Item]:
    """Text blocks in PDFium's order, each image inserted before the first block that starts below it."""
    blocks = [(top, Item("text", text=text, content_type="text/plain", source_ref=ref, fields={"page": number}))
              for top, text in _text_blocks(page)]
    images = sorted(((obj.get_bounds()[3], _image_item(obj, number, ref, options))
                     for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=15)),
                    key=lambda pair: -pair[0])
    items, next_image = [], 0
    for top, block in blocks:
        while next_image < len(images) and images[next_image][0] >= top:
            items.append(images[next_image][1])
            next_image += 1
        items.append(block)
    items.extend(item for _, item in images[next_image:])
    return items


def _text_blocks(page: pdfium.PdfPage) -> list[tuple[float, str]]:
    """(top y, text) per paragraph: lines joined by spaces, hyphenated line ends rejoined."""
    lines = _lines(page)
    if not lines:
        return []
    height = statistics.median(line.top - line.bottom for line in lines) or 1.0
    blocks: list[list[_Line]] = [[lines[0]]]
    for previous, line in zip(lines, lines[1:]):
        gap = previous.bottom - line.top
        if not previous.text.strip() or gap > PARAGRAPH_GAP * height or line.top > previous.top + height:
            blocks.append([])  # a blank line, a large gap, or a jump back up (next column, header, footnote)
        if line.text.strip():
            blocks[-1].append(line)
    out = []
    for block in blocks:
        if not block:
            continue
        text = ""
        for line in block:
            piece = line.text.strip()
            if text.endswith(_HYPHEN):
                text = text[:-1] + piece
            else:
                text = f"{text} {piece}" if text else piece
        text = text.replace(_HYPHEN, "-").strip()
        if text:
            out.append((max(line.top for line in block), text))
    return out


def _lines(page: pdfium.PdfPage) -> list[_Line]:
    """The text layer's lines, in PDFium's order, with the vertical extent of their characters."""
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        left, right, bottom, top = (ctypes.c_double() for _ in range(4))
        lines, chars, tops, bottoms = [], [], [], []
        for index in range(count + 1):
            code = pdfium_c.FPDFText_GetUnicode(textpage, index) if index < count else 10
            if code == 10:
                text = "".join(chars)
                if tops:
                    lines.append(_Line(text, max(tops), min(bottoms)))
                elif lines and not text.strip():
                    lines.append(_Line("", lines[-1].bottom, lines[-1].bottom))  # a blank line
                chars, tops, bottoms = [], [], []
            elif code != 13:
                char = chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else "\ufffd"
                chars.append(char if char == _HYPHEN or char.isprintable() else " ")
                if not char.isspace() and pdfium_c.FPDFText_GetCharBox(textpage, index, left, right, bottom, top):
                    tops.append(top.value)
                    bottoms.append(bottom.value)
        return lines
    finally:
        textpage.close()


def _image_item(obj: pdfium.PdfImage, number: int, ref: dict, options: ReaderOptions) -> Item:
    """The image's JPEG stream as stored when it is a plain DCT image, else its bitmap as PNG."""
    fields = {"page": number}
    try:
        width, height = obj.get_px_size()
        if width * height > options.max_pixels:
            return Item("image", source_ref=ref, fields=fields, error=(
                "image_decompression_bomb", f"{width}x{height} pixels > max_pixels={options.max_pixels}"))
        if obj.get_filters(skip_simple=True) == ["DCTDecode"]:
            data = bytes(obj.get_data(decode_simple=True))
            return Item("image", data=data, content_type="image/jpeg", source_ref=ref, fields=fields)
        buffer = io.BytesIO()
        obj.get_bitmap(render=False).to_pil().save(buffer, format="PNG")
        return Item("image", data=buffer.getvalue(), content_type="image/png", source_ref=ref, fields=fields)
    except Exception as e:  # PdfiumError, or PIL failing on an odd bitmap: this image only
        return Item("image", source_ref=ref, fields=fields, error=("pdf_image_unreadable", f"{type(e).__name__}: {e}"))
