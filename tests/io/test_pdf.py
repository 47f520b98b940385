"""The `pdf` reader through the real ingest, on the real PDFs of shared/data/pdf (good, scanned, broken)."""
import pytest
from pyspark.sql import functions as F

from mmcurate.io.documents import ReaderOptions
from mmcurate import steps
from mmcurate.io.ingest import ingest
from mmcurate.lakehouse import Lakehouse


@pytest.fixture(scope="module")
def pdf_ingest(spark, shared_data, tmp_path_factory, item_files):
    """The whole folder in one `steps.ingest`: per-document item lists plus the summary and quarantine rows. Every
    pdf ingest has the same columns (`PDF_FIELDS`), so the items its tasks staged are the table's files."""
    lake = Lakehouse.open(spark, str(tmp_path_factory.mktemp("pdf") / "lake"), backend="embedded")
    summary = steps.ingest(lake, str(shared_data / "pdf"), "pdf")
    rows = lake.read("items").select("sample_id", "position", "modality", "text_content", "image_id", "page",
                                     "n_pages", "title", "materialize_error").collect()
    docs = {}
    for row in sorted(rows, key=lambda r: (r.sample_id, r.position)):
        docs.setdefault(row.sample_id, []).append(row)
    quarantine = {r.sample_id: (r.reason, r.detail) for r in lake.read("quarantine").collect()}
    return {"summary": summary, "docs": docs, "quarantine": quarantine, "item_files": item_files(lake),
            "images": lake.read("images").select("image_id", "content_type", "width", "height").collect()}


def content(docs, sample_id, modality=None):
    return [r for r in docs[sample_id] if r.position >= 0 and (modality is None or r.modality == modality)]


def test_good_and_bad_files_in_one_ingest(pdf_ingest):
    summary, quarantine = pdf_ingest["summary"], pdf_ingest["quarantine"]
    assert summary["files"] == 10 and pdf_ingest["item_files"] == {"items"}
    assert summary["documents"] + summary["quarantined"] == 10  # one document or one quarantine row per file
    assert set(pdf_ingest["docs"]) == {"acmart-sample-sigconf", "aastex631-sample", "ghsystem-manual", "R-data",
                                       "c03-29", "sandwich", "issue-297"}
    assert quarantine["graph-encrypted"][0] == "pdf_encrypted"
    assert quarantine["invalid"] == ("unreadable_pdf", "Failed to load document (PDFium: Data format error).")
    assert quarantine["newline-buffer-test"][0] == "unreadable_pdf"  # 0 pages: PDFium refuses such files
    assert summary["quarantine_reasons"] == {"pdf_encrypted": 1, "unreadable_pdf": 2}


def test_reading_order_and_pages(pdf_ingest):
    docs = pdf_ingest["docs"]
    for sample_id in docs:
        pages = [r.page for r in content(docs, sample_id)]
        assert pages == sorted(pages) and None not in pages, sample_id
        assert [r.position for r in content(docs, sample_id)] == list(range(len(pages)))
    acm = content(docs, "acmart-sample-sigconf")
    meta = docs["acmart-sample-sigconf"][0]
    assert (meta.position, meta.n_pages, meta.title) == (-1, 6, "The Name of the Title Is Hope")
    photos = [i for i, r in enumerate(acm) if r.modality == "image"]
    assert [acm[i].page for i in photos] == [1, 4]
    for i in photos:  # each photo sits between texts, right before its caption
        assert acm[i - 1].modality == "text" and acm[i + 1].modality == "text"
    assert acm[photos[0] + 1].text_content.startswith("Figure 1: Seattle Mariners at Spring Training")
    assert acm[photos[1] + 1].text_content.startswith("Figure 2: 1907 Franklin Model D roadster")
    assert any("Brian Ripley is the author of the support for connections." in r.text_content
               for r in content(docs, "R-data", "text") if r.page == 6)


def test_images_and_text_layers(pdf_ingest):
    docs = pdf_ingest["docs"]
    assert len(content(docs, "aastex631-sample", "image")) == 6
    pictograms = content(docs, "ghsystem-manual", "image")
    assert len(pictograms) == 43  # every placement; reused pictograms share an image_id
    assert len({r.image_id for r in pictograms}) < 43
    assert content(docs, "R-data", "image") == [] and len(content(docs, "R-data", "text")) > 100
    scan = content(docs, "c03-29")
    assert [r.modality for r in scan] == ["image"]  # a scan without a text layer: its image only
    sandwich = content(docs, "sandwich")  # the invisible OCR layer is PDFium text: scan image + its text
    assert sandwich[0].modality == "image"
    assert any("LinnSequencer" in r.text_content for r in sandwich if r.modality == "text")
    assert [r.text_content for r in content(docs, "issue-297")] == ["test example"]  # broken xref, repaired
    assert all(r.materialize_error is None for rows in docs.values() for r in rows)
    images = pdf_ingest["images"]
    assert {r.content_type for r in images} == {"image/jpeg", "image/png"}
    assert all(r.width > 0 and r.height > 0 for r in images)


def test_size_limits(spark, shared_data):
    files = [str(shared_data / "pdf" / name) for name in ("R-data.pdf", "acmart-sample-sigconf.pdf", "c03-29.pdf")]
    options = ReaderOptions(pdf_max_pages=2, pdf_max_bytes=1_000_000)
    with ingest(spark, files, "pdf", options) as result:
        reasons = {r.sample_id: (r.reason, r.detail) for r in result.quarantine.collect()}
        kept = [r.sample_id for r in result.items.where(F.col("position") == -1).collect()]
    assert kept == ["c03-29"]
    assert reasons == {"R-data": ("pdf_too_large", "41 pages > pdf_max_pages=2"),
                       "acmart-sample-sigconf": ("pdf_too_large", "1039467 bytes > pdf_max_bytes=1000000")}
