"""WARC and ARC crawl files: every HTML `response` with status 200 becomes one page document.

WARC (gzipped or not) is read with fastwarc; fastwarc has no ARC support, so ARC files go through
a small reader of their one-line record headers. A record that cannot be read becomes a
`malformed_warc_record` Bad and the next record is still read; an archive that ends inside a
record gives one `truncated_warc` Bad at the last offset reached.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Union

import zlib

import brotli
import fsspec
from fastwarc.warc import ArchiveIterator, WarcRecordType

from mmcurate.io.documents import Bad, Document, ReaderOptions, source_ref
from mmcurate.io.readers.html import html_document, page_id


@dataclass
class Page:
    """One HTML 200 response of an archive, before extraction."""

    offset: int
    url: str
    crawl_date: Optional[str]
    payload_digest: Optional[str]
    body: bytes


def read_warc(path: str, options: ReaderOptions) -> Iterator[Union[Document, Bad]]:
    """Page documents of one WARC/ARC file in record order; unreadable records become Bad records."""
    pages = _arc_pages(path) if path.lower().endswith((".arc", ".arc.gz")) else _warc_pages(path)
    produced = False
    for page in pages:
        produced = True
        if isinstance(page, Bad):
            yield page
            continue
        locator = f"offset:{page.offset}"
        fields = {"crawl_date": page.crawl_date, "payload_digest": page.payload_digest}
        yield html_document(page.body, page.url, path, locator, options, fields,
                            sample_id=page_id(page.url, page.payload_digest),
                            ref=source_ref(path, None, page.offset, None))
    if not produced:
        yield Bad(path, "", "no_documents", "the archive holds no HTML response with status 200")


def _warc_pages(path: str) -> Iterator[Union[Page, Bad]]:
    offset = 0
    try:
        with fsspec.open(path, "rb") as stream:
            for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True):
                offset = record.stream_pos
                try:
                    page = warc_page(record)
                except Exception as e:  # one bad record never ends the file
                    yield Bad(path, f"offset:{offset}", "malformed_warc_record", f"{type(e).__name__}: {e}")
                    continue
                if page is not None:
                    yield page
            cut = cut_gzip_member(stream, offset) if path.lower().endswith(".gz") else None
        if cut is not None:
            yield Bad(path, f"offset:{cut}", "truncated_warc", "the archive ends inside a gzip member")
    except Exception as e:  # the iterator itself died: the records before stand
        yield Bad(path, f"offset:{offset}", "truncated_warc", f"{type(e).__name__}: {e}")


def cut_gzip_member(stream, start: int) -> Optional[int]:
    """The offset of the first gzip member from `start` on that ends before its end-of-stream marker (or is no
    gzip at all), None when every member is complete. fastwarc stops silently at a cut member, so a truncated
    `.warc.gz` is checked from its last response record to the end (from the start when that is no member
    boundary: one gzip member for the whole file)."""
    stream.seek(start)
    if start and stream.read(2) != b"\x1f\x8b":
        start = 0
    stream.seek(start)
    member, fed, inflater, data = start, 0, zlib.decompressobj(zlib.MAX_WBITS | 16), b""
    while True:
        if not data:
            data = stream.read(1 << 16)
            if not data:
                return member if fed else None
        fed += len(data)
        try:
            inflater.decompress(data)
        except zlib.error:
            return member
        data = b""
        if inflater.eof:
            data = inflater.unused_data
            member += fed - len(data)
            fed, inflater = 0, zlib.decompressobj(zlib.MAX_WBITS | 16)


def warc_page(record) -> Optional[Page]:
    """The record as a Page when it is an HTML 200 response, None for anything else."""
    if record.http_headers is None:
        raise ValueError("response record without parsable HTTP headers")
    if record.http_headers.status_code != 200 or not is_html(record.http_content_type):
        return None
    url = (record.headers.get("WARC-Target-URI") or "").strip().strip("<>")  # wget writes <uri>
    if not url:
        raise ValueError("response record without WARC-Target-URI")
    body = decode_body(record.reader.read(), {k.lower(): v for k, v in record.http_headers.items()})
    return Page(record.stream_pos, url, record.headers.get("WARC-Date"),
                record.headers.get("WARC-Payload-Digest"), body)


def decode_body(body: bytes, headers: dict) -> bytes:
    """The HTTP payload without transfer and content encodings (headers lower-cased); a cut or corrupt
    compressed body raises ValueError. A body that only claims to be chunked is kept as it is (as warcio does)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _unchunk(body)
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS)
        try:
            out = inflater.decompress(body)
        except zlib.error as e:
            raise ValueError(f"corrupt {encoding} body: {e}") from e
        if not inflater.eof:
            raise ValueError(f"{encoding} body cut short ({len(body)} bytes)")
        return out
    if encoding == "br":
        try:
            return brotli.decompress(body)
        except brotli.error as e:
            raise ValueError(f"corrupt br body: {e}") from e
    return body


def _unchunk(body: bytes) -> bytes:
    out, position = [], 0
    while position < len(body):
        end = body.find(b"\r\n", position)
        size_text = body[position:end].split(b";")[0].strip() if end >= 0 else b""
        try:
            size = int(size_text, 16)
        except ValueError:
            return body  # not really chunked
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        position = end + 2 + size + 2
    return b"".join(out)


def is_html(content_type: Optional[str]) -> bool:
    """Whether a Content-Type header names an HTML page (text/html or XHTML)."""
    return (content_type or "").split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")


def _arc_pages(path: str) -> Iterator[Union[Page, Bad]]:
    """ARC v1: `URL IP date content-type length` lines, each followed by `length` bytes (HTTP headers and body)."""
    offset = 0
    try:
        with fsspec.open(path, "rb", compression="infer") as stream:
            while True:
                offset = stream.tell()  # uncompressed position for .arc.gz
                line = stream.readline()
                if not line:
                    return
                if not line.strip():
                    continue
                fields = line.decode("latin-1").split()
                length = int(fields[-1]) if fields and fields[-1].isdigit() else None
                if len(fields) < 5 or length is None:
                    yield Bad(path, f"offset:{offset}", "malformed_warc_record",
                              f"not an ARC record header: {line[:200]!r}")
                    while stream.readline().strip():  # resynchronise after the next blank line
                        pass
                    continue
                fields = [" ".join(fields[:-4]), *fields[-4:]]  # URLs may hold spaces
                block = stream.read(length)
                if len(block) < length:
                    yield Bad(path, f"offset:{offset}", "truncated_warc", f"{len(block)} of {length} bytes")
                    return
                url = fields[0]
                if url.startswith("filedesc://") or not is_html(fields[3]):
                    continue
                try:
                    page = _arc_page(offset, url, fields[2], block)
                except Exception as e:
                    yield Bad(path, f"offset:{offset}", "malformed_warc_record", f"{type(e).__name__}: {e}")
                    continue
                if page is not None:
                    yield page
    except Exception as e:
        yield Bad(path, f"offset:{offset}", "truncated_warc", f"{type(e).__name__}: {e}")


def _arc_page(offset: int, url: str, date: str, block: bytes) -> Optional[Page]:
    head, _, body = block.partition(b"\r\n\r\n")
    if not _:
        head, _, body = block.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    if not lines or not lines[0].startswith("HTTP/"):
        raise ValueError(f"no HTTP status line: {lines[0][:100] if lines else ''!r}")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    if status != 200 or not is_html(headers.get("content-type")):
        return None
    body = decode_body(body, headers)
    crawl_date = f"{date[:4]}-{date[4:6]}-{date[6:8]}T{date[8:10]}:{date[10:12]}:{date[12:14]}Z" \
        if len(date) == 14 and date.isdigit() else None
    return Page(offset, url, crawl_date, None, body)
