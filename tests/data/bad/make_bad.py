"""Build the bad-input corpus of the reliability tests (deterministic: `python tests/data/bad/make_bad.py`).

Writes, next to this file:

* `wds/`           WebDataset tars (NeMo layout: `{key}.{pos}.{ext}` image members, then `{key}.json`)
* `documents/`     OBELICS-style JSON Lines (`texts`/`images`, optional parallel `image_bytes` base64)
* `mmc4/`          MMC4 JSON Lines (`text_list`, `image_info[]` with `matched_text_index`, `image_base64`)
* `nemo_parquet/`  NeMo Curator interleaved Parquet (one row per item)
* `warc/`          WARC crawls (records written here: gzip per record or plain), cut, with malformed or skipped records
* `html/`          saved pages with broken markup, a wrong charset, an empty body
* `pdf/`           PDFs written here (Helvetica text pages): encrypted (RC4, user password), cut, corrupt, too long
* `cases.json`     one entry per case: {case, format, file, locator_contains, expect, check?, input, bug?, isolate?,
                   verify_images?}
                   `expect` is the quarantine reason the case must produce at a locator containing
                   `locator_contains` in `file`, or "ok" for valid-but-unusual input that must ingest
                   cleanly (`check`: sample_id, width/height/content_type of its images, item counts,
                   `materialize_error`: the reason its image items carry instead of bytes, `positions`: the
                   modalities in position order). `verify_images` is the reason the case's image gets when
                   ingest decodes every image (`ReaderOptions(verify_images=True)`).
                   `bug` marks a case whose current behaviour is wrong (the test expects the correct
                   behaviour and is a strict xfail until src/ is fixed); `isolate` marks input that
                   currently kills the whole Spark job, so the test ingests that file on its own.
* `inventory.json` every document-level input written (tar `.json` member, JSONL line, NeMo sample):
                   {format, file, locator, sample_id, n_texts, n_images, n_items, case, covered_by?}; the
                   tests check each one ends as a document or a document-level quarantine row
                   (`covered_by`: the file-level reason that may stand for it, e.g. after a truncation).

Real edge-case images come from ../shared/data/images (Pillow's and scikit-image's test files);
the rest are generated with Pillow. The 10 MB paragraph ships gzip-compressed (`.jsonl.gz`).
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SHARED = REPO.parent / "shared" / "data"
PILLOW = SHARED / "images" / "pillow_tests"
SKIMAGE = SHARED / "images" / "skimage"
MTIME = 1700000000  # fixed member mtime: the tars are byte-for-byte reproducible
FORMATS = {"wds": "webdataset", "documents": "documents", "mmc4": "mmc4", "nemo_parquet": "nemo_parquet",
           "warc": "warc", "html": "html", "pdf": "pdf"}

NEMO_SCHEMA = pa.schema([
    pa.field("sample_id", pa.string()),
    pa.field("position", pa.int32()),
    pa.field("modality", pa.string()),
    pa.field("content_type", pa.string()),
    pa.field("text_content", pa.string()),
    pa.field("binary_content", pa.large_binary()),
    pa.field("source_ref", pa.string()),
    pa.field("materialize_error", pa.string()),
    pa.field("url", pa.string()),
])

CASES: list[dict] = []
INVENTORY: list[dict] = []


def case(name, fmt, file, locator, expect, input, check=None, bug=None, isolate=False, verify_images=None):
    """Register one case (see the module docstring for the fields)."""
    assert name not in {c["case"] for c in CASES}, name
    entry = {"case": name, "format": fmt, "file": file, "locator_contains": locator, "expect": expect,
             "input": input}
    if verify_images:
        entry["verify_images"] = verify_images
    if check:
        entry["check"] = check
    if bug:
        entry["bug"] = bug
    if isolate:
        entry["isolate"] = True
    CASES.append(entry)


def inventory(fmt, file, locator, sample_id, n_texts, n_images, case_name, covered_by=None, n_items=None):
    """Register one document-level input (n_items: all content items, when some are neither text nor image)."""
    entry = {"format": fmt, "file": file, "locator": locator, "sample_id": sample_id, "n_texts": n_texts,
             "n_images": n_images, "n_items": n_texts + n_images if n_items is None else n_items, "case": case_name}
    if covered_by:
        entry["covered_by"] = covered_by
    INVENTORY.append(entry)


# ---------------------------------------------------------------------------------------------- images

def real(name: str, folder: Path = PILLOW) -> bytes:
    return (folder / name).read_bytes()


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def png_rgb(size, color=(200, 30, 30)) -> bytes:
    return encode(Image.new("RGB", size, color), "PNG")


def png_16bit() -> bytes:
    img = Image.new("I;16", (24, 16))
    for x in range(24):
        img.putpixel((x, x % 16), 1000 * x + 60000 % (x + 1))
    return encode(img, "PNG")


def animated_webp() -> bytes:
    frames = [Image.new("RGB", (16, 12), (80 * i, 40, 200 - 60 * i)) for i in range(3)]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0,
                  lossless=True)


def exif_rotated_photo() -> bytes:
    """A real photo (Pillow's flower.jpg, 120x90 stored) with EXIF orientation 6: displayed 90x120."""
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(PILLOW / "flower.jpg") as img:
        return encode(img.convert("RGB").resize((120, 90)), "JPEG", quality=85, exif=exif.tobytes())


def bomb_png() -> bytes:
    """A valid 8x8 PNG whose IHDR claims 50,000 x 50,000 (CRC fixed): refused from the header alone."""
    png = bytearray(png_rgb((8, 8)))
    png[16:24] = struct.pack(">II", 50_000, 50_000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])) & 0xFFFFFFFF)
    return bytes(png)


def tiny_distinct_png(i: int) -> bytes:
    """2x2 black PNG with pixel (0,0) encoding i: 10,000 distinct images in a few dozen bytes each."""
    img = Image.new("RGB", (2, 2))
    img.putpixel((0, 0), (i & 255, (i >> 8) & 255, 7))
    return encode(img, "PNG")


def truncated_png() -> bytes:
    rng = random.Random(0)
    noise = Image.frombytes("RGB", (64, 64), bytes(rng.randrange(256) for _ in range(64 * 64 * 3)))
    data = encode(noise, "PNG")
    return data[: len(data) // 2]


# ---------------------------------------------------------------------------------------------- tars

def tar_bytes(members, gz=False) -> bytes:
    """members: (name, bytes) regular files, or (name, TarInfo-type, linkname) for links."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member[0])
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = MTIME, 0o644, 0, 0, "", ""
            if len(member) == 3:
                info.type, info.linkname = member[1], member[2]
                tar.addfile(info)
            else:
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    data = out.getvalue()
    return gzip.compress(data, compresslevel=9, mtime=0) if gz else data


def dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def wds_doc(members, file, key, texts, images, case_name, extra=None, covered_by=None):
    """Append `{key}.json` (texts/images aligned) and register it as an input."""
    record = {"sample_id": key, "texts": texts, "images": images, **(extra or {})}
    members.append((f"{key}.json", dumps(record)))
    inventory("webdataset", file, f"{key}.json", key, sum(t is not None for t in texts),
              sum(i is not None for i in images), case_name, covered_by)


def write_wds(out: Path):
    fmt = "webdataset"

    # images.tar: one document per image case, a caption then the image -------------------------
    file = "wds/images.tar"
    members = []
    image_cases = [
        # name, member ext, bytes, expect, check, input
        ("truncated_jpeg", "jpg", real("truncated_jpeg.jpg"), "image_truncated", None,
         "Pillow's truncated_jpeg.jpg (JPEG cut short)"),
        ("truncated_png", "png", real("truncated_image.png"), "image_truncated", None,
         "Pillow's truncated_image.png (PNG, IDAT cut short)"),
        ("broken_png", "png", real("broken.png"), "image_decode_error", None,
         "Pillow's broken.png (PNG signature, garbage chunks)"),
        ("broken_png_stream", "png", real("broken_data_stream.png"), "image_decode_error", None,
         "Pillow's broken_data_stream.png (valid header, corrupt zlib stream)"),
        ("zero_width_gif", "gif", real("zero_width.gif"), "image_decode_error", None,
         "Pillow's zero_width.gif (GIF header claiming width 0)"),
        ("zero_byte_image", "jpg", b"", "image_empty", None, "zero-byte image member `.jpg`"),
        ("text_named_jpg", "jpg", b"this is a plain text file, not a JPEG\n", "image_not_an_image", None,
         "text file named `.jpg`"),
        ("decompression_bomb", "png", bomb_png(), "image_decompression_bomb", None,
         "8x8 PNG whose IHDR claims 50,000 x 50,000 px (2.5 Gpx), CRC fixed"),
        ("png_16bit", "png", png_16bit(), "ok", {"width": 24, "height": 16, "content_type": "image/png"},
         "16-bit grayscale PNG (mode I;16), 24x16"),
        ("cmyk_jpeg", "jpg", real("pil_sample_cmyk.jpg"), "ok",
         {"width": 100, "height": 100, "content_type": "image/jpeg"}, "Pillow's pil_sample_cmyk.jpg (CMYK JPEG)"),
        ("palette_trns_png", "png", real("p_trns_single.png"), "ok",
         {"width": 64, "height": 64, "content_type": "image/png"},
         "Pillow's p_trns_single.png (palette PNG with tRNS transparency)"),
        ("rgba_transparent_png", "png", real("transparent.png"), "ok",
         {"width": 200, "height": 150, "content_type": "image/png"}, "Pillow's transparent.png (RGBA)"),
        ("animated_gif", "gif", real("no_time_for_that_tiny.gif", SKIMAGE), "ok",
         {"width": 14, "height": 25, "content_type": "image/gif"},
         "scikit-image's no_time_for_that_tiny.gif (animated, 24 frames)"),
        ("animated_webp", "webp", animated_webp(), "ok", {"width": 16, "height": 12, "content_type": "image/webp"},
         "animated lossless WebP, 3 frames, 16x12"),
        ("exif_rotated_photo", "jpg", exif_rotated_photo(), "ok",
         {"width": 90, "height": 120, "content_type": "image/jpeg"},
         "photo stored 120x90 with EXIF Orientation=6 (rotate 90): displayed 90x120"),
        ("exif_orientation_real", "jpg", real("hopper_orientation_6.jpg"), "ok",
         {"width": 128, "height": 128, "content_type": "image/jpeg"},
         "Pillow's hopper_orientation_6.jpg (EXIF Orientation=6, square)"),
        ("invalid_exif", "jpg", real("invalid-exif.jpg"), "ok",
         {"width": 200, "height": 200, "content_type": "image/jpeg"}, "Pillow's invalid-exif.jpg (corrupt EXIF block)"),
        ("one_pixel", "png", png_rgb((1, 1)), "ok", {"width": 1, "height": 1, "content_type": "image/png"},
         "1x1 pixel PNG"),
        ("extreme_aspect", "png", png_rgb((4000, 2)), "ok",
         {"width": 4000, "height": 2, "content_type": "image/png"}, "4000x2 PNG (aspect ratio 2000:1)"),
    ]
    for name, ext, data, expect, check, desc in image_cases:
        member = f"{name}.1.{ext}"
        members.append((member, data))
        wds_doc(members, file, name, [f"Caption for {name}.", None], [None, member], name)
        if expect == "ok":
            case(name, fmt, file, f"{name}.json", "ok", desc, {"sample_id": name, **check})
        elif expect == "image_decompression_bomb":  # dangerous: never stored, whatever the options
            case(name, fmt, file, f"{name}.json#1", expect, desc, {"sample_id": name, "document_kept": True},
                 verify_images=expect)
        else:  # undecodable: kept (header-only probe), the `decodable` rule drops it; verify_images quarantines it
            case(name, fmt, file, f"{name}.json", "ok", desc, {"sample_id": name, "image_items": 1, "unique_images": 1},
                 verify_images=expect)
    (out / "images.tar").write_bytes(tar_bytes(members))

    # structure.tar: malformed and inconsistent sample members ----------------------------------
    file = "wds/structure.tar"
    members = [("control.1.jpg", real("hopper.jpg"))]
    wds_doc(members, file, "control", ["A well-formed control document.", None], [None, "control.1.jpg"], "control")
    case("control", fmt, file, "control.json", "ok", "well-formed document with Pillow's hopper.jpg",
         {"sample_id": "control", "width": 128, "height": 128, "content_type": "image/jpeg", "text_items": 1})

    def raw_member(key, data, case_name, expect, desc, locator=None, check=None, n_texts=0, n_images=0, bug=None):
        members.append((f"{key}.json", data))
        inventory(fmt, file, f"{key}.json", key, n_texts, n_images, case_name)
        case(case_name, fmt, file, locator or f"{key}.json", expect, desc, check, bug)

    raw_member("malformed", b'{"sample_id": "malformed", "texts": ["cut here", ', "malformed_json", "malformed_json",
               "`.json` member that is not valid JSON (cut mid-array)")
    raw_member("latin1", '{"sample_id": "latin1", "texts": ["caf\xe9 cr\xe8me"]}'.encode("latin-1"),
               "invalid_utf8_member", "invalid_utf8", "`.json` member encoded in Latin-1 (invalid UTF-8 bytes)")
    raw_member("array", b"[1, 2, 3]", "json_not_an_object", "not_an_object", "`.json` member holding a JSON array")
    wds_doc(members, file, "unequal", ["a", "b", "c"], [None, None], "unequal_lengths")
    case("unequal_lengths", fmt, file, "unequal.json", "ok", "3 texts vs 2 images (read as NeMo: shorter list padded)",
         {"sample_id": "unequal", "text_items": 3, "image_items": 0})
    members.append(("both.0.jpg", real("hopper.jpg")))
    wds_doc(members, file, "both", ["text", None], ["both.0.jpg", None], "both_at_same_index")
    case("both_at_same_index", fmt, file, "both.json", "ok",
         "texts[0] and images[0] both non-null (read as NeMo: the text, then the image)",
         {"sample_id": "both", "text_items": 1, "image_items": 1, "positions": ["text", "image"]})
    wds_doc(members, file, "missing_member", ["text", None], [None, "absent.1.jpg"], "missing_image_member")
    case("missing_image_member", fmt, file, "missing_member.json", "ok",
         "image entry naming a member that is not in the tar (kept without bytes, as NeMo)",
         {"sample_id": "missing_member", "image_items": 1, "materialize_error": "missing_image_member"})
    wds_doc(members, file, "empty", [], [], "empty_document")
    case("empty_document", fmt, file, "empty.json", "empty_document", "`{\"texts\": [], \"images\": []}`")
    members.append(("../escape.json", dumps({"sample_id": "escape", "texts": ["tar slip"]})))
    inventory(fmt, file, "../escape.json", "escape", 1, 0, "member_dotdot_path")
    case("member_dotdot_path", fmt, file, "../escape.json", "unsafe_member_name", "member named `../escape.json`")
    members.append(("/abs.json", dumps({"sample_id": "abs", "texts": ["absolute"]})))
    inventory(fmt, file, "/abs.json", "abs", 1, 0, "member_absolute_path")
    case("member_absolute_path", fmt, file, "/abs.json", "unsafe_member_name", "member named `/abs.json`")
    members.append(("../evil.1.jpg", real("hopper.jpg")))
    case("image_member_dotdot_path", fmt, file, "../evil.1.jpg", "unsafe_member_name",
         "image member named `../evil.1.jpg`")
    wds_doc(members, file, "evil_ref", ["text", None], [None, "../evil.1.jpg"], "image_ref_to_unsafe_member")
    case("image_ref_to_unsafe_member", fmt, file, "evil_ref.json", "ok",
         "document whose image is the unsafe `../evil.1.jpg` (never read: kept without bytes)",
         {"sample_id": "evil_ref", "image_items": 1, "materialize_error": "missing_image_member"})
    members.append(("twice.json", dumps({"texts": ["first copy"]})))
    inventory(fmt, file, "twice.json", "twice", 1, 0, "duplicate_member")
    members.append(("twice.json", dumps({"texts": ["second copy"]})))
    inventory(fmt, file, "twice.json", "twice", 1, 0, "duplicate_member")
    case("duplicate_member", fmt, file, "twice.json", "duplicate_member",
         "two members both named `twice.json` (first kept)", {"sample_id": "twice", "document_kept": True})
    (out / "structure.tar").write_bytes(tar_bytes(members))

    # duplicate sample id across shards ------------------------------------------------------------
    for shard, text in (("shard_a", "first"), ("shard_b", "second")):
        members = []
        wds_doc(members, f"wds/{shard}.tar", "dup_across", [f"{text} copy"], [None], "duplicate_sample_id_across_shards")
        wds_doc(members, f"wds/{shard}.tar", f"{shard}_own", ["unique"], [None], "duplicate_sample_id_across_shards")
        (out / f"{shard}.tar").write_bytes(tar_bytes(members))
    case("duplicate_sample_id_across_shards", "webdataset", "wds/shard_b.tar", "dup_across.json",
         "duplicate_sample_id", "sample `dup_across` in shard_a.tar and again in shard_b.tar",
         {"sample_id": "dup_across", "document_kept": True, "kept_text": "first copy"})

    # the same sample id twice inside one tar: the earlier member must win -------------------------
    members = []
    members.append(("z_first.json", dumps({"sample_id": "dup_within", "texts": ["first in file"]})))
    members.append(("a_second.json", dumps({"sample_id": "dup_within", "texts": ["second in file"]})))
    inventory(fmt, "wds/dup_within.tar", "z_first.json", "dup_within", 1, 0, "duplicate_sample_id_within_shard")
    inventory(fmt, "wds/dup_within.tar", "a_second.json", "dup_within", 1, 0, "duplicate_sample_id_within_shard")
    (out / "dup_within.tar").write_bytes(tar_bytes(members))
    case("duplicate_sample_id_within_shard", fmt, "wds/dup_within.tar", "a_second.json", "duplicate_sample_id",
         "sample `dup_within` in member z_first.json, then again in a later member a_second.json",
         {"sample_id": "dup_within", "document_kept": True, "kept_text": "first in file"})

    # truncated tar: cut inside a member's data ------------------------------------------------------
    file = "wds/truncated_data.tar"
    members = []
    wds_doc(members, file, "trunc_a", ["kept"], [None], "truncated_tar_in_data")
    members.append(("trunc_b.1.png", png_rgb((4, 4))))
    wds_doc(members, file, "trunc_b", ["kept", None], [None, "trunc_b.1.png"], "truncated_tar_in_data")
    wds_doc(members, file, "trunc_c", ["x" * 3000], [None], "truncated_member")
    wds_doc(members, file, "trunc_d", ["after the cut"], [None], "truncated_tar_in_data", covered_by="truncated_tar")
    data = tar_bytes(members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        cut = tar.getmember("trunc_c.json").offset_data + 1000
    (out / "truncated_data.tar").write_bytes(data[:cut])
    case("truncated_tar_in_data", fmt, file, "after:trunc_c.json", "truncated_tar",
         "tar cut 1000 bytes into the data of its 3rd sample member (4th sample lost)",
         {"kept_sample_ids": ["trunc_a", "trunc_b"]})
    case("truncated_member", fmt, file, "trunc_c.json", "truncated_member",
         "the `.json` member the cut goes through")

    # truncated tar: cut inside a member header -----------------------------------------------------
    file = "wds/truncated_header.tar"
    members = []
    for key in ("head_a", "head_b"):
        wds_doc(members, file, key, ["kept"], [None], "truncated_tar_in_header")
    wds_doc(members, file, "head_c", ["after the cut"], [None], "truncated_tar_in_header", covered_by="truncated_tar")
    data = tar_bytes(members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        cut = tar.getmember("head_c.json").offset + 100  # offset: start of the member's header block
    (out / "truncated_header.tar").write_bytes(data[:cut])
    case("truncated_tar_in_header", fmt, file, "after:head_b.json", "truncated_tar",
         "tar cut 100 bytes into the 512-byte header of its 3rd member",
         {"kept_sample_ids": ["head_a", "head_b"]})

    # empty, zero-byte and non-tar files --------------------------------------------------------
    (out / "empty.tar").write_bytes(tar_bytes([]))
    case("empty_tar", fmt, "wds/empty.tar", "", "no_documents", "valid tar with no members")
    (out / "zero_bytes.tar").write_bytes(b"")
    case("zero_byte_tar", fmt, "wds/zero_bytes.tar", "", "unreadable_tar", "zero-byte `.tar` file")
    (out / "not_a_tar.tar").write_bytes(b"this is not a tar archive\n" * 40)
    case("not_a_tar", fmt, "wds/not_a_tar.tar", "", "unreadable_tar", "text file named `.tar`")

    # a symlink named like a sample ------------------------------------------------------------------
    file = "wds/symlink.tar"
    members = [("link.json", tarfile.SYMTYPE, "/etc/passwd")]
    inventory(fmt, file, "link.json", "link", 0, 0, "symlink_member")
    wds_doc(members, file, "after_link", ["kept"], [None], "symlink_member")
    (out / "symlink.tar").write_bytes(tar_bytes(members))
    case("symlink_member", fmt, file, "link.json", "not_a_regular_file",
         "`link.json` is a symlink to /etc/passwd")

    # JSON that parses in no Python: deep nesting, huge integer ----------------------------------------
    for name, payload, desc, bug in (
        ("deep_json", b'{"sample_id": "deep", "texts": ["x"], "n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         "`.json` member nested 100,000 arrays deep",
         "json.loads raises RecursionError, which _document does not catch: the reader dies with "
         "reader_error 'after:1' and every later member of the tar (after_deep_json) is lost"),
        ("huge_int", b'{"sample_id": "huge", "texts": ["x"], "n": ' + b"7" * 5000 + b"}",
         "`.json` member with a 5,000-digit integer (over Python's 4,300-digit limit)",
         "json.loads raises a plain ValueError: read_webdataset's outer handler reports the whole tar as "
         "unreadable_tar at locator '' and every later member (after_huge_int) is lost"),
    ):
        file = f"wds/{name}.tar.gz"
        members = []
        wds_doc(members, file, f"before_{name}", ["kept"], [None], name)
        members.append((f"{name}.json", payload))
        inventory(fmt, file, f"{name}.json", name, 1, 0, name)
        wds_doc(members, file, f"after_{name}", ["kept"], [None], name)
        (out / f"{name}.tar.gz").write_bytes(tar_bytes(members, gz=True))
        case(name, fmt, file, f"{name}.json", "malformed_json", desc,
             {"kept_sample_ids": [f"before_{name}", f"after_{name}"]})

    # a JSON string escape that is no Unicode character ------------------------------------------------
    file = "wds/surrogate.tar"
    members = []
    wds_doc(members, file, "before_surrogate", ["kept"], [None], "lone_surrogate_wds")
    members.append(("surrogate.json", b'{"sample_id": "surrogate", "texts": ["bad \\ud800 escape"]}'))
    inventory(fmt, file, "surrogate.json", "surrogate", 1, 0, "lone_surrogate_wds")
    wds_doc(members, file, "after_surrogate", ["kept"], [None], "lone_surrogate_wds")
    (out / "surrogate.tar").write_bytes(tar_bytes(members))
    case("lone_surrogate_wds", fmt, file, "surrogate.json", "invalid_utf8",
         "`.json` member whose text holds the escape `\\ud800` (a lone surrogate: not encodable as UTF-8)",
         {"kept_sample_ids": ["before_surrogate", "after_surrogate"]})

    # one document with 10,000 distinct images (json first: a .tar.gz is read forwards) -----------------
    file = "wds/many_images.tar.gz"
    n = 10_000
    names = [f"many.{i + 1}.png" for i in range(n)]
    members = []
    wds_doc(members, file, "many", ["A document with ten thousand images."] + [None] * n, [None] + names, "many_images")
    members += [(name, tiny_distinct_png(i)) for i, name in enumerate(names)]
    (out / "many_images.tar.gz").write_bytes(tar_bytes(members, gz=True))
    case("many_images", fmt, file, "many.json", "ok", "one document with 10,000 distinct 2x2 PNG members",
         {"sample_id": "many", "image_items": n, "unique_images": n, "text_items": 1,
          "width": 2, "height": 2, "content_type": "image/png"})


# ---------------------------------------------------------------------------------------------- JSONL

def jsonl_writer(fmt, file, stem):
    """Collect lines; `add` registers each as an input with its default sample id."""
    lines: list[bytes] = []

    def add(raw: bytes, case_name, n_texts=0, n_images=0, covered_by=None):
        lines.append(raw)
        locator = f"line:{len(lines)}"
        inventory(fmt, file, locator, f"{stem}/{locator}", n_texts, n_images, case_name, covered_by)
        return locator

    def blank():
        lines.append(b"")  # skipped by the reader, but it still counts in the line numbers

    return lines, add, blank


def write_documents(out: Path):
    fmt = "documents"
    file = "documents/docs.jsonl"
    lines, add, blank = jsonl_writer(fmt, file, "docs")
    loc = add(dumps({"texts": ["A control document.", None], "images": [None, "https://example.com/a.jpg"]}),
              "documents_control", 1, 1)
    case("documents_control", fmt, file, loc, "ok", "well-formed line, URL-only image",
         {"sample_id": f"docs/{loc}", "text_items": 1, "image_items": 1})
    loc = add(b'{"texts": ["cut", ', "documents_malformed_json")
    case("documents_malformed_json", fmt, file, loc, "malformed_json", "JSONL line that is not valid JSON")
    loc = add('{"texts": ["caf\xe9"], "images": [null]}'.encode("latin-1"), "documents_invalid_utf8")
    case("documents_invalid_utf8", fmt, file, loc, "invalid_utf8", "JSONL line with Latin-1 bytes")
    loc = add(dumps({"texts": [], "images": []}), "documents_empty_document")
    case("documents_empty_document", fmt, file, loc, "empty_document", "`{\"texts\": [], \"images\": []}`")
    loc = add(dumps({"texts": ["a", "b"], "images": [None]}), "documents_unequal_lengths", 2, 0)
    case("documents_unequal_lengths", fmt, file, loc, "ok", "2 texts vs 1 image (shorter list padded)",
         {"sample_id": f"docs/{loc}", "text_items": 2})
    loc = add(dumps({"texts": ["a"], "images": ["https://example.com/b.jpg"]}), "documents_both_at_same_index", 1, 1)
    case("documents_both_at_same_index", fmt, file, loc, "ok", "texts[0] and images[0] both non-null",
         {"sample_id": f"docs/{loc}", "text_items": 1, "image_items": 1, "positions": ["text", "image"]})
    blank()
    loc = add(dumps({"texts": ["t", None], "images": [None, "https://example.com/c.png"],
                     "image_bytes": [None, "!!! not base64 ***"]}), "documents_invalid_base64", 1, 1)
    case("documents_invalid_base64", fmt, file, loc, "ok", "`image_bytes` entry that is not base64 (kept by URL)",
         {"sample_id": f"docs/{loc}", "image_items": 1, "materialize_error": "invalid_image_bytes"})
    loc = add(dumps({"texts": ["t", None], "images": [None, "https://example.com/d.webp"],
                     "image_bytes": [None, base64.b64encode(real("hopper.webp")).decode()]}),
              "documents_base64_webp", 1, 1)
    case("documents_base64_webp", fmt, file, loc, "ok", "valid base64 WebP (Pillow's hopper.webp) in `image_bytes`",
         {"sample_id": f"docs/{loc}", "width": 128, "height": 128, "content_type": "image/webp"})
    loc = add(b"[1, 2, 3]", "documents_not_an_object")
    case("documents_not_an_object", fmt, file, loc, "not_an_object", "JSONL line holding an array")
    loc = add(dumps({"title": "no texts or images"}), "documents_missing_lists")
    case("documents_missing_lists", fmt, file, loc, "missing_lists", "record without `texts`/`images`")
    loc = add(dumps({"texts": [{"not": "a string"}, "fine"], "images": [None, None]}),
              "documents_text_not_a_string", 2, 0)
    case("documents_text_not_a_string", fmt, file, f"{loc}#0", "text_not_a_string", "a text entry that is an object",
         {"sample_id": f"docs/{loc}", "document_kept": True})
    (out / "docs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    write_windows_jsonl(out, fmt, "documents", lambda i: {"texts": [f"Paragraph {i}.", None],
                                                         "images": [None, f"https://example.com/{i}.jpg"]}, 1, 1)

    # 10 MB single paragraph, gzip-compressed -------------------------------------------------------
    file = "documents/long_paragraph.jsonl.gz"
    lines, add, blank = jsonl_writer(fmt, file, "long_paragraph")
    rng = random.Random(1)
    words = "the of and a to in is was for on that with as by at from his her it an were are which".split()
    chunk = " ".join(rng.choice(words) for _ in range(3000)) + " "
    paragraph = (chunk * (10_000_000 // len(chunk) + 1))[:10_000_000]
    loc = add(dumps({"texts": ["Intro.", paragraph], "images": [None, None]}), "ten_mb_paragraph", 2, 0)
    case("ten_mb_paragraph", fmt, file, f"{loc}#1", "text_too_long",
         "one 10,000,000-character paragraph (no newline) in a `.jsonl.gz` line",
         {"sample_id": f"long_paragraph/{loc}", "document_kept": True, "text_items": 1})
    loc = add(dumps({"texts": ["After the long line."], "images": [None]}), "ten_mb_paragraph", 1, 0)
    (out / "long_paragraph.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n", 9, mtime=0))

    # truncated gzip ------------------------------------------------------------------------------
    file = "documents/truncated.jsonl.gz"
    lines, add, blank = jsonl_writer(fmt, file, "truncated")
    rng = random.Random(2)
    for i in range(400):
        add(dumps({"texts": [" ".join(rng.choice(words) for _ in range(40))], "images": [None]}),
            "truncated_gzip", 1, 0, covered_by="truncated_file")
    packed = gzip.compress(b"\n".join(lines) + b"\n", 9, mtime=0)
    (out / "truncated.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    case("truncated_gzip", fmt, file, "after:", "truncated_file",
         "`.jsonl.gz` cut in half (400 lines, about half readable)", {"kept_sample_ids": ["truncated/line:1"]})

    # JSON that parses in no Python, and a lone surrogate ---------------------------------------------
    for name, payload, desc, bug, isolate, gz in (
        ("documents_deep_json", b'{"texts": ["x"], "images": [null], "n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         "JSONL line nested 100,000 arrays deep",
         "RecursionError escapes _jsonl_records: reader_error 'after:1', line 3 lost", False, True),
        ("documents_huge_int", b'{"texts": ["x"], "images": [null], "n": ' + b"7" * 5000 + b"}",
         "JSONL line with a 5,000-digit integer",
         "ValueError (int digit limit) escapes _jsonl_records: reader_error 'after:1', line 3 lost", False, False),
        ("documents_lone_surrogate", b'{"texts": ["bad \\ud800 escape"], "images": [null]}',
         "JSONL line whose text holds the escape `\\ud800` (lone surrogate)",
         "UnicodeEncodeError in pa.RecordBatch.from_pylist (outside the per-file try) kills the Spark job",
         True, False),
    ):
        stem = name.replace("documents_", "")
        file = f"documents/{stem}.jsonl" + (".gz" if gz else "")
        lines, add, blank = jsonl_writer(fmt, file, stem)
        add(dumps({"texts": ["before"], "images": [None]}), name, 1, 0)
        loc = add(payload, name, 1, 0)
        add(dumps({"texts": ["after"], "images": [None]}), name, 1, 0)
        body = b"\n".join(lines) + b"\n"
        (out / Path(file).name).write_bytes(gzip.compress(body, 9, mtime=0) if gz else body)
        case(name, fmt, file, loc, "invalid_utf8" if "surrogate" in name else "malformed_json", desc,
             {"kept_sample_ids": [f"{stem}/line:1", f"{stem}/line:3"]})


def write_mmc4(out: Path):
    fmt = "mmc4"
    file = "mmc4/docs.jsonl"
    lines, add, blank = jsonl_writer(fmt, file, "docs")
    b64 = lambda data: base64.b64encode(data).decode()
    info = lambda i, **kw: {"raw_url": f"https://example.com/{i}.jpg", "matched_sim": 0.25, **kw}
    loc = add(dumps({"url": "https://example.com/ok", "text_list": ["One.", "Two."],
                     "image_info": [info(0, matched_text_index=1, image_base64=b64(real("hopper.jpg")))]}),
              "mmc4_control", 2, 1)
    case("mmc4_control", fmt, file, loc, "ok", "MMC4 line with a base64 JPEG (Pillow's hopper.jpg) matched to sentence 1",
         {"sample_id": f"docs/{loc}", "width": 128, "height": 128, "content_type": "image/jpeg", "text_items": 2})
    loc = add(b'{"text_list": ["cut", ', "mmc4_malformed_json")
    case("mmc4_malformed_json", fmt, file, loc, "malformed_json", "MMC4 JSONL line that is not valid JSON")
    loc = add(dumps({"text_list": ["One.", "Two."], "image_info": [info(1, matched_text_index=5)]}),
              "mmc4_index_out_of_range", 2, 1)
    case("mmc4_index_out_of_range", fmt, file, f"{loc}#2", "unmatched_image",
         "`matched_text_index` 5 with 2 sentences", {"sample_id": f"docs/{loc}", "document_kept": True})
    loc = add(dumps({"text_list": ["One."], "image_info": [info(2, matched_text_index=-1)]}),
              "mmc4_negative_index", 1, 1)
    case("mmc4_negative_index", fmt, file, f"{loc}#1", "unmatched_image", "`matched_text_index` -1",
         {"sample_id": f"docs/{loc}", "document_kept": True})
    loc = add(dumps({"text_list": ["One."], "image_info": [info(3, matched_text_index=0, image_base64="@@not base64@@")]}),
              "mmc4_invalid_base64", 1, 1)
    case("mmc4_invalid_base64", fmt, file, loc, "ok", "`image_base64` that is not base64 (kept by URL)",
         {"sample_id": f"docs/{loc}", "image_items": 1, "materialize_error": "invalid_image_bytes"})
    loc = add(dumps({"text_list": ["One."], "image_info": [
        info(4, matched_text_index=0, image_base64=b64(b"plain text, not an image"))]}), "mmc4_base64_not_an_image", 1, 1)
    case("mmc4_base64_not_an_image", fmt, file, loc, "ok",
         "valid base64 of a text file in `image_base64` (kept; the decodable rule drops it)",
         {"sample_id": f"docs/{loc}", "image_items": 1, "unique_images": 1}, verify_images="image_not_an_image")
    loc = add(dumps({"text_list": ["One."], "image_info": ["not an object"]}), "mmc4_image_info_not_an_object", 1, 1)
    case("mmc4_image_info_not_an_object", fmt, file, f"{loc}#1", "malformed_image_info",
         "`image_info` entry that is a string", {"sample_id": f"docs/{loc}", "document_kept": True})
    loc = add('{"text_list": ["caf\xe9"], "image_info": []}'.encode("latin-1"), "mmc4_invalid_utf8")
    case("mmc4_invalid_utf8", fmt, file, loc, "invalid_utf8", "MMC4 JSONL line with Latin-1 bytes")
    loc = add(dumps({"url": "https://example.com/none", "image_info": []}), "mmc4_missing_text_list")
    case("mmc4_missing_text_list", fmt, file, loc, "lists_not_lists", "record without `text_list`")
    loc = add(dumps({"text_list": [], "image_info": []}), "mmc4_empty_document")
    case("mmc4_empty_document", fmt, file, loc, "empty_document", "empty `text_list` and `image_info`")
    (out / "docs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    write_windows_jsonl(out, fmt, "mmc4", lambda i: {"url": f"https://example.com/{i}", "text_list": [f"Sentence {i}."],
                                                    "image_info": []}, 1, 0)


def write_windows_jsonl(out: Path, fmt: str, folder: str, record, n_texts: int, n_images: int):
    """JSONL as Windows tools write it: a UTF-8 byte-order mark, CRLF line ends, blank lines; plain and gzipped.
    Every line is a good document, the first one included."""
    for gz in (False, True):
        stem = "windows_gz" if gz else "windows"
        file = f"{folder}/{stem}.jsonl" + (".gz" if gz else "")
        lines, add, blank = jsonl_writer(fmt, file, stem)
        first = add(dumps(record(0)), f"{fmt}_bom_crlf", n_texts, n_images)
        blank()
        add(dumps(record(1)), f"{fmt}_bom_crlf", n_texts, n_images)
        add(dumps(record(2)), f"{fmt}_bom_crlf", n_texts, n_images)
        blank()
        body = b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n"
        (out / Path(file).name).write_bytes(gzip.compress(body, 9, mtime=0) if gz else body)
        name = f"{fmt}_bom_crlf" + ("_gz" if gz else "")
        case(name, fmt, file, first, "ok", "JSONL with a UTF-8 BOM, CRLF line ends and blank lines"
             + (", gzipped" if gz else "") + ": the first document too is read",
             {"sample_id": f"{stem}/{first}", "text_items": n_texts,
              "kept_sample_ids": [f"{stem}/line:1", f"{stem}/line:3", f"{stem}/line:4"]})


# ---------------------------------------------------------------------------------------------- NeMo Parquet

def nemo_rows(sample_id, items, url=None):
    """items: (position, modality, text, binary, source_ref); a metadata row first."""
    rows = [{"sample_id": sample_id, "position": -1, "modality": "metadata", "content_type": "application/json",
             "url": url or f"https://example.com/{sample_id}"}]
    for position, modality, text, binary, ref in items:
        rows.append({"sample_id": sample_id, "position": position, "modality": modality,
                     "content_type": "text/plain" if modality == "text" else None,
                     "text_content": text, "binary_content": binary, "source_ref": ref})
    return rows


def write_nemo_file(out: Path, name: str, samples, schema=NEMO_SCHEMA, covered_by=None) -> list[str]:
    """samples: (sample_id, rows, case); registers one input per sample; returns their row-range locators.

    With another `schema`, values of columns it types as (large_)string are written as text."""
    rows, locators = [], []
    for sample_id, sample_rows, case_name in samples:
        locator = f"rows:{len(rows)}-{len(rows) + len(sample_rows) - 1}"
        content = [r for r in sample_rows if r["modality"] != "metadata"]
        inventory("nemo_parquet", f"nemo_parquet/{name}", locator, sample_id,
                  sum(r["modality"] == "text" for r in content),
                  sum(r["modality"] == "image" for r in content), case_name, covered_by, len(content))
        rows += sample_rows
        locators.append(locator)
    textual = {f.name for f in schema if f.type in (pa.string(), pa.large_string())}

    def value(row, column):
        v = row.get(column)
        if column in textual and v is not None and not isinstance(v, str):
            return v.decode("ascii") if isinstance(v, bytes) else str(v)
        return v

    table = pa.Table.from_pylist([{f.name: value(r, f.name) for f in schema} for r in rows], schema=schema)
    pq.write_table(table, out / name, compression="snappy")
    return locators


def write_nemo(out: Path):
    fmt = "nemo_parquet"
    file = "nemo_parquet/items.parquet"
    text = lambda p, t: (p, "text", t, None, None)
    image = lambda p, b, ref=None: (p, "image", None, b, ref)
    samples = [
        ("nemo_control", nemo_rows("nemo_control", [text(0, "A control sample."), text(1, "Second paragraph.")]),
         "nemo_control"),
        ("nemo_dup_across", nemo_rows("nemo_dup_across", [text(0, "first copy")]), "nemo_duplicate_sample_id_across_files"),
        ("nemo_split", nemo_rows("nemo_split", [text(0, "first part of the file")]), "nemo_duplicate_sample_id_within_file"),
        ("nemo_negative", nemo_rows("nemo_negative", [text(-3, "negative"), text(0, "fine")]), "nemo_negative_position"),
        ("nemo_dup_pos", nemo_rows("nemo_dup_pos", [text(0, "zero"), text(0, "zero again"), text(1, "one")]),
         "nemo_duplicate_position"),
        ("nemo_cmyk", nemo_rows("nemo_cmyk", [text(0, "caption"), image(1, real("pil_sample_cmyk.jpg"))]), "nemo_cmyk_jpeg"),
        ("nemo_truncated", nemo_rows("nemo_truncated", [text(0, "caption"), image(1, truncated_png())]),
         "nemo_truncated_png"),
        ("nemo_no_bytes", nemo_rows("nemo_no_bytes", [text(0, "caption"), image(1, None)]), "nemo_missing_image_bytes"),
        ("nemo_bad_ref", nemo_rows("nemo_bad_ref", [text(0, "caption"), image(1, None, json.dumps(
            {"path": "does-not-exist/shard.tar", "member": "x.jpg", "byte_offset": None, "byte_size": None}))]),
         "nemo_materialize_failed"),
        ("nemo_audio", nemo_rows("nemo_audio", [text(0, "caption"), (1, "audio", None, b"RIFF", None)]),
         "nemo_unsupported_modality"),
    ]
    null_rows = [{**r, "sample_id": None} for r in nemo_rows("x", [text(0, "orphan")])]
    samples.append((None, null_rows, "nemo_null_sample_id"))
    samples.append(("nemo_split", nemo_rows("nemo_split", [text(0, "again, later in the file")]),
                    "nemo_duplicate_sample_id_within_file"))
    locators: dict[str, list[str]] = {}
    for (_, _, case_name), locator in zip(samples, write_nemo_file(out, "items.parquet", samples)):
        locators.setdefault(case_name, []).append(locator)
    loc = lambda name, k=0: locators[name][k]
    case("nemo_control", fmt, file, loc("nemo_control"), "ok", "well-formed sample: metadata row + 2 texts",
         {"sample_id": "nemo_control", "text_items": 2})
    case("nemo_negative_position", fmt, file, loc("nemo_negative_position") + "#0", "invalid_position",
         "content row at position -3", {"sample_id": "nemo_negative", "document_kept": True, "text_items": 1})
    case("nemo_duplicate_position", fmt, file, loc("nemo_duplicate_position") + "#1", "duplicate_position",
         "two content rows at position 0", {"sample_id": "nemo_dup_pos", "document_kept": True, "text_items": 2})
    case("nemo_cmyk_jpeg", fmt, file, loc("nemo_cmyk_jpeg"), "ok", "CMYK JPEG in `binary_content`",
         {"sample_id": "nemo_cmyk", "width": 100, "height": 100, "content_type": "image/jpeg"})
    case("nemo_truncated_png", fmt, file, loc("nemo_truncated_png"), "ok",
         "PNG cut in half in `binary_content` (kept; the decodable rule drops it)",
         {"sample_id": "nemo_truncated", "image_items": 1, "unique_images": 1}, verify_images="image_truncated")
    case("nemo_missing_image_bytes", fmt, file, loc("nemo_missing_image_bytes"), "ok",
         "image row with neither bytes nor source_ref (kept without bytes, as NeMo)",
         {"sample_id": "nemo_no_bytes", "image_items": 1, "materialize_error": "missing_image_bytes"})
    case("nemo_materialize_failed", fmt, file, loc("nemo_materialize_failed"), "ok",
         "image row whose source_ref names a missing tar (kept with its materialize_error, as NeMo)",
         {"sample_id": "nemo_bad_ref", "image_items": 1, "materialize_error": "materialize_failed"})
    case("nemo_unsupported_modality", fmt, file, loc("nemo_unsupported_modality") + "#1", "unsupported_modality",
         "content row with modality 'audio'", {"sample_id": "nemo_audio", "document_kept": True})
    case("nemo_null_sample_id", fmt, file, loc("nemo_null_sample_id"), "null_sample_id", "rows whose sample_id is null")
    case("nemo_duplicate_sample_id_within_file", fmt, file, loc("nemo_duplicate_sample_id_within_file", 1),
         "duplicate_sample_id", f"sample `nemo_split` at {loc('nemo_duplicate_sample_id_within_file')} and again, "
         f"non-contiguous, at {loc('nemo_duplicate_sample_id_within_file', 1)}",
         {"sample_id": "nemo_split", "document_kept": True, "kept_text": "first part of the file"})

    write_nemo_file(out, "shard_b.parquet", [
        ("nemo_dup_across", nemo_rows("nemo_dup_across", [text(0, "second copy")]), "nemo_duplicate_sample_id_across_files"),
        ("nemo_shard_b_own", nemo_rows("nemo_shard_b_own", [text(0, "unique")]), "nemo_duplicate_sample_id_across_files"),
    ])
    case("nemo_duplicate_sample_id_across_files", fmt, "nemo_parquet/shard_b.parquet", "rows:0-1", "duplicate_sample_id",
         "sample `nemo_dup_across` in items.parquet and again in shard_b.parquet",
         {"sample_id": "nemo_dup_across", "document_kept": True, "kept_text": "first copy"})

    as_string = pa.schema([pa.field("position", pa.string()) if f.name == "position" else f for f in NEMO_SCHEMA])
    write_nemo_file(out, "position_as_string.parquet",
                    [("nemo_pos_str", nemo_rows("nemo_pos_str", [text(0, "x")]), "nemo_position_as_string")],
                    schema=as_string, covered_by="wrong_column_types")
    case("nemo_position_as_string", fmt, "nemo_parquet/position_as_string.parquet", "schema", "wrong_column_types",
         "`position` column of type string ('-1', '0')")

    large = pa.schema([pa.field(f.name, pa.large_string()) if f.type == pa.string() else f for f in NEMO_SCHEMA])
    write_nemo_file(out, "large_string.parquet",
                    [("nemo_large_string", nemo_rows("nemo_large_string", [text(0, "one"), text(1, "two")]),
                      "nemo_large_string_columns")], schema=large)
    case("nemo_large_string_columns", fmt, "nemo_parquet/large_string.parquet", "rows:0-2", "ok",
         "valid NeMo file whose string columns are Arrow large_string (as Polars and some pyarrow writers emit)",
         {"sample_id": "nemo_large_string", "text_items": 2})

    binary_str = pa.schema([pa.field("binary_content", pa.string()) if f.name == "binary_content" else f
                            for f in NEMO_SCHEMA])
    write_nemo_file(out, "binary_as_string.parquet",
                    [("nemo_binary_str", nemo_rows("nemo_binary_str", [text(0, "caption"), image(1, b"iVBORw0KGgo=")]),
                      "nemo_binary_content_as_string")], schema=binary_str, covered_by="wrong_column_types")
    case("nemo_binary_content_as_string", fmt, "nemo_parquet/binary_as_string.parquet", "schema",
         "wrong_column_types", "`binary_content` column of type string")

    data = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(nemo_rows("nemo_cut", [text(0, "x")]), schema=NEMO_SCHEMA), data)
    (out / "truncated.parquet").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    inventory(fmt, "nemo_parquet/truncated.parquet", "rows:0-1", "nemo_cut", 1, 0, "nemo_truncated_parquet",
              covered_by="unreadable_parquet")
    case("nemo_truncated_parquet", fmt, "nemo_parquet/truncated.parquet", "", "unreadable_parquet",
         "Parquet file cut in half (no footer)")


# ---------------------------------------------------------------------------------------------- WARC

PAGE_TEXTS = 4  # text items trafilatura makes of `page_html`: the heading and three paragraphs
PAGE_IMAGES = 1


def page_html(title: str) -> bytes:
    """A small article page: a heading, three paragraphs and one declared-size photo between them."""
    paragraphs = [f"<p>{title}: paragraph {i} tells of the mills along the river and the people who worked "
                  f"them, long enough to be main content.</p>" for i in range(3)]
    return (f"<html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav><article>"
            f"<h1>{title}</h1>{paragraphs[0]}<img src='photo.jpg' width='640' height='480' alt='mill'>"
            f"{''.join(paragraphs[1:])}</article></body></html>").encode()


def warc_record(uri, body: bytes, status="200 OK", content_type="text/html; charset=utf-8", headers=b"") -> bytes:
    """A WARC/1.0 response record (uri None: without WARC-Target-URI), ids and digest derived from the content."""
    http = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode()
            + headers + b"\r\n" + body)
    digest = "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode()
    record_id = hashlib.md5(http + (uri or "").encode()).hexdigest()
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{record_id}>\r\n"
            f"WARC-Date: 2024-01-01T00:00:00Z\r\n" + (f"WARC-Target-URI: {uri}\r\n" if uri else "")
            + f"WARC-Payload-Digest: {digest}\r\nContent-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {len(http)}\r\n\r\n")
    return head.encode() + http + b"\r\n\r\n"


def warc_page_id(uri: str, body: bytes) -> str:
    """The sample id docs/web.md gives a crawled page: sha1 of the URL, a newline and the payload digest."""
    digest = "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode()
    return hashlib.sha1(f"{uri}\n{digest}".encode()).hexdigest()[:20]


def write_warc_file(out: Path, name: str, records, gz: bool) -> list[int]:
    """records: (record bytes, uri, body, case, covered_by); registers each record with a case as an input (a page,
    or a record that should have been one), not the responses the reader skips. Returns the record offsets (of each
    gzip member when gz)."""
    data, offsets = b"", []
    for record, uri, body, case_name, covered_by in records:
        offsets.append(len(data))
        data += gzip.compress(record, 9, mtime=0) if gz else record
        if case_name is not None:
            inventory("warc", f"warc/{name}", f"offset:{offsets[-1]}", warc_page_id(uri, body) if uri else None,
                      PAGE_TEXTS, PAGE_IMAGES, case_name, covered_by)
    (out / name).write_bytes(data)
    return offsets


def write_warc(out: Path):
    fmt = "warc"
    page = lambda n: (f"https://bad.example/{n}", page_html(f"Page {n}"))

    def good(n, case_name, covered_by=None):
        uri, body = page(n)
        return warc_record(uri, body), uri, body, case_name, covered_by

    # truncated .warc.gz: cut inside the third record's gzip member ----------------------------------
    records = [good("trunc-a", "truncated_warc_gz"), good("trunc-b", "truncated_warc_gz"),
               good("trunc-c", "truncated_warc_gz", covered_by="truncated_warc")]
    offsets = write_warc_file(out, "truncated.warc.gz", records, gz=True)
    data = (out / "truncated.warc.gz").read_bytes()
    (out / "truncated.warc.gz").write_bytes(data[: offsets[2] + (len(data) - offsets[2]) // 2])
    case("truncated_warc_gz", fmt, "warc/truncated.warc.gz", f"offset:{offsets[2]}", "truncated_warc",
         "`.warc.gz` (a gzip member per record) cut half-way through its third record",
         {"kept_sample_ids": [warc_page_id(*page("trunc-a")), warc_page_id(*page("trunc-b"))]})

    # malformed records between good ones: the rest of the file is still read --------------------------
    uri, body = page("no-uri")
    no_uri = (warc_record(None, body), None, body, "warc_record_without_uri", None)
    uri, body = page("bad-gzip")
    cut = gzip.compress(body, 9, mtime=0)[:40]
    bad_gzip = (warc_record(uri, cut, headers=b"Content-Encoding: gzip\r\n"), uri, cut, "warc_corrupt_gzip_body", None)
    records = [good("mal-a", "warc_record_without_uri"), no_uri, good("mal-b", "warc_corrupt_gzip_body"), bad_gzip,
               good("mal-c", "warc_corrupt_gzip_body")]
    offsets = write_warc_file(out, "malformed.warc", records, gz=False)
    kept = [warc_page_id(*page(n)) for n in ("mal-a", "mal-b", "mal-c")]
    case("warc_record_without_uri", fmt, "warc/malformed.warc", f"offset:{offsets[1]}", "malformed_warc_record",
         "response record without WARC-Target-URI between good records", {"kept_sample_ids": kept})
    case("warc_corrupt_gzip_body", fmt, "warc/malformed.warc", f"offset:{offsets[3]}", "malformed_warc_record",
         "response whose `Content-Encoding: gzip` body is cut after 40 bytes", {"kept_sample_ids": kept})

    # responses that are no page: skipped, not quarantined ---------------------------------------------
    uri, body = page("skip-ok")
    records = [(warc_record(f"https://bad.example/missing", page_html("Not found"), status="404 Not Found"),
                None, None, None, None),
               (warc_record("https://bad.example/moved", b"", status="301 Moved Permanently",
                            headers=b"Location: https://bad.example/skip-ok\r\n"), None, None, None, None),
               (warc_record("https://bad.example/photo.png", png_rgb((4, 4)), content_type="image/png"),
                None, None, None, None),
               good("skip-ok", "warc_non_page_responses")]
    offsets = write_warc_file(out, "skipped.warc.gz", records, gz=True)
    case("warc_non_page_responses", fmt, "warc/skipped.warc.gz", f"offset:{offsets[3]}", "ok",
         "a 404 HTML page, a 301 redirect and a 200 image/png response (skipped: no page) before a good page",
         {"sample_id": warc_page_id(uri, body), "text_items": PAGE_TEXTS, "image_items": PAGE_IMAGES})
    write_warc_file(out, "no_pages.warc", [records[0][:1] + (None,) * 4, records[2][:1] + (None,) * 4], gz=False)
    case("warc_without_pages", fmt, "warc/no_pages.warc", "", "no_documents",
         "a WARC holding only a 404 page and an image response")


# ---------------------------------------------------------------------------------------------- HTML

def write_html(out: Path):
    fmt = "html"
    canonical = lambda name: f'<link rel="canonical" href="https://bad.example/{name}">'.encode()

    def page(name, raw, case_name, expect, desc, n_texts=0, n_images=0, check=None):
        (out / f"{name}.html").write_bytes(raw)
        sample_id = hashlib.sha1(f"https://bad.example/{name}\n".encode()).hexdigest()[:20]
        inventory(fmt, f"html/{name}.html", "file", sample_id, n_texts, n_images, case_name)
        case(case_name, fmt, f"html/{name}.html", "file", expect, desc,
             {"sample_id": sample_id, **(check or {})} if expect == "ok" else None)

    words = "about the mill race, the weir and the village square, with enough words to be main content"
    broken = (b"<html><head>" + canonical("broken") + b"<title>Broken</title></head><body><div><article>"
              b"<p>First paragraph " + words.encode() + b".<p>Second <b>bold <i>and italic</b> still</i> " + words.encode()
              + b".</span></div></div><p>Third paragraph after stray closing tags " + words.encode() + b".")
    page("broken", broken, "html_broken_markup", "ok",
         "unclosed `<p>`, misnested `<b><i>`, stray `</span></div>`, no `</body></html>`", 3, 0, {"text_items": 3})
    latin1 = ("<html><head>" + canonical("charset").decode() + '<meta charset="utf-8"><title>Caf\xe9</title></head>'
              "<body><article>" + "".join(f"<p>Le caf\xe9 du matin num\xe9ro {i}, servi pr\xe8s de la fen\xeatre avec une "
                                          "tartine et un journal du jour.</p>" for i in range(3))
              + "</article></body></html>").encode("latin-1")
    page("charset", latin1, "html_wrong_charset", "ok",
         "declares `<meta charset=utf-8>` but its bytes are Latin-1 (decoded by trafilatura's charset detection)",
         3, 0, {"text_items": 3})
    page("empty_body", b"<html><head>" + canonical("empty_body") + b"<title>Empty</title></head><body></body></html>",
         "html_empty_body", "no_main_content", "a page whose `<body>` is empty")
    page("zero_bytes", b"", "html_zero_bytes", "unparsable_html", "a zero-byte `.html` file")


# ---------------------------------------------------------------------------------------------- PDF

PDF_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
"""The password padding of the PDF Standard security handler (ISO 32000-1, 7.6.3.3)."""


def rc4(key: bytes, data: bytes) -> bytes:
    state, j = list(range(256)), 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def pdf_bytes(texts: list[str], user_password: str = None) -> bytes:
    """A PDF with one Helvetica line per page; with `user_password`, encrypted with the Standard security handler
    (revision 2, RC4 40-bit; ISO 32000-1 algorithms 2-4), so it opens only with that password."""
    file_id = hashlib.md5(b"mmcurate bad corpus").digest()
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"}
    key = None
    if user_password is not None:
        padded = (user_password.encode() + PDF_PAD)[:32]
        owner = rc4(hashlib.md5((b"owner" + PDF_PAD)[:32]).digest()[:5], padded)
        key = hashlib.md5(padded + owner + struct.pack("<i", -4) + file_id).digest()[:5]
        objects[4 + 2 * len(texts)] = (b"<< /Filter /Standard /V 1 /R 2 /P -4 /O <" + owner.hex().encode()
                                       + b"> /U <" + rc4(key, PDF_PAD).hex().encode() + b"> >>")
    for i, text in enumerate(texts):
        page, content = 4 + 2 * i, 5 + 2 * i
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        if key is not None:  # algorithm 1: the object's own key
            stream = rc4(hashlib.md5(key + struct.pack("<I", content)[:3] + b"\0\0").digest()[:10], stream)
        objects[page] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
                         f" /Contents {content} 0 R >>").encode()
        objects[content] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(texts)))
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(texts)} >>".encode()
    out, offsets = bytearray(b"%PDF-1.4\n"), {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size + b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    encrypt = b" /Encrypt %d 0 R" % (size - 1) if key is not None else b""
    out += (b"trailer\n<< /Size %d /Root 1 0 R /ID [<%s> <%s>]%s >>\nstartxref\n%d\n%%%%EOF\n"
            % (size, file_id.hex().encode(), file_id.hex().encode(), encrypt, xref))
    return bytes(out)


def write_pdf(out: Path):
    fmt = "pdf"

    def pdf(name, data, case_name, expect, desc, n_texts, check=None):
        (out / f"{name}.pdf").write_bytes(data)
        inventory(fmt, f"pdf/{name}.pdf", "file", name, n_texts, 0, case_name)
        case(case_name, fmt, f"pdf/{name}.pdf", "file", expect, desc,
             {"sample_id": name, **(check or {})} if expect == "ok" else None)

    pdf("control", pdf_bytes(["A well-formed first page.", "And a second one."]), "pdf_control", "ok",
        "two text pages", 2, {"text_items": 2})
    pdf("encrypted", pdf_bytes(["A page only the password opens."], user_password="user"), "pdf_encrypted",
        "pdf_encrypted", "RC4-40 encrypted PDF with user password `user` (none is tried)", 1)
    three = pdf_bytes([f"Page {i + 1} of a file cut short." for i in range(3)])
    pdf("truncated", three[: len(three) // 2], "pdf_truncated", "unreadable_pdf",
        "a 3-page PDF cut in half (no xref, no trailer)", 3)
    pdf("corrupt", three[:200] + bytes(range(256)) * 2 + three[712:], "pdf_corrupt", "unreadable_pdf",
        "a 3-page PDF with 512 bytes overwritten by binary garbage (the first page object's dictionary)", 3)
    pdf("too_many_pages", pdf_bytes([f"Page {i + 1}." for i in range(51)]), "pdf_over_page_limit", "pdf_too_large",
        "a 51-page PDF (pdf_max_pages=50 by default, MINT-1T's limit)", 51)


def main():
    for folder in FORMATS:
        target = HERE / folder
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
    write_wds(HERE / "wds")
    write_documents(HERE / "documents")
    write_mmc4(HERE / "mmc4")
    write_nemo(HERE / "nemo_parquet")
    write_warc(HERE / "warc")
    write_html(HERE / "html")
    write_pdf(HERE / "pdf")
    (HERE / "cases.json").write_text(json.dumps(CASES, indent=1, ensure_ascii=False) + "\n")
    (HERE / "inventory.json").write_text(  # one input per line
        "[\n" + ",\n".join(json.dumps(entry, ensure_ascii=False) for entry in INVENTORY) + "\n]\n")
    size = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"{len(CASES)} cases, {len(INVENTORY)} document-level inputs, {size / 2**20:.2f} MiB in {HERE}")


if __name__ == "__main__":
    main()
