"""The bad-input corpus (tests/data/bad, built by make_bad.py) through every reader.

Each format's folder is ingested once (module scope; a file marked `isolate` in cases.json, whose
input currently kills the whole Spark job, is ingested on its own so the rest still runs). Then:

* one test per case: the expected quarantine reason at the expected locator, or for valid but
  unusual input a clean ingest with the expected image metadata / item counts;
* per format: every document-level input in inventory.json is a document (metadata row) or a
  document-level quarantine row (or covered by the file-level row a truncation leaves), every
  content item listed is an item or an item-level quarantine row, image items listed = image items
  ingested + image-level quarantine rows, and no quarantine row is unexplained;
* the totals: cases tried, crashes, rows lost.

Cases whose current behaviour is wrong carry `bug` in cases.json: their test expects the correct
behaviour and is a strict xfail (it turns into a failure once src/ is fixed: then drop the `bug`).
Problems the invariants find in inputs of such cases are reported as known, any other fails.
"""
from __future__ import annotations

import json
import re
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from mmcurate.io.documents import ReaderOptions
from mmcurate.io.ingest import ingest

pytestmark = pytest.mark.reliability

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
CASES = json.loads((BAD / "cases.json").read_text())
INVENTORY = json.loads((BAD / "inventory.json").read_text())
BY_NAME = {c["case"]: c for c in CASES}
FOLDERS = {"webdataset": "wds", "documents": "documents", "mmc4": "mmc4", "nemo_parquet": "nemo_parquet",
           "warc": "warc", "html": "html", "pdf": "pdf"}
ISOLATED = sorted({c["file"] for c in CASES if c.get("isolate")})
CRASH_REASONS = {"reader_error"}  # a reader raised: the rest of its file went to one catch-all row
IMAGE_ITEM_REASONS = {"missing_image_member", "invalid_image_bytes", "unmatched_image", "truncated_member",
                      "missing_tiff_frame", "materialize_failed", "missing_image_bytes", "malformed_image_info",
                      "image_without_content"}


def is_image_reason(reason: str) -> bool:
    return reason.startswith("image_") or reason in IMAGE_ITEM_REASONS


@dataclass
class Run:
    """What one ingest produced, collected to the driver (small: no image bytes, no refused text)."""

    files: list[str]
    error: Optional[str] = None
    quarantine: list[dict] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)
    images: dict = field(default_factory=dict)

    def rows_in(self, file: str) -> list[dict]:
        return [r for r in self.quarantine if r["file"] == file]

    def meta(self, sample_id: str) -> list[dict]:
        return [r for r in self.items if r["sample_id"] == sample_id and r["position"] == -1]

    def content(self, sample_id: str, modality: Optional[str] = None) -> list[dict]:
        return [r for r in self.items if r["sample_id"] == sample_id and r["position"] >= 0
                and (modality is None or r["modality"] == modality)]


def relative(source: str) -> str:
    path = source[len("file:"):] if source.startswith("file:") else source
    try:
        return Path(path).resolve().relative_to(BAD).as_posix()
    except ValueError:
        return source


def run_ingest(spark, files: list[str], fmt: str, options: Optional[ReaderOptions] = None) -> Run:
    run = Run(files=[relative(f) for f in files])
    try:
        result = ingest(spark, files, fmt, options)
        try:
            run.quarantine = [{**r.asDict(), "file": relative(r.source)} for r in
                              result.quarantine.select("source", "locator", "reason", "detail", "sample_id").collect()]
            run.items = [r.asDict() for r in result.items.select(
                "sample_id", "position", "modality", "content_type", "text_content", "image_id", "image_url",
                "source_ref", "materialize_error").collect()]
            run.images = {r.image_id: r.asDict() for r in
                          result.images.select("image_id", "content_type", "width", "height", "n_bytes").collect()}
        finally:
            result.unpersist()
    except Exception as e:  # an escaped exception is the outcome under test, not an error of the test
        run.error = root_cause("".join(traceback.format_exception_only(type(e), e)))
    return run


def root_cause(text: str) -> str:
    """The Python worker's own exception line out of a Spark error (which may carry a JVM stack trace)."""
    lines = [ln.strip() for ln in text.splitlines()]
    python = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt): ", ln)
              and not ln.startswith(("org.", "java.", "py4j.", "pyspark."))]
    return (python[-1] if python else lines[0] if lines else "?")[:500]


class Runs:
    """Lazily ingests each format's folder (minus isolated files) once, and each isolated file alone."""

    def __init__(self, spark):
        self.spark, self.cache = spark, {}

    def folder(self, fmt: str) -> Run:
        if fmt not in self.cache:
            files = sorted(str(p) for p in (BAD / FOLDERS[fmt]).iterdir()
                           if p.is_file() and relative(str(p)) not in ISOLATED)
            self.cache[fmt] = run_ingest(self.spark, files, fmt)
        return self.cache[fmt]

    def isolated(self, file: str, fmt: str) -> Run:
        if file not in self.cache:
            self.cache[file] = run_ingest(self.spark, [str(BAD / file)], fmt)
        return self.cache[file]

    def for_file(self, file: str, fmt: str) -> Run:
        return self.isolated(file, fmt) if file in ISOLATED else self.folder(fmt)


@pytest.fixture(scope="module")
def runs(spark):
    return Runs(spark)


# ---------------------------------------------------------------------------------------------- per case

def case_failures(case: dict, runs: Runs) -> list[str]:
    """Why `case` does not behave as cases.json says (empty when it does)."""
    run = runs.for_file(case["file"], case["format"])
    if run.error:
        return [f"ingest of {run.files} raised: {run.error}"]
    failures = []
    rows = run.rows_in(case["file"])
    shown = "\n  ".join(f"{r['reason']} @ {r['locator']!r}: {(r['detail'] or '')[:160]}" for r in rows) or "(none)"
    crashed = [r for r in rows if r["reason"] in CRASH_REASONS]
    if crashed:
        failures.append(f"reader crashed in {case['file']}: {crashed[0]['detail'][:300]}")
    locator, expect = case["locator_contains"], case["expect"]
    if expect == "ok":
        doc = [r for r in rows if r["locator"] == locator or r["locator"].startswith(locator + "#")
               or r["locator"] in ("", "schema") or r["locator"].startswith("after:")]  # or the whole file
        if doc:
            failures.append(f"expected a clean ingest of {locator!r}, quarantine rows in the file:\n  {shown}")
    elif not any(locator in r["locator"] and r["reason"] == expect for r in rows):
        failures.append(f"expected {expect!r} at a locator containing {locator!r}; rows in the file:\n  {shown}")

    check = case.get("check", {})
    sample_id = check.get("sample_id")
    if sample_id is not None and (expect == "ok" or check.get("document_kept")):
        if len(run.meta(sample_id)) != 1:
            failures.append(f"sample {sample_id!r}: {len(run.meta(sample_id))} metadata rows, expected 1")
    for kept in check.get("kept_sample_ids", []):
        if len(run.meta(kept)) != 1:
            failures.append(f"sample {kept!r} should survive the bad input next to it, {len(run.meta(kept))} documents")
    if sample_id is None:
        return failures
    texts, images = run.content(sample_id, "text"), run.content(sample_id, "image")
    if "kept_text" in check and check["kept_text"] not in [t["text_content"] for t in texts]:
        failures.append(f"the copy of {sample_id!r} kept holds {[t['text_content'] for t in texts]}, "
                        f"expected {check['kept_text']!r}")
    for key, got in (("text_items", len(texts)), ("image_items", len(images)),
                     ("unique_images", len({i["image_id"] for i in images}))):
        if key in check and got != check[key]:
            failures.append(f"{key}: {got}, expected {check[key]}")
    if "materialize_error" in check:
        errors = [i["materialize_error"] for i in images]
        if not images or not all(i["image_id"] is None and (e or "").startswith(check["materialize_error"] + ": ")
                                 for i, e in zip(images, errors)):
            failures.append(f"image items of {sample_id!r} should have no bytes and a materialize_error "
                            f"{check['materialize_error']!r}: got {errors}")
    if "positions" in check:
        got = [r["modality"] for r in sorted(texts + images, key=lambda r: r["position"])]
        if got != check["positions"]:
            failures.append(f"modalities in position order: {got}, expected {check['positions']}")
    wanted = {k: check[k] for k in ("width", "height", "content_type") if k in check}
    if wanted:
        if not images:
            failures.append(f"sample {sample_id!r} has no image item")
        for item in images:
            image = run.images.get(item["image_id"])
            if image is None:
                failures.append(f"image item {item['image_id']} of {sample_id!r} has no row in images")
                continue
            got = {k: image[k] for k in wanted}
            if got != wanted or ("content_type" in wanted and item["content_type"] != wanted["content_type"]):
                failures.append(f"image of {sample_id!r}: {got} (item content_type {item['content_type']!r}), "
                                f"expected {wanted}")
                break
    return failures


def case_param(case: dict):
    marks = [pytest.mark.xfail(strict=True, reason=f"known bug: {case['bug']}")] if case.get("bug") else []
    return pytest.param(case, id=case["case"], marks=marks)


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_case(case, runs):
    failures = case_failures(case, runs)
    assert not failures, f"{case['case']} ({case['input']}):\n" + "\n".join(failures)


def test_verify_images_quarantines_what_the_header_probe_keeps(spark):
    """With verify_images every image is decoded at ingest: the undecodable ones kept by default go to quarantine
    with the reason cases.json names, their documents stay."""
    verified = [c for c in CASES if c.get("verify_images")]
    files = sorted({c["file"] for c in verified})
    assert len(verified) >= 8
    by_format = defaultdict(list)
    for file in files:
        by_format[next(c["format"] for c in verified if c["file"] == file)].append(str(BAD / file))
    rows = []
    for fmt, paths in by_format.items():
        run = run_ingest(spark, paths, fmt, ReaderOptions(verify_images=True))
        assert run.error is None, run.error
        rows += [(r["file"], r["locator"], r["reason"]) for r in run.quarantine]
    for case in verified:
        assert any(f == case["file"] and case["locator_contains"] in loc and reason == case["verify_images"]
                   for f, loc, reason in rows), (case["case"], case["verify_images"])


# ---------------------------------------------------------------------------------------------- invariants

@dataclass
class Accounting:
    """Where every input of one format ended up, and what could not be accounted for."""

    inputs: int = 0
    documents: int = 0
    document_rows: int = 0
    covered: int = 0
    images_listed: int = 0
    images_ingested: int = 0
    images_quarantined: int = 0
    crashes: list[tuple[str, str]] = field(default_factory=list)  # (case or file, what)
    lost: list[tuple[str, str, int]] = field(default_factory=list)  # (case, what, how many rows)
    other: list[tuple[str, str]] = field(default_factory=list)  # unexplained rows, phantom documents


def account(fmt: str, runs: Runs) -> Accounting:
    acc = Accounting()
    inputs = [i for i in INVENTORY if i["format"] == fmt]
    acc.inputs = len(inputs)
    by_run: dict[int, tuple[Run, list[dict]]] = {}
    for entry in inputs:
        run = runs.for_file(entry["file"], fmt)
        by_run.setdefault(id(run), (run, []))[1].append(entry)
    for run, entries in by_run.values():
        if run.error:
            cases = sorted({e["case"] for e in entries})
            acc.crashes.append((",".join(cases), f"ingest raised: {run.error}"))
            acc.lost += [(e["case"], f"{e['file']} {e['locator']}: job died", 1) for e in entries]
            continue
        account_run(run, entries, acc)
    return acc


def account_run(run: Run, entries: list[dict], acc: Accounting) -> None:
    keys = {(e["file"], e["locator"]) for e in entries}
    doc_rows, item_rows, file_rows = defaultdict(list), defaultdict(list), defaultdict(list)
    for row in run.quarantine:
        base, hashed, _ = row["locator"].partition("#")
        if (row["file"], base) in keys:
            (item_rows if hashed else doc_rows)[(row["file"], base)].append(row)
        else:
            file_rows[row["file"]].append(row)
    meta_left = Counter(r["sample_id"] for r in run.items if r["position"] == -1)
    content = defaultdict(Counter)
    for r in run.items:
        if r["position"] >= 0:
            content[r["sample_id"]][r["modality"]] += 1
    acc.images_ingested += sum(c["image"] for c in content.values())
    case_of_file = defaultdict(set)
    for case in CASES:
        case_of_file[case["file"]].add(case["case"])

    groups = defaultdict(list)
    for e in entries:
        groups[(e["file"], e["locator"])].append(e)
    for key, group in groups.items():
        rows = doc_rows.get(key, [])
        if len(rows) > len(group):
            acc.other.append((group[0]["case"], f"{key}: {len(rows)} document-level rows for {len(group)} input(s)"))
        refused, rest = group[: len(rows)], group[len(rows):]
        acc.document_rows += len(refused)
        for e, row in zip(refused, rows):
            if row["reason"] in CRASH_REASONS:
                acc.crashes.append((e["case"], f"{key}: {row['detail'][:200]}"))
            if row["reason"] == "empty_document":  # its items were all refused one by one
                check_items(e, Counter(), item_rows.get(key, []), acc)
        for e in rest:
            file_reasons = {r["reason"] for r in file_rows.get(e["file"], [])}
            if e["sample_id"] is not None and meta_left[e["sample_id"]] > 0:
                meta_left[e["sample_id"]] -= 1
                acc.documents += 1
                check_items(e, content[e["sample_id"]], item_rows.get(key, []), acc)
            elif e.get("covered_by") in file_reasons:
                acc.covered += 1
            elif e.get("covered_by") and file_reasons & CRASH_REASONS:
                acc.covered += 1  # beyond a truncation: gone either way, the crash row (counted) stands for it
            else:
                acc.lost.append((e["case"], f"{e['file']} {e['locator']}: neither a document nor a quarantine row", 1))
    for sample_id, left in meta_left.items():
        if left > 0:
            acc.other.append(("?", f"document {sample_id!r} matches no input"))
    for file, rows in file_rows.items():
        for row in rows:
            explained = any(c["file"] == file and c["locator_contains"] in row["locator"] and c["expect"] == row["reason"]
                            for c in CASES)
            covering = any(e.get("covered_by") == row["reason"] for e in entries if e["file"] == file)
            owner = ",".join(sorted(case_of_file.get(file, {file})))
            if row["reason"] in CRASH_REASONS:
                acc.crashes.append((owner, f"{file} {row['locator']}: {row['detail'][:200]}"))
            elif not (explained or covering):
                acc.other.append((owner, f"unexplained row {row['reason']} @ {file} {row['locator']!r}"))


def check_items(entry: dict, got: Counter, rows: list[dict], acc: Accounting) -> None:
    """Items listed = items ingested + item-level quarantine rows, for all items and for images alone."""
    image_rows = sum(is_image_reason(r["reason"]) for r in rows)
    acc.images_listed += entry["n_images"]
    acc.images_quarantined += image_rows
    if entry["n_items"] != sum(got.values()) + len(rows):
        acc.lost.append((entry["case"], f"{entry['file']} {entry['locator']}: {entry['n_items']} items listed, "
                         f"{sum(got.values())} ingested + {len(rows)} quarantined",
                         abs(entry["n_items"] - sum(got.values()) - len(rows))))
    elif entry["n_images"] != got["image"] + image_rows:
        acc.lost.append((entry["case"], f"{entry['file']} {entry['locator']}: {entry['n_images']} images listed, "
                         f"{got['image']} ingested + {image_rows} quarantined",
                         abs(entry["n_images"] - got["image"] - image_rows)))


def known(owner: str) -> bool:
    """A problem belongs to known-bug cases only (owner: one case name or several, comma-separated)."""
    names = owner.split(",")
    return all(BY_NAME.get(n, {}).get("bug") for n in names)


@pytest.mark.parametrize("fmt", list(FOLDERS))
def test_every_input_is_accounted_for(fmt, runs):
    acc = account(fmt, runs)
    assert acc.inputs > 0
    print(f"\n{fmt}: {acc.inputs} inputs -> {acc.documents} documents + {acc.document_rows} document-level rows "
          f"+ {acc.covered} covered by a file-level row; images listed {acc.images_listed} = ingested "
          f"{acc.images_ingested} + quarantined {acc.images_quarantined}")
    problems = [("crash", c, w) for c, w in acc.crashes] + [("lost", c, w) for c, w, _ in acc.lost] + \
               [("unexplained", c, w) for c, w in acc.other]
    grouped = defaultdict(list)
    for kind, owner, what in problems:
        grouped[(kind, owner)].append(what)
    for (kind, owner), whats in grouped.items():
        more = f" (+{len(whats) - 1} more)" if len(whats) > 1 else ""
        print(f"  {'known bug' if known(owner) else 'PROBLEM'} [{kind}] {owner}: {whats[0]}{more}")
    unknown = [p for p in problems if not known(p[1])]
    assert not unknown, "\n".join(f"[{k}] {o}: {w}" for k, o, w in unknown)
    if not problems:  # the equations hold exactly
        assert acc.inputs == acc.documents + acc.document_rows + acc.covered
        assert acc.images_listed == acc.images_ingested + acc.images_quarantined


def test_totals(runs):
    outcomes = {c["case"]: case_failures(c, runs) for c in CASES}
    accounts = {fmt: account(fmt, runs) for fmt in FOLDERS}
    crashes = [c for a in accounts.values() for c in a.crashes]
    lost = [item for a in accounts.values() for item in a.lost]
    rows_lost = sum(n for _, _, n in lost)
    as_expected = [n for n, f in outcomes.items() if not f]
    bugs = [c["case"] for c in CASES if c.get("bug")]
    print(f"\ncases tried: {len(CASES)} ({Counter(c['format'] for c in CASES)})")
    print(f"behaving as specified: {len(as_expected)}; known bugs: {len(bugs)} ({', '.join(bugs)})")
    print(f"crashes: {len(crashes)} (outside known bugs: {sum(not known(o) for o, _ in crashes)})")
    print(f"rows lost: {rows_lost} (outside known bugs: {sum(n for o, _, n in lost if not known(o))})")
    assert len(CASES) >= 25
    assert sorted(set(outcomes) - set(as_expected)) == sorted(bugs), "only the known-bug cases may misbehave"
    assert [o for o, _ in crashes if not known(o)] == []
    assert sum(n for o, _, n in lost if not known(o)) == 0
