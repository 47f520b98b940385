"""Build small interleaved-document fixtures (MINT-1T WDS/PDF, OBELICS, MMC4, NeMo Parquet) from real sample data."""
import base64
import hashlib
import html as htmllib
import io
import json
import mimetypes
import re
import tarfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urljoin

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
PAGES_DIR = SHARED / "opencv_tutorials"
MMC4_SRC = SHARED / "mmc4" / "mmc4_core_ff_shard151_sample.jsonl"
OUT = REPO / "tests" / "data"
DEMO = REPO / "src" / "mmcurate" / "demo_data"
SOURCE = "opencv_tutorials"
BASE_URL = "https://docs.opencv.org/4.6.0/"  # the same doxygen tree is published there
MTIME = 1683849600  # 2023-05-12, when Debian's opencv-doc 4.6 pages were generated
MAX_PARAGRAPH = 800  # merge consecutive text blocks up to about this many characters
N_TEST_PAGES, N_DEMO_PAGES = 20, 60
BLOCK_TAGS = {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "br", "tr", "blockquote", "center", "address",
              "h1", "h2", "h3", "h4", "h5", "h6"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
SKIP_TAGS = {"script", "style", "pre", "table", "iframe", "object", "textarea"}
SKIP_CLASSES = {"toc", "fragment", "ttc"}
VOID_TAGS = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"}
NAV_PREFIXES = ("Prev Tutorial:", "Next Tutorial:")
CAPTION_PLACEHOLDER = "image"  # doxygen's default caption text for markdown images

NEMO_SCHEMA = pa.schema([
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("position", pa.int32(), nullable=False),
    pa.field("modality", pa.string(), nullable=False),
    pa.field("content_type", pa.string()),
    pa.field("text_content", pa.string()),
    pa.field("binary_content", pa.large_binary()),
    pa.field("source_ref", pa.string()),
    pa.field("materialize_error", pa.string()),
    pa.field("url", pa.string()),
])


class PageParser(HTMLParser):
    """Collect the logo, the title and the main-content blocks of a doxygen tutorial page in document order."""

    def __init__(self):
        """Start with an empty element stack and no blocks."""
        super().__init__(convert_charrefs=True)
        self.stack = []  # (tag, role) per open element; role in {"skip", "main", None}
        self.blocks = []  # ("text", str, is_heading) or ("image", src)
        self.buf, self.heading = [], False

    def _active(self):
        """Return True inside the page title or main contents and outside skipped subtrees."""
        roles = {role for _, role in self.stack}
        return "main" in roles and "skip" not in roles

    def _flush(self):
        """Close the current text block."""
        text = " ".join("".join(self.buf).split())
        if text and text != CAPTION_PLACEHOLDER and not text.startswith(NAV_PREFIXES):
            self.blocks.append(("text", text, self.heading))
        self.buf, self.heading = [], False

    def handle_starttag(self, tag, attrs):
        """Track nesting, start blocks and record images."""
        attrs = dict(attrs)
        if tag == "img":
            self.handle_startendtag(tag, attrs.items())
            return
        if tag in BLOCK_TAGS:
            self._flush()
        if tag in VOID_TAGS:
            return
        classes = set((attrs.get("class") or "").split())
        role = None
        if tag in SKIP_TAGS or classes & SKIP_CLASSES:
            role = "skip"
        elif tag == "div" and classes & {"contents", "title"}:
            role = "main"
        self.stack.append((tag, role))
        self.heading = self.heading or tag in HEADINGS

    def handle_startendtag(self, tag, attrs):
        """Record an image (main content, or the project logo in the header); end blocks at <br/>."""
        attrs = dict(attrs)
        if tag in BLOCK_TAGS:
            self._flush()
        is_logo = any(t == "td" for t, _ in self.stack) and attrs.get("alt") == "Logo"
        if tag == "img" and attrs.get("src") and (self._active() or is_logo):
            self._flush()
            self.blocks.append(("image", attrs["src"]))

    def handle_endtag(self, tag):
        """Pop the element stack up to the matching tag."""
        if tag in BLOCK_TAGS:
            self._flush()
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        """Buffer text that belongs to the content."""
        if self._active():
            self.buf.append(data)

    def close(self):
        """Finish parsing and close the last text block."""
        super().close()
        self._flush()


def parse_page(path):
    """Turn one tutorial page into a document with aligned texts/images and resolved image files."""
    html = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(html)
    parser.close()
    title = htmllib.unescape(re.search(r"<title>(.*?)</title>", html, re.S).group(1)).strip().removeprefix("OpenCV: ")
    url = path.relative_to(PAGES_DIR).as_posix()
    doc = {"sample_id": url.removesuffix(".html"), "url": url, "title": title, "source": SOURCE,
           "texts": [], "images": [], "files": []}
    for block in parser.blocks:
        last = doc["texts"][-1] if doc["texts"] else None
        if block[0] == "text" and last is not None and not block[2] and len(last) + len(block[1]) < MAX_PARAGRAPH:
            doc["texts"][-1] = f"{last}\n{block[1]}"
        elif block[0] == "text":
            add_item(doc, block[1], None, None)
        else:
            file = PAGES_DIR / Path(block[1].split("?")[0]).name
            add_item(doc, None, block[1], file if file.is_file() else None)
    return doc


def add_item(doc, text, image, file):
    """Append one position (text xor image) to a document."""
    doc["texts"].append(text)
    doc["images"].append(image)
    doc["files"].append(file)


def image_positions(doc):
    """Return the positions holding an image."""
    return [i for i, img in enumerate(doc["images"]) if img is not None]


def blob(doc, i):
    """Return the bytes of the image at position i, or None if it is URL-only."""
    return doc["files"][i].read_bytes() if doc["files"][i] else None


def image_url(doc, i):
    """Return the absolute web URL of the image at position i."""
    return urljoin(BASE_URL + doc["url"], doc["images"][i])


def weight(doc):
    """Return the total bytes of a document's resolved images."""
    return sum(f.stat().st_size for f in doc["files"] if f)


def counts(docs, image_keys):
    """Count documents, text items, image items and unique images (by content hash, or by URL if no bytes)."""
    keys = [k for doc_keys in image_keys for k in doc_keys]
    return {"documents": len(docs), "text_items": sum(t is not None for d in docs for t in d["texts"]),
            "image_items": len(keys), "unique_images": len(set(keys)),
            "url_only_images": sum(k.startswith("url:") for k in keys)}


def content_keys(doc, blobs=None):
    """Return one identity key per image item: sha256 of its bytes, else its URL."""
    blobs = blobs or {i: blob(doc, i) for i in image_positions(doc)}
    return [f"sha256:{hashlib.sha256(blobs[i]).hexdigest()}" if blobs[i] else f"url:{image_url(doc, i)}"
            for i in image_positions(doc)]


def tar_member(name, data):
    """Build a TarInfo with fixed metadata so archives are byte-identical across runs."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_tar(path, members):
    """Write (name, bytes) members to an uncompressed tar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            tar.addfile(tar_member(name, data), io.BytesIO(data))


def dump_json(obj):
    """Serialize like NeMo's writer (ensure_ascii=False), UTF-8 encoded."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def wds_sample(doc, blobs):
    """Return the tar members of one MINT-1T/NeMo WebDataset sample: image members first, then the JSON."""
    key = quote(doc["sample_id"], safe="")
    images, members = list(doc["images"]), []
    for i in image_positions(doc):
        if doc["files"][i]:
            images[i] = f"{key}.{i}.{doc['files'][i].suffix.lower().lstrip('.')}"
            members.append((images[i], blobs[i]))
    meta = {"sample_id": doc["sample_id"], "texts": doc["texts"], "images": images,
            "url": doc["url"], "title": doc["title"], "source": SOURCE}
    return members + [(f"{key}.json", dump_json(meta))]


def write_wds(directory, shards, tamper=None):
    """Write WDS shards (lists of documents); tamper(doc, blobs) may corrupt a sample and return (members, note)."""
    all_docs, all_keys, notes = [], [], []
    for n, docs in enumerate(shards):
        members = []
        for doc in docs:
            blobs = {i: blob(doc, i) for i in image_positions(doc)}
            sample, note = tamper(doc, blobs) if tamper else (None, None)
            members += sample or wds_sample(doc, blobs)
            if note:
                notes.append(note)
            if not note or note["kind"] != "malformed_json":
                all_docs.append(doc)
                all_keys.append(content_keys(doc, blobs))
        write_tar(directory / f"shard-{n:06d}.tar", members)
    return {**counts(all_docs, all_keys), "files": [f"shard-{n:06d}.tar" for n in range(len(shards))],
            "sample_ids": [d["sample_id"] for d in all_docs], "bad_members": notes}


def first_jpeg(doc):
    """Return the position of the document's first resolved JPEG, or None."""
    return next((i for i in image_positions(doc) if doc["files"][i] and doc["files"][i].suffix == ".jpg"), None)


SHOWCASE_DIR = OUT / "images" / "showcase"
IMAGES = SHARED / "images"


def showcase_docs(mirror_of):
    """Documents that make curation visible in the demo beside the tutorial pages: motion-blurred photos (blur),
    a QR-code poster (QR filter), a photo gallery with three words (image-to-text ratio), a text-only note (ratio 0,
    dropped as NeMo does) and a mirror of a tutorial page under another address (exact duplicates)."""
    import segno

    SHOWCASE_DIR.mkdir(parents=True, exist_ok=True)
    qr = SHOWCASE_DIR / "poster_qr.png"
    segno.make("https://docs.opencv.org/4.6.0/", error="m").save(str(qr), kind="png", scale=12, border=2)

    def doc(slug, title, parts):
        texts = [p if isinstance(p, str) else None for p in parts]
        files = [p if isinstance(p, Path) else None for p in parts]
        return {"sample_id": f"showcase/{slug}", "url": f"showcase/{slug}.html", "title": title,
                "source": "mmcurate_showcase", "texts": texts, "files": files,
                "images": [f.name if f else None for f in files]}

    blur = ("Motion blur appears when the camera or the subject moves during the exposure. The two photographs "
            "below were taken from a moving car and by a shaking hand: edges smear along the direction of motion "
            "and the variance of the Laplacian, a standard sharpness measure, falls far below that of a still shot.")
    return [
        doc("motion-blur", "Motion blur in practice", [
            blur, IMAGES / "skimage" / "clock_motion.png", "A wall clock photographed with a slow shutter.",
            IMAGES / "opencv_debian" / "licenseplate_motion.jpg",
            "A licence plate smeared by the motion of the car; no character can be read."]),
        doc("moon-survey", "Observing the Moon", [
            "The Moon is the easiest object for a first night with a small telescope. Even at low magnification "
            "the terminator, the line between day and night, shows crater walls in sharp relief, while the full "
            "Moon looks flat and washed out.", IMAGES / "skimage" / "moon.png",
            "A soft, low-contrast view of the lunar surface taken through thin clouds."]),
        doc("conference-poster", "Conference poster with a link", [
            "Our poster summarises the tutorial series on image processing with OpenCV. Scan the code to open the "
            "documentation on your phone, or read the fruit segmentation example printed on the right.",
            qr, IMAGES / "opencv_debian" / "fruits.jpg",
            "Colour thresholds in HSV separate the fruits from the table cloth."]),
        doc("photo-gallery", "Gallery", [
            "Holiday photos, 2023.", IMAGES / "skimage" / "rocket.jpg", IMAGES / "skimage" / "chelsea.png",
            IMAGES / "skimage" / "hubble_deep_field.jpg", IMAGES / "opencv_debian" / "baboon.jpg"]),
        doc("reading-note", "Reading note", [
            "Notes on the history of photography: the daguerreotype, announced in 1839, fixed an image on a "
            "silvered copper plate; each picture was unique and could not be copied.",
            "The calotype of Henry Fox Talbot produced a paper negative from which any number of positive prints "
            "could be made, and this negative-positive process shaped photography for a century and a half."]),
        {**mirror_of, "sample_id": "showcase/mirror/" + mirror_of["sample_id"], "url": "showcase/mirror/" + mirror_of["url"],
         "source": "mmcurate_showcase"},
    ]


def demo_tamper(targets):
    """Make a tamper function that truncates the first JPEG of targets[0] and the JSON of targets[1]."""
    def tamper(doc, blobs):
        """Corrupt the chosen samples, leave the others untouched."""
        key = quote(doc["sample_id"], safe="")
        if doc is targets[0]:
            i = first_jpeg(doc)
            blobs[i] = blobs[i][: len(blobs[i]) // 2]
            return wds_sample(doc, blobs), {"kind": "truncated_image", "sample_id": doc["sample_id"],
                                            "member": f"{key}.{i}.jpg", "source_file": doc["files"][i].name}
        if doc is targets[1]:
            data = wds_sample(doc, blobs)[-1][1]
            return [(f"{key}.json", data[: len(data) // 2])], {
                "kind": "malformed_json", "sample_id": doc["sample_id"], "member": f"{key}.json"}
        return None, None
    return tamper


def write_mint_pdf(path, docs):
    """Write MINT-1T PDF-style samples: JSON with page_X_image_Y tokens plus one multi-frame TIFF per document."""
    members = []
    for doc in docs:
        key = quote(doc["sample_id"], safe="")
        frames = [Image.open(doc["files"][i]).convert("RGBA").convert("RGB") for i in image_positions(doc)]
        tokens, images = [], list(doc["images"])
        for k, i in enumerate(image_positions(doc)):
            images[i] = f"page_0_image_{k}"
            tokens.append({"page": 0, "image_index": k, "width": frames[k].width, "height": frames[k].height})
        tiff = io.BytesIO()
        frames[0].save(tiff, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
        meta = {"texts": doc["texts"], "images": images, "image_metadata": tokens,
                "url": doc["url"], "title": doc["title"], "source": SOURCE}
        members += [(f"{key}.tiff", tiff.getvalue()), (f"{key}.json", dump_json(meta))]
    write_tar(path, members)
    return {**counts(docs, [content_keys(d) for d in docs]), "sample_ids": [d["sample_id"] for d in docs]}


def obelics_row(doc, with_bytes):
    """Return an OBELICS-style row: aligned texts/images (image URLs), url, general_metadata, document_id."""
    images = [image_url(doc, i) if img else None for i, img in enumerate(doc["images"])]
    row = {"document_id": doc["sample_id"], "url": doc["url"], "texts": doc["texts"], "images": images,
           "general_metadata": json.dumps({"url": BASE_URL + doc["url"], "title": doc["title"], "source": SOURCE})}
    if with_bytes:
        row["image_bytes"] = [blob(doc, i) if img else None for i, img in enumerate(doc["images"])]
    return row


def write_obelics(directory, docs, bytes_docs):
    """Write OBELICS-style JSONL + Parquet (URL-only) and a Parquet with a parallel image_bytes column."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = [obelics_row(d, False) for d in docs]
    (directory / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    schema = pa.schema([("document_id", pa.string()), ("url", pa.string()), ("texts", pa.list_(pa.string())),
                        ("images", pa.list_(pa.string())), ("general_metadata", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), directory / "docs.parquet")
    rows = [obelics_row(d, True) for d in bytes_docs]
    schema = schema.append(pa.field("image_bytes", pa.list_(pa.binary())))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), directory / "with_bytes.parquet")
    url_keys = [[f"url:{image_url(d, i)}" for i in image_positions(d)] for d in docs]
    return {"docs": {**counts(docs, url_keys), "sample_ids": [d["sample_id"] for d in docs]},
            "with_bytes": {**counts(bytes_docs, [content_keys(d) for d in bytes_docs]),
                           "sample_ids": [d["sample_id"] for d in bytes_docs]}}


def sentences(text):
    """Split a paragraph into sentences (line breaks and ., !, ? followed by whitespace)."""
    return [s for line in text.split("\n") for s in re.split(r"(?<=[.!?])\s+", line) if s]


def mmc4_doc(doc):
    """Return an MMC4-style document: text_list of sentences and image_info with embedded base64 bytes."""
    text_list, image_info = [], []
    for i, text in enumerate(doc["texts"]):
        if text is not None:
            text_list += sentences(text)
        else:
            image_info.append({"image_name": doc["files"][i].name, "raw_url": image_url(doc, i),
                               "matched_text_index": max(len(text_list) - 1, 0), "matched_sim": None,
                               "image_base64": base64.b64encode(blob(doc, i)).decode("ascii")})
    return {"url": doc["url"], "text_list": text_list, "image_info": image_info}


def write_mmc4(directory, docs):
    """Copy 20 real MMC4 lines verbatim and write MMC4-format documents with image bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = MMC4_SRC.read_bytes().splitlines(keepends=True)[:20]
    (directory / "docs.jsonl").write_bytes(b"".join(lines))
    real = [json.loads(line) for line in lines]
    real_counts = {"documents": len(real), "text_items": sum(len(d["text_list"]) for d in real),
                   "image_items": sum(len(d["image_info"]) for d in real),
                   "unique_images": len({i["raw_url"] for d in real for i in d["image_info"]}),
                   "url_only_images": sum(len(d["image_info"]) for d in real)}
    made = [mmc4_doc(d) for d in docs]
    (directory / "with_images.jsonl").write_text("".join(json.dumps(d) + "\n" for d in made), encoding="utf-8")
    made_counts = {"documents": len(made), "text_items": sum(len(d["text_list"]) for d in made),
                   "image_items": sum(len(d["image_info"]) for d in made),
                   "unique_images": len({i["image_base64"] for d in made for i in d["image_info"]}),
                   "url_only_images": 0, "sample_ids": [d["sample_id"] for d in docs]}
    return {"docs": real_counts, "with_images": made_counts}


def nemo_rows(doc):
    """Return NeMo INTERLEAVED_SCHEMA rows for one document: a metadata row (-1) then one row per item."""
    rows = [{"sample_id": doc["sample_id"], "position": -1, "modality": "metadata",
             "content_type": "application/json", "url": doc["url"]}]
    for i, (text, image) in enumerate(zip(doc["texts"], doc["images"])):
        if text is not None:
            rows.append({"sample_id": doc["sample_id"], "position": i, "modality": "text",
                         "content_type": "text/plain", "text_content": text})
        else:
            ref = {"path": image_url(doc, i), "member": None, "byte_offset": None, "byte_size": None}
            rows.append({"sample_id": doc["sample_id"], "position": i, "modality": "image",
                         "content_type": mimetypes.guess_type(image.split("?")[0])[0],
                         "binary_content": blob(doc, i), "source_ref": json.dumps(ref, ensure_ascii=True)})
    return rows


def write_nemo(path, docs):
    """Write NeMo Curator row-wise interleaved Parquet (INTERLEAVED_SCHEMA + passthrough url)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r for d in sorted(docs, key=lambda d: d["sample_id"]) for r in nemo_rows(d)]
    pq.write_table(pa.Table.from_pylist(rows, schema=NEMO_SCHEMA), path, compression="snappy")
    return {**counts(docs, [content_keys(d) for d in docs]), "sample_ids": sorted(d["sample_id"] for d in docs)}


def select(docs):
    """Pick page subsets: tests (shared figures, URL-only images, then light pages), demo, small (2-3 figures)."""
    uses = {}
    for d in docs:
        for f in {f for f in d["files"][1:] if f}:  # position 0 is the logo shared by every page
            uses[f] = uses.get(f, 0) + 1
    special = [d for d in docs if any(uses.get(f, 0) > 1 for f in d["files"][1:] if f)
               or any(f is None for i, f in enumerate(d["files"]) if d["images"][i])]
    light = sorted(docs, key=lambda d: (weight(d), d["url"]))
    tests = sorted((special + [d for d in light if d not in special])[:N_TEST_PAGES], key=lambda d: d["url"])
    demo = sorted((tests + [d for d in light if d not in tests])[:N_DEMO_PAGES], key=lambda d: d["url"])
    small = [d for d in light if 3 <= len(image_positions(d)) <= 4 and all(d["files"][i] for i in image_positions(d))]
    return tests, demo, sorted(small[:5], key=lambda d: d["url"])


FIXTURES = {
    "wds_mint": ("wds_mint/shard-00000{0,1}.tar", "MINT-1T HTML / NeMo WebDataset: `{key}.{pos}.{ext}` image "
                 "members before `{key}.json` (texts/images aligned, images = member names)"),
    "mint_pdf": ("mint_pdf/shard-000000.tar", "MINT-1T PDF: `{key}.json` with `page_0_image_K` tokens + one "
                 "multi-frame `{key}.tiff` (deflate, RGB) holding the document's images in order"),
    "obelics": ("obelics/docs.{jsonl,parquet}", "OBELICS / MINT-1T HTML rows: aligned texts/images with image "
                "URLs only, `general_metadata` JSON string"),
    "obelics_with_bytes": ("obelics/with_bytes.parquet", "same rows + parallel `image_bytes` list<binary>"),
    "mmc4": ("mmc4/docs.jsonl", "first 20 real MMC4 core-ff lines, verbatim (URL-only images; "
             "text items = sentences)"),
    "mmc4_with_images": ("mmc4/with_images.jsonl", "MMC4 format built from OpenCV pages (text items = "
                         "sentences), `image_base64` bytes; `matched_sim` is null (no CLIP score available)"),
    "nemo_parquet": ("nemo_parquet/items.parquet", "NeMo Curator INTERLEAVED_SCHEMA, one row per item, metadata "
                     "row at position -1 with passthrough `url`"),
    "demo_wds": ("src/mmcurate/demo_data/wds/shard-00000{0,1,2,3}.tar", "package demo, WDS layout as wds_mint; "
                 "shard 2 has a truncated JPEG and a truncated JSON member; shard 3 holds the showcase documents "
                 "(blurred photos, a QR poster, a gallery, a text-only note, a mirrored page)"),
}


def write_readmes(stats):
    """Write tests/data/README.md (fixture table with counts) and the demo data README."""
    head = "| fixture | file(s) | mimics | docs | text items | image items | unique images | URL-only |\n"
    rows = "".join(f"| {name} | `{path}` | {what} | {s['documents']} | {s['text_items']} | {s['image_items']} | "
                   f"{s['unique_images']} | {s['url_only_images']} |\n"
                   for name, (path, what) in FIXTURES.items() for s in [stats[name]])
    (OUT / "README.md").write_text(
        "# Test fixtures (generated: `python tests/data/make_fixtures.py`, deterministic)\n\n"
        "Built from real data in `../shared/data/` (see its MANIFEST.md): Debian `opencv-doc` 4.6 tutorial pages "
        "(Apache-2.0/BSD-3) and the allenai/mmc4 shard sample (ODC-By 1.0). Counts are also in `fixtures.json`.\n\n"
        "Pages are parsed with `html.parser`: the header logo (identical on every page), the page title, then "
        "paragraphs/headings/list items/notes/captions of `div.contents` and its `<img>` in document order. "
        "Skipped: code fragments, tooltips, tables, TOC, scripts, iframes, SVG `<object>` figures, Prev/Next "
        "navigation, doxygen's placeholder caption \"image\", and the footer. Consecutive text blocks are merged "
        f"into paragraphs of up to ~{MAX_PARAGRAPH} characters (headings start a new one). `<img>` whose file is "
        "not in the folder stays URL-only (src kept); see `unresolved_images` in fixtures.json. Sample ids are "
        "the page path without `.html`; tar keys are `urllib.parse.quote(sample_id, safe=\"\")`.\n\n"
        "Unique images count distinct sha256 of bytes (distinct URL where there are no bytes).\n\n" + head +
        "|---|---|---|---|---|---|---|---|\n" + rows, encoding="utf-8")
    (DEMO / "README.md").write_text(
        "# mmcurate demo data\n\n"
        f"`wds/shard-00000{{0,1,2,3}}.tar`: {stats['demo_wds']['documents']} interleaved documents in MINT-1T / NeMo "
        "Curator WebDataset layout, made from real OpenCV 4.6 tutorial pages and their images as shipped in "
        "Debian's `opencv-doc` package (licence Apache-2.0 / BSD-3-Clause, (c) OpenCV contributors). Generated "
        "by `tests/data/make_fixtures.py`.\n\nShard 3 holds showcase documents that make each rule visible: "
        "motion-blurred photos and a soft Moon (scikit-image and OpenCV sample images), a QR-code poster "
        "(generated with segno), a four-photo gallery with three words, a text-only note and a mirror of a "
        "tutorial page.\n\nShard 2 deliberately contains two bad members so the demo "
        "shows quarantine: " + "; ".join(f"`{b['member']}` ({b['kind'].replace('_', ' ')})"
                                         for b in stats["demo_wds"]["bad_members"]) + ".\n", encoding="utf-8")


def main():
    """Parse the pages, write every fixture, and record/print their counts."""
    docs = [parse_page(p) for p in sorted(PAGES_DIR.glob("d*/*/tutorial_*.html"))]
    tests, demo, small = select(docs)
    half, third = N_TEST_PAGES // 2, N_DEMO_PAGES // 3
    obelics = write_obelics(OUT / "obelics", tests[:10], tests[:5])
    mmc4 = write_mmc4(OUT / "mmc4", small)
    stats = {
        "wds_mint": write_wds(OUT / "wds_mint", [tests[:half], tests[half:]]),
        "mint_pdf": write_mint_pdf(OUT / "mint_pdf" / "shard-000000.tar", small),
        "obelics": obelics["docs"], "obelics_with_bytes": obelics["with_bytes"],
        "mmc4": mmc4["docs"], "mmc4_with_images": mmc4["with_images"],
        "nemo_parquet": write_nemo(OUT / "nemo_parquet" / "items.parquet", tests[:8]),
        "demo_wds": write_wds(DEMO / "wds", [demo[:third], demo[third:2 * third], demo[2 * third:],
                                             showcase_docs(demo[0])], demo_tamper(
            (next(d for d in demo[2 * third:] if first_jpeg(d) is not None), demo[-1]))),
    }
    stats["demo_wds"]["showcase_documents"] = sum(d.startswith("showcase/") for d in stats["demo_wds"]["sample_ids"])
    stats["unresolved_images"] = [{"sample_id": d["sample_id"], "position": i, "src": d["images"][i]}
                                  for d in docs for i in image_positions(d) if d["files"][i] is None]
    (OUT / "fixtures.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    write_readmes(stats)
    for name in FIXTURES:
        print(f"{name:20s}", {k: v for k, v in stats[name].items() if isinstance(v, int)})


if __name__ == "__main__":
    main()
