"""Image bytes downloaded after ingest: URL-only image items (OBELICS, MMC4, HTML pages) become images.

Each distinct URL is requested once, in executors, by a bounded thread pool per task (standard library
HTTP client), then content-addressed like materialized images; every item with that URL gets the result.
Opt-outs are honoured: a deny list is never requested and `X-Robots-Tag: noai` / `noimageai` refuses the
bytes. `steps.fetch` stores the result; statuses and resumability are in docs/fetch.md.

>>> with fetch_images(items, FetchOptions(deny=("example.com",)), staging=lake.scratch("fetch")) as done:
...     done.counts()      # {"tried": .., "urls": .., "materialized": .., "failed": {"http_404": ..}}
"""
from __future__ import annotations

import http.client
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Union
from urllib.parse import urlsplit

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from mmcurate import __version__
from mmcurate.images import MAX_PIXELS
from mmcurate.io.documents import DANGEROUS_IMAGE
from mmcurate.io.materialize import (IMAGE_FIELDS, Materialized, image_columns, produce_once,
                                     record_batches, source_path)
from mmcurate.schema import IMAGES, is_modality, items_columns

STATUSES = ("http_<code>", "timeout", "too_big", "not_an_image", "denied", "connection_error", "decompression_bomb")
"""What `materialize_error` starts with when a fetch failed (`"<status>: <detail>"`)."""
PERMANENT = frozenset({"http_404", "http_410", "denied", "not_an_image", "too_big", "decompression_bomb"})
"""Failures a rerun does not retry unless retry_errors="all": asking again would get the same answer."""
USER_AGENT = f"mmcurate/{__version__} (image fetch; honours X-Robots-Tag noai)"
CHUNK = 64 * 2**10
_NOAI = re.compile(r"\bno(?:image)?ai\b")

FETCHED = pa.schema([("url", pa.string()), ("materialize_error", pa.string()), *IMAGE_FIELDS])
"""One row per distinct URL requested: the image's columns, or why there are no bytes."""
_KEYS = ("url", "materialize_error", "image_id")


@dataclass(frozen=True)
class FetchOptions:
    """How URLs are downloaded: threads per Spark task, per-request timeout (s, connect to last byte), retries of
    transient failures (timeouts, 5xx, 429, connection errors) with exponential backoff (s), the most bytes
    read, the User-Agent, opt-outs (deny: domains or URL prefixes; honour_noai) and the header bomb limit."""

    concurrency: int = 16
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.5
    max_bytes: int = 32 * 2**20
    user_agent: str = USER_AGENT
    deny: tuple[str, ...] = ()
    honour_noai: bool = True
    max_pixels: int = MAX_PIXELS

    def __post_init__(self):
        if isinstance(self.deny, str):
            object.__setattr__(self, "deny", tuple(d.strip() for d in self.deny.split(",") if d.strip()))
        object.__setattr__(self, "deny", tuple(self.deny))
        for name, low in (("concurrency", 1), ("retries", 0), ("backoff", 0), ("max_bytes", 1), ("timeout", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or \
                    (name == "timeout" and value == 0):
                raise ValueError(f"FetchOptions.{name} must be a number {'>' if name == 'timeout' else '>='} {low}, "
                                 f"got {value!r}")


class FetchError(Exception):
    """A URL gave no image bytes: `status` is one of STATUSES; `transient` ones are retried with backoff."""

    def __init__(self, status: str, detail: str, transient: bool = False):
        super().__init__(f"{status}: {detail}")
        self.status, self.transient = status, transient


def url_of() -> Column:
    """The http(s) URL of an image item: its image_url, else a source_ref path that is a URL; null otherwise."""
    def web(c: Column) -> Column:
        return F.when(F.lower(c).rlike("^https?://"), c)

    return F.coalesce(web(F.col("image_url")), web(source_path()))


def needs_fetch(retry_errors: Union[bool, str] = False) -> Column:
    """URL-only image items (no image_id): never tried, or also failed ones but PERMANENT (retry_errors=True),
    or every failed one (retry_errors="all")."""
    if retry_errors not in (False, True, "all"):
        raise ValueError(f"retry_errors must be False, True or 'all', got {retry_errors!r}")
    wanted = is_modality("image") & F.col("image_id").isNull() & url_of().isNotNull()
    error = F.col("materialize_error")
    if retry_errors == "all":
        return wanted
    if retry_errors:
        return wanted & (error.isNull() | ~F.substring_index(error, ":", 1).isin(*sorted(PERMANENT)))
    return wanted & error.isNull()


@dataclass
class Fetched(Materialized):
    """Materialized, with the number of distinct URLs requested in counts() (`results` has each item's url)."""

    def counts(self) -> dict:
        rows = self._per_reason(F.count_distinct("url").alias("urls"))  # a URL has one result: one reason
        return {**self._counts(rows), "urls": sum(r.urls for r in rows)}


def fetch_images(items: DataFrame, options: Optional[FetchOptions] = None,
                 retry_errors: Union[bool, str] = False, staging: Optional[str] = None) -> Fetched:
    """Download the distinct URLs of `needs_fetch` items in executors (each requested once), then join each URL's
    bytes or status back to every item with it. Items not tried are returned unchanged.

    The download runs here. staging: a folder executors and this process both reach (`Lakehouse.scratch`), where
    the bytes are written as Parquet while only the keys go through Spark (io/staging.py); it goes with the result.
    None: Spark caches the bytes on disk (1.3 times slower for a local server, bench/fetch.py)."""
    options = options or FetchOptions()
    items = items_columns(items, where="fetch_images(items)")
    todo = items.where(needs_fetch(retry_errors)).select("sample_id", "position", url_of().alias("url"))
    urls = todo.select("url").distinct()
    return produce_once(Fetched, items, urls.mapInArrow, _fetch_urls(options), FETCHED, _KEYS, ("url",), staging,
                        per_item=lambda keys: todo.join(keys, "url"))


def _fetch_urls(options: FetchOptions):
    """The mapInArrow function: distinct URLs in, FETCHED rows out, `concurrency` requests in flight per task and
    up to three times as many answers held (at most max_bytes each) while Spark takes a batch, so the threads
    keep fetching while the task waits on the JVM."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        opener = build_opener(options)
        urls = (url for batch in batches for url in batch.column("url").to_pylist())
        with ThreadPoolExecutor(options.concurrency, thread_name_prefix="fetch") as pool:
            rows = bounded_map(pool, lambda url: fetch_row(url, options, opener), urls, 4 * options.concurrency)
            yield from record_batches(rows, FETCHED)

    return run


def bounded_map(pool: ThreadPoolExecutor, fn: Callable, inputs: Iterable, window: int) -> Iterator:
    """fn over inputs on pool, results as they finish, at most `window` submitted and not yet yielded (so the
    bytes held stay bounded however many URLs a task has)."""
    pending = set()
    for value in inputs:
        pending.add(pool.submit(fn, value))
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from (f.result() for f in done)


def fetch_row(url: str, options: FetchOptions, opener: Optional[urllib.request.OpenerDirector] = None) -> dict:
    """One FETCHED row: the URL's bytes content-addressed, or materialize_error "<status>: <detail>"; never raises
    for what a server or its bytes do."""
    out = {"url": url, "materialize_error": None, **{name: None for name in IMAGES.fieldNames()}}
    try:
        data = download(url, options, opener)
    except FetchError as e:
        out["materialize_error"] = str(e)
        return out
    columns, info = image_columns(data, options.max_pixels)
    if info.error in ("not_an_image", "empty"):
        out["materialize_error"] = f"not_an_image: {info.detail}"
    elif info.error in DANGEROUS_IMAGE:
        out["materialize_error"] = f"{info.error}: {info.detail}"
    else:  # undecodable bytes stay an image, as at ingest: the `decodable` rule drops them
        out.update(columns)
    return out


def download(url: str, options: FetchOptions, opener: Optional[urllib.request.OpenerDirector] = None) -> bytes:
    """The body of `url` (redirects followed), retrying transient failures `options.retries` times with
    exponential backoff; a denied URL is never requested. Raises FetchError."""
    rule = denied_by(url, options.deny)
    if rule:
        raise FetchError("denied", f"deny list {rule!r}")
    opener = opener or build_opener(options)
    for attempt in range(options.retries + 1):
        try:
            return _get(url, options, opener)
        except FetchError as e:
            if not e.transient or attempt == options.retries:
                raise
        time.sleep(options.backoff * 2**attempt)
    raise AssertionError("unreachable")


def denied_by(url: str, deny: Iterable[str]) -> Optional[str]:
    """The deny rule matching `url`: a URL prefix (with scheme, or host/path without), or a domain and its
    subdomains; None when none does."""
    parts = urlsplit(url)
    host, bare = (parts.hostname or "").lower(), url.split("://", 1)[-1].lower()
    for rule in deny:
        r = rule.strip().lower()
        if "://" in r:
            hit = url.lower().startswith(r)
        elif "/" in r:
            hit = bare.startswith(r)
        else:
            r = r.lstrip(".")
            hit = bool(r) and (host == r or host.endswith("." + r))
        if hit:
            return rule
    return None


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects followed only to http(s) URLs the deny list allows (an opt-out must hold after a redirect)."""

    def __init__(self, deny: tuple[str, ...]):
        self.deny = deny

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        rule = denied_by(newurl, self.deny)
        if rule or not newurl.lower().startswith(("http://", "https://")):
            fp.close()
            if rule:
                raise FetchError("denied", f"redirect to {newurl} (deny list {rule!r})")
            raise FetchError("connection_error", f"redirect to a non-HTTP URL {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def build_opener(options: FetchOptions) -> urllib.request.OpenerDirector:
    """A urllib opener following only allowed redirects; one per task, shared by its threads."""
    return urllib.request.build_opener(_Redirects(options.deny))


def _get(url: str, options: FetchOptions, opener: urllib.request.OpenerDirector) -> bytes:
    """One request; failures as FetchError (transient: timeouts, 5xx, 429, connection errors)."""
    request = urllib.request.Request(url, headers={"User-Agent": options.user_agent,
                                                   "Accept": "image/*,*/*;q=0.8"})
    started = time.monotonic()
    try:
        with opener.open(request, timeout=options.timeout) as response:
            return _body(response, options, started)
    except FetchError:
        raise
    except urllib.error.HTTPError as e:
        e.close()
        raise FetchError(f"http_{e.code}", str(e.reason), transient=e.code >= 500 or e.code == 429) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise FetchError("timeout", f"no answer within {options.timeout} s", transient=True) from None
        raise FetchError("connection_error", f"{type(e.reason).__name__}: {e.reason}", transient=True) from None
    except TimeoutError:
        raise FetchError("timeout", f"no answer within {options.timeout} s", transient=True) from None
    except (http.client.HTTPException, OSError) as e:
        raise FetchError("connection_error", f"{type(e).__name__}: {e}", transient=True) from None
    except ValueError as e:  # not a URL urllib can request
        raise FetchError("connection_error", f"{type(e).__name__}: {e}") from None


def _body(response, options: FetchOptions, started: float) -> bytes:
    """The response's bytes after the opt-out and content-type checks, read in chunks: at most max_bytes, and
    within the timeout counted from the request (a slow trickle cannot hold a thread)."""
    headers = response.headers
    if options.honour_noai:
        tag = ", ".join(headers.get_all("X-Robots-Tag") or []).lower()
        if _NOAI.search(tag):
            raise FetchError("denied", f"X-Robots-Tag: {tag}")
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type.startswith("text/"):
        raise FetchError("not_an_image", f"content-type {content_type}")
    length = headers.get("Content-Length")
    if length and length.isdigit() and int(length) > options.max_bytes:
        raise FetchError("too_big", f"Content-Length {length} > max_bytes {options.max_bytes}")
    chunks, size = [], 0
    while True:
        chunk = response.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > options.max_bytes:
            raise FetchError("too_big", f"more than max_bytes {options.max_bytes}")
        if time.monotonic() - started > options.timeout:
            raise FetchError("timeout", f"body not read within {options.timeout} s", transient=True)
