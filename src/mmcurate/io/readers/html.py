"""Web pages: one HTML page becomes one interleaved document, text and images in DOM order.

Main content comes from trafilatura (boilerplate, navigation and cookie banners removed) as XML
with `<graphic>` elements where the page's images stood. Before extraction every `<img>` gets one
absolute `src` (largest `srcset`/`<picture>` candidate, resolved against `<base href>` and the page
URL) so its alt and declared size can be found again; images are URL-only items for a later
fetch stage and are never filtered here (logos and icons are for recipe rules, see docs/web.md).
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterator, Optional, Union
from urllib.parse import urljoin

import fsspec
import trafilatura
from trafilatura.utils import load_html

from mmcurate.io.documents import Bad, Document, Item, ReaderOptions, source_ref

INLINE_TAGS = frozenset({"hi", "ref", "lb", "del", "span", "cell"})
"""trafilatura XML elements that continue the surrounding paragraph; every other element ends one."""
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_DIMENSION = re.compile(r"^\s*(\d+)\s*(px)?\s*$")
PAGE_FIELDS = {"url": "string", "title": "string", "language": "string", "crawl_date": "string",
               "payload_digest": "string", "alt": "string", "declared_width": "bigint", "declared_height": "bigint"}
"""The passthrough columns of every html and warc ingest, with their kinds, whether or not the data has a value
for them (a crawl without images still has `declared_width`), so saved pages and crawls append to one table."""


def page_id(url: str, digest: Optional[str] = None) -> str:
    """A stable sample id: sha1 of the URL (plus the payload digest when the page came from a crawl)."""
    return hashlib.sha1(f"{url}\n{digest or ''}".encode("utf-8")).hexdigest()[:20]


def html_document(html: Union[str, bytes], url: str, source: str, locator: str, options: ReaderOptions,
                  extra_fields: Optional[dict] = None, sample_id: Optional[str] = None,
                  ref: Optional[dict] = None) -> Union[Document, Bad]:
    """One page as a Document (main-content paragraphs and URL-only images in DOM order), or a Bad."""
    try:
        tree = load_html(html)
        if tree is None:
            return Bad(source, locator, "unparsable_html", "no HTML tree could be built", snippet=html,
                       sample_id=sample_id)
        base = resolve_base(tree, url)
        images = absolutize_images(tree, base)
        title = _first_text(tree, "//title")
        language = (tree.get("lang") or tree.get("xml:lang") or "").strip() or None
        xml = trafilatura.extract(tree, url=base or None, output_format="xml", include_images=True,
                                  include_comments=False, include_tables=True)
    except Exception as e:  # any parser failure is this page's problem, never the file's
        return Bad(source, locator, "unparsable_html", f"{type(e).__name__}: {str(e)[:300]}", snippet=html,
                   sample_id=sample_id)
    if not xml:
        return Bad(source, locator, "no_main_content", "trafilatura found no main content", snippet=html,
                   sample_id=sample_id)
    items = xml_items(xml, images)
    if not items:
        return Bad(source, locator, "no_main_content", "main content holds no text or image", sample_id=sample_id)
    fields = {"url": url, "title": title, "language": language, **(extra_fields or {})}
    return Document(sample_id or page_id(url), source, locator, items, fields, ref)


def resolve_base(tree, url: str) -> str:
    """The URL relative links resolve against: `<base href>` (itself relative to the page URL), else the URL."""
    for href in tree.xpath("//base/@href"):
        if href.strip():
            return urljoin(url, href.strip())
    return url


def absolutize_images(tree, base: str) -> dict[str, dict]:
    """Give each `<img>` one absolute `src` (largest srcset/`<picture>` candidate) and return per resolved URL its
    alt and declared size (first occurrence wins). The size is the width/height attributes of the element the
    chosen URL came from: the `<img>` for its `src` and `srcset` (the rendered size, whichever density is shown),
    a `<source>` for a `<picture>` source's candidate (art direction may change the shape)."""
    found: dict[str, dict] = {}
    for img in tree.iter("img"):
        candidates = [(url, size, img) for url, size in _srcset(img.get("srcset") or img.get("data-srcset"))]
        picture = next(img.iterancestors("picture"), None)  # libxml2 may nest <img> inside <source>
        if picture is not None:
            for source in picture.iter("source"):
                candidates += [(url, size, source)
                               for url, size in _srcset(source.get("srcset") or source.get("data-srcset"))]
        src, owner = (img.get("src") or img.get("data-src") or "").strip(), img
        if candidates:
            src, _, owner = max(candidates, key=lambda c: c[1])
        if not src or src.startswith("data:"):
            continue
        absolute = urljoin(base, src)
        for attribute in ("srcset", "data-srcset", "data-src"):
            img.attrib.pop(attribute, None)
        img.set("src", absolute)
        found.setdefault(absolute, {"alt": img.get("alt"), "declared_width": _dimension(owner.get("width")),
                                    "declared_height": _dimension(owner.get("height"))})
    return found


def _srcset(value: Optional[str]) -> list[tuple[str, float]]:
    """(url, size) candidates of a srcset; `480w` and `2x` descriptors compare within one attribute."""
    out = []
    for part in (value or "").split(","):
        words = part.split()
        if not words:
            continue
        size = 1.0
        if len(words) > 1 and words[1][:-1].replace(".", "", 1).isdigit():
            size = float(words[1][:-1])
        out.append((words[0], size))
    return out


def _dimension(value: Optional[str]) -> Optional[int]:
    match = _DIMENSION.match(value or "")
    return int(match.group(1)) if match else None


def _first_text(tree, xpath: str) -> Optional[str]:
    for element in tree.xpath(xpath):
        text = " ".join("".join(element.itertext()).split())
        if text:
            return text
    return None


def xml_items(xml: str, images: dict[str, dict]) -> list[Item]:
    """Items of trafilatura's XML in document order: a paragraph per block element, an image per `<graphic>`."""
    from lxml import etree

    root = etree.fromstring(xml.encode("utf-8"))
    main = root.find("main")
    items: list[Item] = []
    buffer: list[str] = []

    def flush():
        lines = (_SPACES.sub(" ", line).strip() for line in "".join(buffer).split("\n"))
        text = "\n".join(line for line in lines if line)
        buffer.clear()
        if text:
            items.append(Item("text", text=text))

    def walk(element):
        if element.tag == "graphic":
            flush()
            src = element.get("src")
            if src:
                declared = images.get(src, {})
                items.append(Item("image", url=src, fields={
                    "alt": declared.get("alt") or element.get("alt"),
                    "declared_width": declared.get("declared_width"),
                    "declared_height": declared.get("declared_height")}))
            buffer.append(element.tail or "")
            return
        block = element.tag not in INLINE_TAGS
        if block:
            flush()
        if element.tag == "lb":
            buffer.append("\n")
        elif element.tag == "cell":
            buffer.append(" ")
        buffer.append(element.text or "")
        for child in element:
            walk(child)
        if block:
            flush()
        buffer.append(element.tail or "")

    walk(main if main is not None else root)
    flush()
    return items


def read_html(path: str, options: ReaderOptions) -> Iterator[Union[Document, Bad]]:
    """A saved page is one document; its URL is the `<link rel=canonical>` or `<base href>`, else the path."""
    try:
        with fsspec.open(path, "rb", compression="infer") as f:
            raw = f.read()
    except OSError as e:
        yield Bad(path, "file", "unreadable_file", f"{type(e).__name__}: {e}")
        return
    url = path
    try:
        tree = load_html(raw)
        if tree is not None:
            links = tree.xpath("//link[@rel='canonical']/@href") + tree.xpath("//base/@href")
            url = next((link.strip() for link in links if link.strip().startswith(("http://", "https://"))), path)
    except Exception:  # the extraction below reports the page's problem
        pass
    yield html_document(raw, url, path, "file", options, {"crawl_date": None},
                        ref=source_ref(path, None, 0, len(raw)))
