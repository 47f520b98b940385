"""MINT-1T / NeMo Curator interleaved WebDataset shards.

Each `.json` member (`json_extensions`) is one sample with position-aligned `texts`/`images` lists. An image entry is
either the name of a tar member (NeMo's writer: `{key}.{position}.{ext}`) or a token such as
`page_0_image_3` (MINT-1T PDF shards), resolved like NeMo Curator does: the sample's
`image_member_field`, else the first token that is a member, else `{sample_id}{ext}` for an
`image_extensions` entry (a token that itself names an image file is never replaced by a fallback: if absent it
is a missing member). A TIFF member holds one frame per image, taken in order (`frame_index` in source_ref).
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import mimetypes
import posixpath
import tarfile
from typing import Iterator, Optional, Union
from urllib.parse import unquote

import fsspec

from mmcurate.images import extract_tiff_frame
from mmcurate.io.documents import Bad, Document, Item, ReaderOptions, parse_json, source_ref
from mmcurate.io.readers.aligned import aligned_document

def unsafe_member_name(name: str) -> bool:
    """Absolute paths and `..` components: never trusted, whatever is later done with the name."""
    return name.startswith("/") or "\\" in name or ".." in name.split("/")


def read_webdataset(path: str, options: ReaderOptions) -> Iterator[Union[Document, Bad]]:
    """Documents of one tar shard, in member order; unreadable parts become Bad records."""
    try:
        with fsspec.open(path, "rb") as raw:
            with tarfile.open(fileobj=raw, mode="r:*") as tar:
                members, problems = _index(tar, path)
                yield from problems
                json_names = [n for n in members if n.lower().endswith(options.json_extensions)]
                if not json_names and not problems:
                    yield Bad(path, "", "no_documents",
                              f"the tar holds no sample member ({', '.join(options.json_extensions)})")
                reader = _MemberReader(tar, members, path)
                for name in json_names:
                    yield _document(name, reader, options)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        yield Bad(path, "", "unreadable_tar", f"{type(e).__name__}: {e}")


def _index(tar: tarfile.TarFile, path: str) -> tuple[dict, list[Bad]]:
    """Regular members by name (first wins), and Bad records for unsafe, duplicate or truncated parts."""
    members: dict[str, tarfile.TarInfo] = {}
    problems: list[Bad] = []
    try:
        for info in tar:
            if info.isdir():
                continue
            if not info.isfile():
                problems.append(Bad(path, info.name, "not_a_regular_file",
                                    "links and special files are never followed"))
            elif unsafe_member_name(info.name):
                problems.append(Bad(path, info.name, "unsafe_member_name",
                                    "absolute path or '..' component in a tar member name"))
            elif info.name in members:
                problems.append(Bad(path, info.name, "duplicate_member", "member name repeated in the tar"))
            else:
                members[info.name] = info
    except (tarfile.TarError, EOFError, OSError) as e:
        problems.append(Bad(path, f"after:{_last(members)}", "truncated_tar", f"{type(e).__name__}: {e}"))
        return members, problems
    if not _ends_cleanly(tar):
        problems.append(Bad(path, f"after:{_last(members)}", "truncated_tar",
                            "archive ends without its end-of-archive blocks (cut at or inside a header)"))
    return members, problems


def _last(members: dict) -> Optional[str]:
    return next(reversed(members), None) if members else None


def _ends_cleanly(tar: tarfile.TarFile) -> bool:
    """An uncompressed tar must end with two zero blocks after its last member; tarfile itself takes
    a file cut at a member boundary or inside a header for a normal end. Compressed tars are trusted
    (their decompressor reports truncation)."""
    fileobj = tar.fileobj
    if isinstance(fileobj, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile)):
        return True
    fileobj.seek(tar.offset)
    tail = fileobj.read(2 * tarfile.BLOCKSIZE)
    return len(tail) == 2 * tarfile.BLOCKSIZE and not tail.strip(b"\0")


class _MemberReader:
    """Reads members of one open tar, caching the current document's TIFFs for frame extraction."""

    def __init__(self, tar: tarfile.TarFile, members: dict, path: str):
        self.tar, self.members, self.path = tar, members, path

    def read(self, name: str) -> bytes:
        handle = self.tar.extractfile(self.members[name])
        data = handle.read()
        if len(data) != self.members[name].size:
            raise EOFError(f"member {name} truncated: {len(data)} of {self.members[name].size} bytes")
        return data

    def ref(self, name: str, frame_index: Optional[int] = None) -> dict:
        info = self.members[name]
        return source_ref(self.path, name, info.offset_data, info.size, frame_index)


def _document(name: str, reader: _MemberReader, options: ReaderOptions) -> Union[Document, Bad]:
    stem = posixpath.splitext(posixpath.basename(name))[0]  # NeMo's Path(name).stem
    try:
        raw = reader.read(name)
    except (tarfile.TarError, EOFError, OSError) as e:
        return Bad(reader.path, name, "truncated_member", str(e))
    record, problem = parse_json(raw)
    if problem:
        return Bad(reader.path, name, *problem, snippet=raw)

    member_dir = posixpath.dirname(name)
    default_member = _default_member(record, stem, member_dir, reader.members, options)
    frames: dict[str, int] = {}
    cache: dict[str, bytes] = {}

    def resolve(token, _ordinal) -> Item:
        member = _member_for(token, member_dir, reader.members)
        names_a_file = isinstance(token, str) and token.lower().endswith(options.image_extensions)
        if member is None and not names_a_file:
            member = default_member
        if member is None and isinstance(token, str) and "://" in token:
            return Item("image", url=token)  # a URL-only image (MINT-1T HTML style)
        if member is None:
            return Item("image", error=("missing_image_member", f"no tar member for image entry {token!r}"),
                        url=str(token))
        content_type = mimetypes.guess_type(member)[0] or "application/octet-stream"
        index = None  # a TIFF member holds one frame per image entry naming it, in order
        if content_type == "image/tiff":
            index = frames.get(member, 0)
            frames[member] = index + 1
        if not options.materialize_on_read:  # lazy: the source_ref (with its TIFF frame) is read later
            return Item("image", content_type=content_type, source_ref=reader.ref(member, index))
        try:
            data = cache[member] if member in cache else reader.read(member)
        except (tarfile.TarError, EOFError, OSError) as e:
            return Item("image", error=("truncated_member", str(e)), url=str(token))
        if index is not None:
            cache[member] = data
            frame = extract_tiff_frame(data, index, max_pixels=options.max_pixels)
            if frame is None:
                return Item("image", error=("missing_tiff_frame", f"no frame {index} in {member}"),
                            url=str(token), source_ref=reader.ref(member, index))
            return Item("image", data=frame, content_type=content_type, source_ref=reader.ref(member, index))
        return Item("image", data=data, content_type=content_type, source_ref=reader.ref(member))

    default_id = record.get("sample_id") if isinstance(record, dict) else None
    default_id = str(default_id) if default_id is not None else unquote(stem)
    return aligned_document(record, reader.path, name, default_id, resolve, options, reader.ref(name))


def _member_for(token, member_dir: str, members: dict) -> Optional[str]:
    if not isinstance(token, str):
        return None
    for candidate in (token, posixpath.join(member_dir, token)):
        if candidate in members:
            return candidate
    return None


def _default_member(record, stem, member_dir, members, options: ReaderOptions) -> Optional[str]:
    """NeMo's fallback member for image tokens that are not member names themselves: the `image_member_field`
    member, else the first token that is a member, else `{sample_id}{ext}` for the first image extension
    present (sample_id: the `sample_id_field` value when set, else the JSON member's stem)."""
    if not isinstance(record, dict):
        return None
    if options.image_member_field:
        found = _member_for(record.get(options.image_member_field), member_dir, members)
        if found:
            return found
    images = record.get(options.images_field)
    for token in images if isinstance(images, list) else []:
        found = _member_for(token, member_dir, members)
        if found:
            return found
    named = record.get(options.sample_id_field) if options.sample_id_field else None
    sample_id = str(named) if named is not None else stem  # NeMo's sample id: the field's value, else the stem
    for ext in options.image_extensions:
        found = _member_for(f"{sample_id}{ext}", member_dir, members)
        if found:
            return found
    return None
