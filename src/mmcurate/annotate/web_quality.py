"""Gopher quality and repetition, C4 and FineWeb signals, computed the way datatrove 0.10 computes them.

Teams move filters from datatrove (HuggingFace's implementation of these papers' rules) and expect the
same documents kept. So words are datatrove's English words: spaCy's rule-based English tokenizer
(`spacy.blank("en")`, no model) with whitespace tokens dropped, punctuation tokens included; lines,
paragraphs, n-grams and ratios follow datatrove's `GopherQualityFilter`, `GopherRepetitionFilter`,
`C4QualityFilter` and `FineWebQualityFilter` line by line. Each function returns the values the
filter compares with its thresholds, so a recipe re-tunes a threshold without recomputing, and the
packaged `gopher`, `c4` and `fineweb` recipes list the rules in datatrove's order, so the ledger's
first failing rule is datatrove's reason.

`web_quality_signals(text)` tokenizes once and returns every family's signals.
"""
from __future__ import annotations

import json
import re
import threading
from collections import Counter
from importlib.resources import files
from typing import Optional

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
"""Gopher's stop words (datatrove `gopher_quality_filter.STOP_WORDS`)."""

# datatrove.utils.text.PUNCTUATION: ASCII and CJK punctuation and the C0/C1 control characters.
_PUNCTUATION = set("!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»") | {
    chr(x) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b)}
_TERMINAL = frozenset(json.loads((files("mmcurate") / "resources" / "terminal_punctuation.json").read_text()))
"""Sentence-ending marks of many scripts (datatrove `TERMINAL_PUNCTUATION`, 159 characters)."""
_SYMBOLS = _PUNCTUATION | _TERMINAL  # datatrove PUNCTUATION_SET: a word made only of these is a symbol

_TERMINAL_ENDINGS = tuple(sorted(_TERMINAL))
_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_C4_END = (".", "?", "!", '"', "'")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile("\n+")

_local = threading.local()


def _nlp():
    """This thread's spaCy English tokenizer with a sentencizer (datatrove's SpaCyTokenizer("en"))."""
    nlp = getattr(_local, "nlp", None)
    if nlp is None:
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        _local.nlp = nlp
    return nlp


def words(text: str) -> list[str]:
    """datatrove's English words: spaCy tokens, stripped, empty ones dropped (punctuation tokens kept)."""
    nlp = _nlp()
    nlp.max_length = len(text) + 10
    with nlp.memory_zone():
        try:
            tokens = [t.text.strip() for t in nlp.make_doc(text)]
        except Exception:  # spaCy fails on the literal "IS_ALPHA"; datatrove retries without it, so do we
            if "IS_ALPHA" not in text:
                raise
            tokens = [t.text.strip() for t in nlp.make_doc(text.replace("IS_ALPHA", ""))]
    return [t for t in tokens if t]


def sentence_count(text: str) -> int:
    """Sentences of `text` as datatrove's spaCy sentencizer splits them (non-empty after stripping)."""
    nlp = _nlp()
    nlp.max_length = len(text) + 10
    with nlp.memory_zone():
        sentences = [s.text.strip() for s in nlp(text).sents]
    return sum(1 for s in sentences if s)


def _ratio(part: float, whole: float) -> Optional[float]:
    return part / whole if whole else None


def gopher_quality(text: str, tokens: list[str]) -> dict:
    """GopherQualityFilter's measurements: non-symbol word count and mean length, hash and ellipsis per word,
    bullet and trailing-ellipsis line shares, share of words with a letter, distinct stop words present."""
    n_words = len(tokens)
    non_symbol = [w for w in tokens if any(ch not in _SYMBOLS for ch in w)]
    lines = text.splitlines()
    return {
        "gopher_words": len(non_symbol),
        "gopher_mean_word_length": _ratio(sum(len(w) for w in non_symbol), len(non_symbol)),
        "gopher_hash_ratio": _ratio(text.count("#"), n_words),
        "gopher_ellipsis_ratio": _ratio(text.count("...") + text.count("…"), n_words),
        "gopher_bullet_lines": _ratio(sum(s.lstrip().startswith(("•", "-")) for s in lines), len(lines)),
        "gopher_end_ellipsis_lines": _ratio(sum(s.rstrip().endswith(("...", "…")) for s in lines), len(lines)),
        "gopher_alpha_words": _ratio(sum(any(c.isalpha() for c in w) for w in tokens), n_words),
        "gopher_stop_words": len(STOP_WORDS.intersection(tokens)),
    }


def _duplicates(elements: list[str]) -> tuple[int, int]:
    seen: set[str] = set()
    count = chars = 0
    for element in elements:
        if element in seen:
            count += 1
            chars += len(element)
        else:
            seen.add(element)
    return count, chars


def _top_ngram_chars(tokens: list[str], n: int) -> Optional[int]:
    grams = [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return None
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def _repeated_ngram_chars(tokens: list[str], n: int) -> int:
    seen: set[str] = set()
    repeated = i = 0
    while i < len(tokens) - n + 1:
        gram = "".join(tokens[i:i + n])
        if gram in seen:
            repeated += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated


def gopher_repetition(text: str, tokens: list[str]) -> dict:
    """GopherRepetitionFilter's measurements: duplicate paragraph and line fractions (by count and characters),
    the top 2-4-gram character fractions and the duplicated 5-10-gram character fractions."""
    paragraphs = _PARAGRAPHS.split(text.strip())
    para_dups, para_chars = _duplicates(paragraphs)
    lines = _LINES.split(text)
    line_dups, line_chars = _duplicates(lines)
    out = {
        "dup_para_frac": _ratio(para_dups, len(paragraphs)), "dup_para_char_frac": _ratio(para_chars, len(text)),
        "dup_line_frac": _ratio(line_dups, len(lines)), "dup_line_char_frac": _ratio(line_chars, len(text)),
    }
    for n in (2, 3, 4):
        top = _top_ngram_chars(tokens, n)
        out[f"top_{n}_gram_frac"] = _ratio(top, len(text)) if top is not None else 0.0 if text else None
    for n in range(5, 11):
        out[f"dup_{n}_gram_frac"] = _ratio(_repeated_ngram_chars(tokens, n), len(text))
    return out


def c4(text: str) -> dict:
    """C4QualityFilter (datatrove defaults): which document-level rule fires first (`c4_lorem_ipsum`,
    `c4_curly_bracket`), the sentences in the lines it keeps, and how many lines it keeps. C4 removes lines
    (no terminal punctuation, under 3 words, a word over 1000 characters, javascript, policy phrases)
    and drops the page when a kept candidate line has "lorem ipsum" or "{", or fewer than 5 sentences remain."""
    sentences = kept = 0
    lorem = curly = False
    for raw in text.splitlines():
        line = raw.strip()
        tokens = line.split()
        if any(len(w) > 1000 for w in tokens):
            continue
        line = _CITATION.sub("", line)
        if not line.endswith(_C4_END) or line.endswith("..."):
            continue
        if len(tokens) < 3:
            continue
        lower = line.lower()
        if "lorem ipsum" in lower:
            lorem = True
            break
        if "javascript" in lower:
            continue
        if "{" in line:
            curly = True
            break
        if any(p in lower for p in _POLICY):
            continue
        sentences += sentence_count(line)
        kept += 1
    return {"c4_lorem_ipsum": lorem, "c4_curly_bracket": curly, "c4_sentences": sentences, "c4_kept_lines": kept}


def fineweb(text: str, tokens: list[str]) -> dict:
    """FineWebQualityFilter's measurements over non-blank lines: share ending in terminal punctuation, share of
    lines of at most 30 characters, duplicated-line characters over all characters, newlines per word."""
    lines = [line for line in text.split("\n") if line.strip() != ""]
    return {
        "fineweb_punct_lines": _ratio(sum(1 for line in lines if line.endswith(_TERMINAL_ENDINGS)), len(lines)),
        "fineweb_short_lines": _ratio(sum(1 for line in lines if len(line) <= 30), len(lines)),
        "fineweb_dup_line_chars": _ratio(_duplicates(lines)[1], len(text.replace("\n", ""))) if lines else None,
        "fineweb_newline_words": _ratio(text.count("\n"), len(tokens)),
    }


def web_quality_signals(text: str) -> dict:
    """Every family's signals of one document, from one tokenization."""
    text = text or ""
    tokens = words(text)
    return {**gopher_quality(text, tokens), **gopher_repetition(text, tokens), **c4(text), **fineweb(text, tokens)}
