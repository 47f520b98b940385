"""The viewer's HTML: one static page from plain Python data (no Spark here), every text escaped.

Documents are untrusted web text, so every value that reaches the page goes through `html.escape`;
images are only the data URIs the executors made. A few lines of plain JavaScript filter the
documents by rule and by cluster; without JavaScript every document shows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any, Optional, Sequence


@dataclass(frozen=True)
class Drop:
    """Why the ledger dropped one item: the recipe, its rule, the reason (predicate_false/null, ...), the detail."""

    rule: str
    reason: str
    detail: Optional[str] = None
    recipe: Optional[str] = None


@dataclass(frozen=True)
class Item:
    """One content item as shown: its text (cut to the page's limit) or its thumbnail, and its scores."""

    position: int
    modality: str
    text: Optional[str] = None
    text_chars: int = 0
    thumbnail: Optional[str] = None  # data URI, None when there are no bytes or they do not decode
    image_url: Optional[str] = None
    image_id: Optional[str] = None
    scores: dict = field(default_factory=dict)
    drop: Optional[Drop] = None
    materialize_error: Optional[str] = None  # why a lazy image's bytes could not be read


@dataclass(frozen=True)
class Document:
    """A sampled document: `side` is "kept" (as the recipe left it) or "dropped" (the input, drops marked)."""

    sample_id: str
    side: str
    items: tuple[Item, ...]
    n_items: int  # content items of the side's document, shown or not
    rules: tuple[str, ...] = ()  # the rules that dropped items of it, in recipe order
    n_dropped: int = 0  # ledger rows of this sample
    whole: bool = False  # every item of the sample is in the ledger
    scores: dict = field(default_factory=dict)  # sample-level signals
    cluster: Optional[str] = None
    source: Optional[str] = None


@dataclass(frozen=True)
class RuleCount:
    """The ledger's counts for one rule: dropped items (rows) and distinct documents with such a row."""

    rule: str
    items: int
    documents: int


@dataclass(frozen=True)
class Page:
    """Everything the page shows; the counts come from Spark aggregations over the ledger, not from the sample."""

    recipe: str
    recipe_version: Optional[str]
    curated_table: str
    counts: tuple[RuleCount, ...]
    kept_documents: int
    kept_items: int
    dropped_documents: int  # distinct documents with a ledger row
    documents: tuple[Document, ...]
    rule: Optional[str] = None
    cluster: Optional[str] = None
    notes: tuple[str, ...] = ()
    title: str = "mmcurate sample viewer"


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1rem;background:#fafafa;color:#222}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.1rem;margin:.3rem 0}
table.counts{border-collapse:collapse;margin:.5rem 0}
table.counts td,table.counts th{border:1px solid #ccc;padding:.15rem .5rem;text-align:right}
table.counts td:first-child,table.counts th:first-child{text-align:left}
nav{margin:.5rem 0}nav button{margin:0 .2rem .2rem 0;padding:.2rem .6rem;border:1px solid #888;background:#fff;
border-radius:3px;cursor:pointer}nav button.on{background:#333;color:#fff}
.columns{display:grid;grid-template-columns:1fr 1fr;gap:1rem;align-items:start}
.doc{background:#fff;border:1px solid #ccc;border-radius:4px;margin:0 0 .8rem;padding:.5rem .7rem;
max-height:45rem;overflow:auto}
.doc.dropped.whole{border-color:#c33}.doc header{font-size:12px;color:#555;margin-bottom:.3rem}
.tag{display:inline-block;background:#eee;border-radius:3px;padding:0 .3rem;margin:0 .2rem .1rem 0;font-size:12px}
.tag.rule{background:#fdd;color:#900}
.item{margin:.3rem 0;padding:.2rem .3rem;border-left:3px solid transparent}
.item.dropped{border-left-color:#c33;background:#fff3f3}
.item p{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
.item img{display:block;max-width:100%;height:auto}
.noimage{display:inline-block;padding:.5rem;background:#eee;color:#666;font-size:12px;overflow-wrap:anywhere}
.scores,.why{font-size:12px;color:#555}.why{color:#900}.more{font-size:12px;color:#777}
"""

_SCRIPT = """
const state = {rule: document.body.dataset.rule || "", cluster: ""};
function applyFilters() {
  for (const doc of document.querySelectorAll(".doc")) {
    const byRule = doc.dataset.side === "kept" || !state.rule || doc.dataset.rules.split(" ").includes(state.rule);
    const byCluster = !state.cluster || doc.dataset.cluster === state.cluster;
    doc.hidden = !(byRule && byCluster);
  }
  for (const button of document.querySelectorAll("nav button[data-rule]")) {
    button.classList.toggle("on", button.dataset.rule === state.rule);
  }
  for (const side of ["kept", "dropped"]) {
    document.getElementById("visible-" + side).textContent =
      document.querySelectorAll('.doc[data-side="' + side + '"]:not([hidden])').length;
  }
}
function filterRule(rule) { state.rule = rule; applyFilters(); }
function filterCluster(cluster) { state.cluster = cluster; applyFilters(); }
for (const button of document.querySelectorAll("nav button[data-rule]")) {
  button.addEventListener("click", () => filterRule(button.dataset.rule));
}
const clusterSelect = document.getElementById("cluster-filter");
if (clusterSelect) clusterSelect.addEventListener("change", () => filterCluster(clusterSelect.value));
applyFilters();
"""


def render_page(page: Page) -> str:
    """The whole HTML document for `page`."""
    kept = [d for d in page.documents if d.side == "kept"]
    dropped = [d for d in page.documents if d.side == "dropped"]
    shown = {c.rule: sum(c.rule in d.rules for d in dropped) for c in page.counts}
    clusters = sorted({d.cluster for d in page.documents if d.cluster is not None}, key=_natural)
    scope = f"recipe {page.recipe}" + (f" version {page.recipe_version}" if page.recipe_version else "")
    if page.cluster is not None:
        scope += f", cluster {page.cluster}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(page.title)}: {_e(page.recipe)}</title><style>{_STYLE}</style></head>",
        f'<body data-rule="{_e(page.rule or "")}">',
        f"<h1>{_e(page.title)}</h1>",
        f'<p>{_e(scope)}; kept documents from <code>{_e(page.curated_table)}</code>, dropped ones from '
        f"<code>drops</code>. Counts are the ledger's, over all of its rows{' in the cluster' if page.cluster else ''}"
        "; the documents are a seeded sample.</p>",
        *[f'<p class="more">{_e(note)}</p>' for note in page.notes],
        _counts_table(page, shown, len(kept), len(dropped)),
        _filters(page, clusters),
        '<div class="columns">',
        _column("kept", f"Kept ({page.curated_table})", kept, page.kept_documents),
        _column("dropped", "Dropped (drops)", dropped, page.dropped_documents),
        "</div>",
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _counts_table(page: Page, shown: dict, kept_shown: int, dropped_shown: int) -> str:
    rows = [f'<tr data-rule="{_e(c.rule)}"><td>{_e(c.rule)}</td><td class="ledger-items">{c.items}</td>'
            f'<td class="ledger-documents">{c.documents}</td><td class="shown">{shown[c.rule]}</td></tr>'
            for c in page.counts]
    total_items = sum(c.items for c in page.counts)
    return (
        '<table class="counts"><thead><tr><th>rule</th><th>items</th><th>documents</th>'
        "<th>documents shown</th></tr></thead><tbody>" + "".join(rows)
        + f'<tr class="total"><td>dropped by any rule</td><td class="ledger-total">{total_items}</td>'
        f'<td class="dropped-documents">{page.dropped_documents}</td><td>{dropped_shown}</td></tr>'
        f'<tr class="kept"><td>kept</td><td class="kept-items">{page.kept_items}</td>'
        f'<td class="kept-documents">{page.kept_documents}</td><td class="shown">{kept_shown}</td></tr>'
        "</tbody></table>"
    )


def _filters(page: Page, clusters: Sequence[str]) -> str:
    buttons = ['<button type="button" data-rule="">all rules</button>']
    buttons += [f'<button type="button" data-rule="{_e(c.rule)}">{_e(c.rule)} ({c.documents})</button>'
                for c in page.counts if c.documents or c.rule == page.rule]
    cluster = ""
    if clusters:
        options = ['<option value="">all clusters</option>'] + [
            f'<option value="{_e(c)}">cluster {_e(c)}</option>' for c in clusters]
        cluster = f' <label>cluster <select id="cluster-filter">{"".join(options)}</select></label>'
    return f"<nav>rule: {''.join(buttons)}{cluster}</nav>"


def _column(side: str, title: str, documents: Sequence[Document], total: int) -> str:
    return (f'<section id="{side}"><h2>{_e(title)}: showing <span id="visible-{side}">{len(documents)}</span>'
            f' of <span class="of">{total}</span> documents</h2>'
            + "".join(_document(d) for d in documents) + "</section>")


def _document(doc: Document) -> str:
    classes = f"doc {doc.side}" + (" whole" if doc.whole else "")
    tags = [f'<span class="tag rule">{_e(rule)}</span>' for rule in doc.rules]
    if doc.side == "dropped":
        tags.insert(0, '<span class="tag">whole document dropped</span>' if doc.whole
                    else f'<span class="tag">{doc.n_dropped} items dropped</span>')
    elif doc.n_dropped:
        tags.insert(0, f'<span class="tag">{doc.n_dropped} items of the input dropped</span>')
    if doc.cluster is not None:
        tags.append(f'<span class="tag">cluster {_e(doc.cluster)}</span>')
    header = (f"<header><b>{_e(doc.sample_id)}</b> {''.join(tags)}"
              + (f"<br>{_e(doc.source)}" if doc.source else "")
              + (f'<div class="scores">{_scores(doc.scores)}</div>' if doc.scores else "") + "</header>")
    body = "".join(_item(item) for item in doc.items)
    more = doc.n_items - len(doc.items)
    if more > 0:
        body += f'<div class="more">... {more} more items not shown</div>'
    return (f'<article class="{classes}" data-side="{doc.side}" data-sample="{_e(doc.sample_id)}" '
            f'data-rules="{_e(" ".join(doc.rules))}" data-cluster="{_e(doc.cluster or "")}">{header}{body}</article>')


def _item(item: Item) -> str:
    if item.modality == "image":
        if item.thumbnail:
            content = f'<img src="{_e(item.thumbnail)}" alt="image at position {item.position}" loading="eager">'
        else:
            what = ("does not decode" if item.image_id is not None
                    else f"bytes not read ({item.materialize_error})" if item.materialize_error
                    else "no bytes (URL only)" if item.image_url else "no bytes (not materialized yet)")
            url = f" {_e(item.image_url)}" if item.image_url else ""
            content = f'<span class="noimage">image: {_e(what)}{url}</span>'
    else:
        text = item.text or ""
        cut = item.text_chars - len(text)
        content = f"<p>{_e(text)}</p>" + (f'<span class="more">... {cut} more characters</span>' if cut > 0 else "")
    why = ""
    if item.drop is not None:
        detail = f": {item.drop.detail}" if item.drop.detail is not None else ""
        recipe = f" of {item.drop.recipe}" if item.drop.recipe else ""
        why = (f'<div class="why">dropped by {_e(item.drop.rule)}{_e(recipe)} '
               f'({_e(item.drop.reason)}{_e(detail)})</div>')
    scores = f'<div class="scores">{_scores(item.scores)}</div>' if item.scores else ""
    classes = f"item {_e(item.modality)}" + (" dropped" if item.drop else "")
    rule = f' data-rule="{_e(item.drop.rule)}"' if item.drop else ""
    return f'<div class="{classes}" data-position="{item.position}"{rule}>{content}{why}{scores}</div>'


def _scores(scores: dict) -> str:
    return " &middot; ".join(f"{_e(name)} {_e(_format(value))}" for name, value in scores.items())


def _format(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return "null" if value is None else str(value)


def _natural(value: str):
    return (0, int(value), "") if value.lstrip("-").isdigit() else (1, 0, value)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)
