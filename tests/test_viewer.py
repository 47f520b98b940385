"""The sample viewer: the demo's selected lakehouse rendered to HTML and opened in headless Chromium.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages ended
by NUL on file descriptors 3 and 4), so no websocket client, port or download is needed. A missing
Chromium fails the tests: CI installs it (README's install command).
"""
import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import time

import pytest
from PIL import Image
from pyspark.sql import functions as F

from mmcurate import steps
from mmcurate.cli import main
from mmcurate.lakehouse import Lakehouse
from mmcurate.viewer import View, ViewerError
from mmcurate.viewer.page import Document, Drop, Item, Page, RuleCount, render_page
from mmcurate.viewer.thumbnails import thumbnail

RECIPE = "nemo_default"  # the demo's recipe for curated_items: what `mmcurate view` shows by default


def _above_4(fd: int) -> int:
    """The same pipe end on a descriptor above 4, so bash's `3<&N 4>&M` cannot overwrite one with the other
    (bash, not sh: dash refuses descriptors above 9)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    """Headless Chromium with one page, driven over the DevTools protocol on a pipe."""

    def __init__(self, binary: str, profile: str):
        commands_read, self._commands = map(_above_4, os.pipe())
        self._results, results_write = map(_above_4, os.pipe())
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        self.process = subprocess.Popen(  # bash puts our pipe ends on fds 3 and 4, where Chromium expects them
            ["bash", "-c", f'exec "$@" 3<&{commands_read} 4>&{results_write}', "bash", *args],
            pass_fds=(commands_read, results_write), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(results_write)
        self._buffer, self._id = b"", 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=1400, height=1000, deviceScaleFactor=1,
                  mobile=False)

    def send(self, method: str, session: bool = False, timeout: float = 30, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._results], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(self._results, 1 << 20) if ready else b""
                if not chunk:
                    raise TimeoutError(f"no answer from Chromium to {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:  # events (no id) are skipped
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, path: str) -> None:
        """Load a file and wait until it and every image on it have loaded."""
        self.send("Page.navigate", session=True, url=f"file://{path}")
        deadline = time.monotonic() + 30
        loaded = "document.readyState === 'complete' && [...document.images].every(i => i.complete)"
        while not (self.evaluate(f"location.href === 'file://{path}'") and self.evaluate(loaded)):
            assert time.monotonic() < deadline, f"{path} did not load"
            time.sleep(0.05)

    def screenshot(self, path: str) -> None:
        data = self.send("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=False)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (TimeoutError, OSError, RuntimeError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._commands)
        os.close(self._results)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:  # CI must prove the page renders: no silent skip
        pytest.fail("chromium not found: install it (Debian: apt-get install -y chromium; README's install command)")
    chromium = Chromium(binary, str(tmp_path_factory.mktemp("chromium-profile")))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def lake(spark, demo_run, tmp_path_factory):
    """The session's demo lakehouse (nemo_default into curated_items, dedup_exact into deduplicated_items, both in
    `drops`), copied so this module can add a small `clusters` table without touching what other tests read."""
    out, _ = demo_run
    root = tmp_path_factory.mktemp("viewer") / "lake"
    shutil.copytree(out / "lake", root)  # Delta logs name their files relative to the table
    lake = Lakehouse.open(spark, str(root), backend="embedded")
    samples = lake.read("items").select("sample_id").distinct()
    lake.write(samples.select("sample_id", F.pmod(F.xxhash64("sample_id"), F.lit(3)).cast("int").alias("cluster")),
               "clusters")
    return lake


def ledger_counts(lake, recipe, cluster=None) -> dict:
    drops = lake.read("drops").where(F.col("recipe") == recipe)
    if cluster is not None:
        drops = drops.join(lake.read("clusters").where(F.col("cluster") == cluster), "sample_id", "left_semi")
    return {r["rule"]: [r["items"], r["documents"]] for r in drops.groupBy("rule").agg(
        F.count(F.lit(1)).alias("items"), F.countDistinct("sample_id").alias("documents")).collect()}


PAGE_FACTS = """JSON.stringify({
  counts: Object.fromEntries([...document.querySelectorAll("tr[data-rule]")].map(tr => [tr.dataset.rule,
    [Number(tr.querySelector(".ledger-items").textContent), Number(tr.querySelector(".ledger-documents").textContent),
     Number(tr.querySelector(".shown").textContent)]])),
  keptDocuments: Number(document.querySelector(".kept-documents").textContent),
  droppedDocuments: Number(document.querySelector(".dropped-documents").textContent),
  images: [...document.images].map(i => i.naturalWidth),
  docs: [...document.querySelectorAll(".doc")].map(d => [d.dataset.side, d.dataset.sample, d.dataset.rules,
    d.dataset.cluster, d.hidden]),
  visibleDropped: Number(document.getElementById("visible-dropped").textContent),
})"""


def facts(browser) -> dict:
    return json.loads(browser.evaluate(PAGE_FACTS))


def test_page_renders_with_ledger_counts_and_filters(browser, spark, lake, tmp_path):
    out = steps.view(lake, str(tmp_path / "view.html"), samples=3)
    assert out == str(tmp_path / "view.html") and os.path.getsize(out) < 2_000_000  # thumbnails keep it small
    browser.open(out)
    browser.screenshot(str(tmp_path / "view.png"))
    shot = Image.open(tmp_path / "view.png").convert("RGB")
    assert shot.size == (1400, 1000)
    assert len(shot.getcolors(maxcolors=1 << 20) or range(1 << 20)) > 200  # text and thumbnails, not a blank page

    page = facts(browser)
    assert page["images"] and all(width > 0 for width in page["images"])  # every <img> decoded in the browser
    assert all(width <= 256 for width in page["images"])  # thumbnails, not the originals
    ledger = ledger_counts(lake, RECIPE)
    assert {rule: c[:2] for rule, c in page["counts"].items() if c[0]} == ledger
    assert set(ledger) < set(page["counts"])  # the recipe's rules that dropped nothing are listed with 0
    curated = lake.read("curated_items")
    assert page["keptDocuments"] == curated.select("sample_id").distinct().count()
    drops = lake.read("drops").where(F.col("recipe") == RECIPE)
    assert page["droppedDocuments"] == drops.select("sample_id").distinct().count()

    kept = [d[1] for d in page["docs"] if d[0] == "kept"]
    seeded = curated.select("sample_id").distinct().orderBy(F.xxhash64("sample_id", F.lit(0)), "sample_id").limit(3)
    assert kept == [r["sample_id"] for r in seeded.collect()]  # the seeded sample, in hash order
    dropped = [d for d in page["docs"] if d[0] == "dropped"]
    for rule, (_, documents, shown) in page["counts"].items():
        with_rule = sum(rule in d[2].split() for d in dropped)
        assert shown == with_rule and min(documents, 3) <= shown <= documents
    assert all(d[3] for d in page["docs"])  # the clusters table labels every document

    rule = max(ledger, key=lambda r: ledger[r][1])
    browser.evaluate(f"document.querySelector('nav button[data-rule=\"{rule}\"]').click()")
    filtered = facts(browser)
    visible = [d for d in filtered["docs"] if d[0] == "dropped" and not d[4]]
    assert len(visible) == filtered["visibleDropped"] == page["counts"][rule][2] > 0
    assert all(rule in d[2].split() for d in visible)
    assert all(not d[4] for d in filtered["docs"] if d[0] == "kept")  # the kept side stays for comparison
    assert browser.evaluate(f"document.querySelectorAll('.doc:not([hidden]) .item.dropped[data-rule=\"{rule}\"]')"
                            ".length") >= len(visible)
    why = browser.evaluate(f"document.querySelector('.item.dropped[data-rule=\"{rule}\"] .why').textContent")
    assert why.startswith(f"dropped by {rule} of {RECIPE} (predicate_")  # each dropped item names rule and recipe
    # images the decodable rule dropped (truncated bytes, URL only) show as a labelled box, never a broken <img>
    assert browser.evaluate("document.querySelectorAll('.item.dropped[data-rule=\"decodable\"] .noimage').length") > 0
    browser.evaluate("document.querySelector('nav button[data-rule=\"\"]').click()")
    assert facts(browser)["visibleDropped"] == len(dropped)


def test_cli_restricts_to_a_rule_and_a_cluster(browser, spark, lake, tmp_path, capsys):
    """Another recipe's view: its kept items are found in the table its select wrote (deduplicated_items)."""
    out, rule = str(tmp_path / "cluster.html"), "duplicate_paragraph"
    root = lake.location("items").rsplit("/", 1)[0]
    assert main(["view", "--lakehouse", root, "--out", out, "--recipe", "dedup_exact", "--rule", rule,
                 "--cluster", "1", "--samples", "2"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    browser.open(out)
    page = facts(browser)
    assert all(width > 0 for width in page["images"])
    assert {r: c[:2] for r, c in page["counts"].items() if c[0]} == ledger_counts(lake, "dedup_exact", cluster=1)
    assert browser.evaluate("document.querySelector('#kept h2').textContent").startswith("Kept (deduplicated_items)")
    dropped = [d for d in page["docs"] if d[0] == "dropped"]
    assert 0 < len(dropped) <= 2 and all(rule in d[2].split() and not d[4] for d in dropped)  # preselected
    assert page["docs"] and all(d[3] == "1" for d in page["docs"])

    assert main(["view", "--lakehouse", root, "--out", out, "--rule", "no_such_rule"]) == 2
    assert "'no_such_rule' is not a rule of recipe 'nemo_default'" in capsys.readouterr().err


def test_clear_errors_before_selection_and_without_a_clusters_table(spark, lake, tmp_path, capsys):
    with pytest.raises(ViewerError, match="no table 'kmeans'"):
        steps.view(lake, str(tmp_path / "x.html"), View(cluster="1", cluster_table="kmeans"))
    with pytest.raises(ViewerError, match="no table holds the items recipe 'never_selected' kept"):
        steps.view(lake, str(tmp_path / "x.html"), recipe="never_selected")
    # a recipe's kept items in a table of their own are found by its select record; an unknown recipe has no scores
    lake.write(lake.read("curated_items").limit(1), "kept_by_mine",
               commit_info={"step": "select", "recipe": "mine", "recipe_version": "2", "read": {"items": 0}})
    name, recipe, table, info = steps._viewed_recipe(lake, View(recipe="mine"))
    assert (name, recipe, table, info["recipe_version"]) == ("mine", None, "kept_by_mine", "2")
    fresh = Lakehouse.open(spark, str(tmp_path / "fresh"), backend="embedded")
    fresh.write(lake.read("items").limit(3), "items")
    assert main(["view", "--lakehouse", str(tmp_path / "fresh"), "--out", str(tmp_path / "x.html")]) == 2
    assert "no drops table: nothing was selected yet (run `mmcurate select --recipe NAME` first)" in (
        capsys.readouterr().err)
    assert not (tmp_path / "x.html").exists()


def test_every_text_is_escaped():
    """Documents are untrusted web text: nothing of theirs becomes markup or script."""
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    item = Item(0, "text", evil, len(evil), scores={"<b>": evil}, drop=Drop("r", "predicate_false", evil))
    doc = Document('"><script>x</script>', "dropped", (item,), 1, rules=("r",), cluster=evil, source=evil)
    html = render_page(Page("<recipe>", None, "curated_items", (RuleCount("r", 1, 1),), 0, 0, 1, (doc,)))
    assert "<script>alert" not in html and "<img src=x" not in html and "&lt;b&gt;" in html
    assert html.count("<script>") == 1  # the page's own filter script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_thumbnails_are_small_jpegs_with_transparency_on_white(photo_jpg, truncated_jpg):
    small = Image.open(io.BytesIO(thumbnail(photo_jpg, max_px=64)))
    assert small.format == "JPEG" and max(small.size) == 64
    clear = io.BytesIO()
    Image.new("RGBA", (40, 20), (0, 0, 0, 0)).save(clear, "PNG")
    shown = Image.open(io.BytesIO(thumbnail(clear.getvalue(), max_px=64)))
    assert shown.size == (40, 20) and min(shown.getextrema(), key=lambda band: band[0])[0] > 240  # white, not black
    assert thumbnail(truncated_jpg) is None and thumbnail(None) is None
