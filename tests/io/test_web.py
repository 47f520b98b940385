"""WARC/ARC and saved-page ingest: real crawl files (good, broken, truncated), real pages against
trafilatura's evaluation data, image placement, URL resolution and declared sizes, and the `web_images` recipe."""
import json

import pytest
from pyspark.testing import assertDataFrameEqual

from mmcurate import steps
from mmcurate.io.ingest import ingest
from mmcurate.lakehouse import Lakehouse
from mmcurate.select import Recipe, SignalTable

WARC_PAGES = {  # file -> target URLs of its HTML 200 responses
    "example.warc": ["http://example.com/"],
    "example.warc.gz": ["http://example.com/"],
    "example-iana.org-chunked.warc": ["http://www.iana.org/"],
    "example-wget-bad-target-uri.warc.gz": ["http://example.com/"],
    "example.arc": ["http://example.com/"],
    "example.arc.gz": ["http://example.com/"],
}
BROKEN = {  # file -> quarantine reasons, in file order
    "bad.arc": ["malformed_warc_record"] * 3,
    "example-trunc.warc": ["malformed_warc_record", "truncated_warc"],  # gzip body cut, then the iterator dies
    "post-test.warc.gz": ["no_documents"],  # JSON responses only
}
EVAL_PAGES = ("journal.3960.org.firefox.html", "sauvonsluniversite.com.spip.html",
              "xinhuanet.com.c_1125597921.html", "tofugu.com.dezuka-suisan.html")
FURNITURE_PAGES = ("fairkom.eu.about.html",)  # a logo, icons and small portraits

SYNTHETIC = """<html lang="en"><head><title>Synthetic post</title>
<link rel="canonical" href="https://example.org/blog/post.html"><base href="https://cdn.example.org/assets/"></head>
<body><nav><a href="/">Home</a> <a href="/about">About us and our navigation menu</a></nav>
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies.</div>
<article><h1>Synthetic post</h1>
<p>The first paragraph talks at length about the river valley, its old mills and the people who lived there.</p>
<img src="img/photo.jpg" alt="the valley" width="640" height="480">
<p>The second paragraph continues with the history of the mills, from the first water wheel to the last miller.</p>
<picture><source srcset="wide-480.jpg 480w, wide-1200.jpg 1200w" width="1200" height="500">
<img src="wide-320.jpg" alt="wide" width="320" height="240"></picture>
<p>The third paragraph describes the walk along the river today, past the ruins and the new footbridge.</p>
<picture><source srcset="map-800.jpg 800w"><img src="map-400.jpg" alt="map" width="400" height="400"></picture>
<p>The fourth paragraph follows the old mill race on the map, from the weir down to the village square.</p>
<img src="/static/site-logo.png" srcset="/static/site-logo@2x.png 2x" width="120" height="40" alt="logo">
<p>The last paragraph ends the story with a view from the hill above the valley at sunset in autumn.</p>
</article><footer>Copyright 2024 Example. Imprint. Privacy policy.</footer></body></html>"""


def _file(row) -> str:
    return json.loads(row.source_ref)["path"].rsplit("/", 1)[-1]


def _page(shared_data, name: str) -> str:
    """A saved page of shared/data/web_pages: the evaluation folder, else the cache folder."""
    folder = shared_data / "web_pages"
    return str(next(p for p in (folder / "trafilatura_eval" / name, folder / "trafilatura_cache" / name) if p.exists()))


def _documents(result):
    """{sample_id: [(modality, text or url), ...]} plus the metadata rows, from ingested items."""
    rows = result.items.orderBy("sample_id", "position").collect()
    content, meta = {}, {}
    for r in rows:
        if r.position == -1:
            meta[r.sample_id] = r
        else:
            content.setdefault(r.sample_id, []).append(r)
    return content, meta


def test_warc_files_give_pages_and_quarantine_broken_records(spark, shared_data):
    folder = shared_data / "warc" / "warcio"
    paths = [str(folder / name) for name in [*WARC_PAGES, *BROKEN]]
    with ingest(spark, paths, "warc") as result:
        content, meta = _documents(result)
        quarantine = result.quarantine.orderBy("source", "locator").collect()
    by_file = {}
    for row in meta.values():
        by_file.setdefault(_file(row), []).append(row.url)
    # example.warc(.gz) hold the same capture: one sample id, the second copy is a duplicate
    assert len(meta) == 3 + 1  # example.com (WARC), iana.org, example.com via wget, example.com (ARC)
    dupes = [q for q in quarantine if q.reason == "duplicate_sample_id"]
    assert len(meta) + len(dupes) == sum(len(v) for v in WARC_PAGES.values())
    for name, urls in by_file.items():
        assert urls == WARC_PAGES[name]
    for row in meta.values():
        assert row.crawl_date and row.title
        assert any("illustrative examples" in (r.text_content or "") or "Domain Names" in (r.text_content or "")
                   for r in content[row.sample_id])
    warc = next(m for m in meta.values() if _file(m).endswith((".warc", ".warc.gz")) and "example.com" in m.url)
    assert warc.payload_digest.startswith("sha1:")
    reasons = {}
    for q in quarantine:
        if q.reason != "duplicate_sample_id":
            reasons.setdefault(q.source.rsplit("/", 1)[-1], []).append(q.reason)
    assert {k: sorted(v) for k, v in reasons.items()} == {k: sorted(v) for k, v in BROKEN.items()}
    trunc = [q for q in quarantine if q.reason == "truncated_warc"]
    assert trunc[0].locator.startswith("offset:")


def test_saved_pages_keep_main_content_and_drop_boilerplate(spark, shared_data):
    folder = shared_data / "web_pages" / "trafilatura_eval"
    expected = {e["file"]: e for e in json.loads((folder / "evaldata.json").read_text()).values()}
    paths = [_page(shared_data, name) for name in EVAL_PAGES]
    with ingest(spark, paths, "html") as result:
        content, meta = _documents(result)
        assert result.quarantine.count() == 0
    assert len(meta) == len(EVAL_PAGES)
    for sample_id, row in meta.items():
        page = expected[_file(row)]
        text = " ".join(" ".join((r.text_content or "").split()) for r in content[sample_id])
        for must in page["with"]:
            assert must in text, (_file(row), must)
        for must_not in page["without"]:
            assert must_not not in text, (_file(row), must_not)
        images = [r for r in content[sample_id] if r.modality == "image"]
        # absolute: http(s), or a file path for a saved page without canonical URL
        assert images and all(r.image_url.startswith(("http", "/")) and r.image_id is None for r in images)
    firefox = next(s for s, r in meta.items() if _file(r) == "journal.3960.org.firefox.html")
    order = [(r.modality, r.image_url or r.text_content) for r in content[firefox]]
    blocked = next(i for i, (m, v) in enumerate(order) if m == "image" and v.endswith("/firefox-blocked-720x720.png"))
    assert order[0][0] == "image" and order[0][1].startswith("https://journal.3960.org/posts/2019-12-22-firefox")
    assert order[1][1].startswith("Werbung nervt.")
    assert order[blocked - 1][1].startswith("Von seinem Vorgänger")
    assert order[blocked + 1][1].startswith("Nebenbei kann der Firefox Preview")


@pytest.fixture
def synthetic_page(tmp_path):
    path = tmp_path / "post.html"
    path.write_text(SYNTHETIC)
    return str(path)


def test_base_href_srcset_and_dom_order(spark, synthetic_page):
    with ingest(spark, [synthetic_page], "html") as result:
        content, meta = _documents(result)
        (sample_id, row), = meta.items()
        assert (row.url, row.title, row.language) == ("https://example.org/blog/post.html", "Synthetic post", "en")
        order = [(r.modality, r.image_url or r.text_content[:20], r.declared_width, r.declared_height)
                 for r in content[sample_id]]
        text = " ".join(r.text_content or "" for r in content[sample_id])
        assert "cookies" not in text and "navigation menu" not in text and "Privacy policy" not in text
        assert [o for o in order if o[0] == "image"] == [
            ("image", "https://cdn.example.org/assets/img/photo.jpg", 640, 480),
            ("image", "https://cdn.example.org/assets/wide-1200.jpg", 1200, 500),  # the <source>'s size, not the <img>'s
            ("image", "https://cdn.example.org/assets/map-800.jpg", None, None),  # its <source> declares none
            ("image", "https://cdn.example.org/static/site-logo@2x.png", 120, 40)]  # 2x: rendered at the <img>'s size
        assert [o[1][:10] if o[0] == "text" else o[1].rsplit("/", 1)[-1] for o in order
                if not o[1].startswith("Synthetic")] == [
            "The first ", "photo.jpg", "The second", "wide-1200.jpg", "The third ", "map-800.jpg", "The fourth",
            "site-logo@2x.png", "The last p"]
        assert dict(result.items.dtypes)["declared_width"] == "bigint"

        selection = Recipe.from_yaml("web_images").apply(result.items).persist()
        kept = [r.image_url for r in selection.curated.where("modality = 'image'").collect()]
        dropped = [(d.rule, d.detail) for d in selection.drops.collect()]
        selection.unpersist()
    assert sorted(kept) == ["https://cdn.example.org/assets/img/photo.jpg",
                            "https://cdn.example.org/assets/map-800.jpg",
                            "https://cdn.example.org/assets/wide-1200.jpg"]
    assert dropped == [("declared_size", "120x40")]


def test_web_images_recipe_on_real_pages_and_warcs(spark, shared_data, tmp_path, item_files):
    """Real saved pages and crawls into one lakehouse, selected with the packaged recipe: known page furniture
    goes, by the rule that names it, and the article photos and every WARC page stay."""
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    pages = [_page(shared_data, name) for name in (*EVAL_PAGES, *FURNITURE_PAGES)]
    steps.ingest(lake, pages, "html")
    assert item_files(lake) == {"items"}
    with ingest(spark, pages, "html") as cached:  # the items the tasks staged typed, committed as they are, are
        assert lake.read("items").schema == cached.items.schema  # what Spark types from the parse
        assertDataFrameEqual(lake.read("items"), cached.items)
    steps.ingest(lake, [str(shared_data / "warc" / "warcio" / name) for name in WARC_PAGES], "warc")
    selection = steps.select(lake, "web_images")
    items = lake.read("items").select("sample_id", "position", "image_url").collect()
    url = {(r.sample_id, r.position): r.image_url for r in items}
    dropped = {}
    for d in selection.drops.collect():
        dropped.setdefault(url[(d.sample_id, d.position)], set()).add((d.rule, d.detail))
    kept = {r.image_url for r in selection.curated.where("modality = 'image'").collect()}
    by_rule = lambda rule: {u for u, why in dropped.items() if any(r == rule for r, _ in why)}

    tofugu = "https://www.tofugu.com/images/about/people/avatar-"
    assert sum(u.startswith(tofugu) for u in by_rule("url_page_furniture")) == 4
    assert dropped["https://www.fairkom.eu/sites/default/files/inline-images/osa-logo_1_0.png"] == {("url_words", "logo")}
    fairkom_icons = {u for u in by_rule("declared_size") if "fairkom.eu" in u and "_icon.png" in u}
    assert len(fairkom_icons) == 3  # 120 x 100: the size rule comes first, their "icon" URL would drop them too
    bullet = "http://www.sauvonsluniversite.fr/local/cache-vignettes/L8xH11/puce-32883.gif"
    assert dropped[bullet] == {("declared_size", "8x11")}
    assert {u for u in kept if "tofugu" in u} == {f"https://files.tofugu.com/articles/travel/2020-02-04-dezuka-suisan/{n}"
                                                  for n in ("kamaboko_1.jpg", "kamaboko_2.jpg", "kamaboko_combo.jpg",
                                                            "frier.jpg", "stickers.jpg")}
    assert "http://www.sauvonsluniversite.fr/local/cache-vignettes/L150xH191/rubon4-69777.jpg" in kept  # 150: kept
    assert any(u.endswith("/firefox-blocked-720x720.png") for u in kept)
    assert not kept & set(dropped)
    warc_samples = {r.sample_id for r in lake.read("items").where("crawl_date IS NOT NULL").collect()}
    assert warc_samples and not {d.sample_id for d in selection.drops.collect()} & warc_samples


def test_declared_and_decoded_sizes_do_not_clash(spark):
    """`declared_width` (the page's) and `image_scores.width` (the file's) are different columns, so the web rules
    and OBELICS' decoded-size rule go in one recipe."""
    items = spark.createDataFrame([("s", 0, "image", "https://x.org/a.jpg", None, 40, 40, "i")],
                                  "sample_id string, position int, modality string, image_url string, alt string, "
                                  "declared_width bigint, declared_height bigint, image_id string")
    scores = SignalTable("image_scores", ("image_id",),
                         spark.createDataFrame([("i", 300, 300)], "image_id string, width int, height int"))
    obelics_size = next(r for r in Recipe.from_yaml("obelics").rules if r.name == "image_size")
    recipe = Recipe("both", "1", (*Recipe.from_yaml("web_images").rules, obelics_size))
    selection = recipe.apply(items, [scores])
    assert [(d.rule, d.detail) for d in selection.drops.collect()] == [("declared_size", "40x40")]
