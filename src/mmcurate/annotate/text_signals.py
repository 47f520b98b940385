"""Text-quality signals (OBELICS node/document filters, Gopher quality rules) and language id.

Pure Python, no Spark: every function takes one ``str`` (a paragraph or a whole document) and
is cheap enough to run per paragraph inside a pandas UDF.  The OBELICS definitions follow
``FilteringFunctions`` in huggingface/OBELICS ``obelics/processors/web_document_filtering.py``
and the word lists of ``obelics/utils/filtering_utils.py`` (shipped as files under
``mmcurate/resources``); the Gopher ones follow huggingface/datatrove
``src/datatrove/pipeline/filters/gopher_quality_filter.py``.

As OBELICS does before filtering (``cond_standardize_whitespace: True``), the text is first
whitespace-standardised: the exotic spaces of ``FilteringFunctions.standardize_whitespace``
become ``" "``.  OBELICS "words" (``get_words_from_text``) are then: split on ``" "``, ``"\\n"``
and ``"\\t"``, lower-cased, special characters stripped from both ends, empties dropped.

Not reproduced: ``compute_common_word_ratio`` (OBELICS reads ``common_words.json`` from a
Google Drive file that is not in the repository), KenLM perplexity (needs the ``en.arpa`` and
sentencepiece models), and fastText lid.176, for which py3langid stands in.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from importlib.resources import files
from itertools import islice
from operator import countOf

from py3langid.langid import MODEL_FILE, LanguageIdentifier

_RESOURCES = files("mmcurate") / "resources"


def _read_list(name: str) -> list[str]:
    """Non-comment lines of a package resource file."""
    lines = (_RESOURCES / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


STOPWORDS: frozenset[str] = frozenset(_read_list("stopwords_en.txt"))
FLAGGED_WORDS: frozenset[str] = frozenset(_read_list("flagged_words_en.txt"))
PUNCTUATION: frozenset[str] = frozenset(_read_list("punctuation.txt"))
SPECIAL_CHARACTERS: frozenset[str] = frozenset(
    chr(int(line.split()[0][2:], 16)) for line in _read_list("special_characters.txt")
)

# OBELICS thresholds (obelics/configs/config_filter_web_documents.yaml): signal -> (min, max),
# keep when min <= value <= max, None = unbounded.  Not listed: common-word ratio (>= 0.8 /
# >= 0.9, not computed here), KenLM perplexity (<= 1500, document level only), number of
# images (1..30, not a text signal); paragraph-level lang-id is disabled in OBELICS.
OBELICS_PARAGRAPH: dict[str, tuple[float | None, float | None]] = {
    "word_count": (4, 1000),
    "char_repetition_ratio": (None, 0.1),
    "word_repetition_ratio": (None, 0.1),
    "special_character_ratio": (None, 0.3),
    "stopword_ratio": (0.3, None),
    "flagged_word_ratio": (None, 0.01),
    "punctuation_ratio": (0.001, None),  # computed with min_words=OBELICS_PUNCTUATION_MIN_WORDS
}
OBELICS_DOCUMENT: dict[str, tuple[float | None, float | None]] = {
    "word_count": (10, 2000),
    "char_repetition_ratio": (None, 0.1),
    "word_repetition_ratio": (None, 0.2),
    "special_character_ratio": (None, 0.275),
    "stopword_ratio": (0.35, None),
    "flagged_word_ratio": (None, 0.01),
    "punctuation_ratio": (0.03, None),
    "lang_score": (0.8, None),  # with lang == "en" (fastText lid.176 in OBELICS)
}
# Paragraphs with fewer word/punctuation tokens than this get punctuation_ratio 1.0
# (min_number_words_to_check_punctuation_ratio_node_level).
OBELICS_PUNCTUATION_MIN_WORDS = 12
# Gopher quality rules (datatrove GopherQualityFilter defaults).  Gopher counts its 50..100,000
# words with a word tokenizer; word_count (OBELICS words) approximates it.  Its ">= 2 of 8
# stop words" rule is not covered.
GOPHER_QUALITY: dict[str, tuple[float | None, float | None]] = {
    "word_count": (50, 100_000),
    "mean_word_length": (3, 10),
    "symbol_word_ratio": (None, 0.1),
    "bullet_line_ratio": (None, 0.9),
    "ellipsis_line_ratio": (None, 0.3),
    "alpha_word_ratio": (0.8, None),
}

# FilteringFunctions.standardize_whitespace: these characters become " ".  None is ASCII, so
# ASCII text skips the translation.
_STANDARDIZE_WHITESPACE = str.maketrans(
    dict.fromkeys(
        "\u2009\u200a\u202f\u2005\u3000\u2002\u2008\u2003\ufffc\x84\xa0",
        " ",
    )
)


def _char_class(chars: frozenset[str]) -> str:
    """Regex character-class body for ``chars``, as escaped code-point ranges."""
    spans: list[list[int]] = []
    for code in sorted(map(ord, chars)):
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in spans)


def _word_re(special: frozenset[str]) -> re.Pattern[str]:
    """One match per OBELICS word: within a run of non-separators, the span from the first to
    the last non-special character (== split on " \\n\\t", then strip special characters)."""
    edge = f"[^{_char_class(special)} \\n\\t]"
    return re.compile(f"{edge}(?:[^ \\n\\t]*{edge})?")


# re tests code points above U+FFFF in a class one range at a time, so the common case, text
# without such characters, uses a class of the BMP special characters only.
_WORD_RE_BMP = _word_re(frozenset(c for c in SPECIAL_CHARACTERS if c <= "\uffff"))
_WORD_RE_ALL = _word_re(SPECIAL_CHARACTERS)
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_DELETE_SPECIAL = dict.fromkeys(map(ord, SPECIAL_CHARACTERS))
# compute_punctuation_ratio's tokens: runs of word characters/apostrophes, or one punctuation mark.
_WORD_OR_PUNCT_RE = re.compile(f"[\\w']+|[{_char_class(PUNCTUATION)}]")


def _standardize(text: str) -> str:
    return text if text.isascii() else text.translate(_STANDARDIZE_WHITESPACE)


def _words(text: str) -> list[str]:
    """OBELICS ``get_words_from_text`` on already standardised text."""
    text = text.lower()
    astral = not text.isascii() and _ASTRAL_RE.search(text)
    return (_WORD_RE_ALL if astral else _WORD_RE_BMP).findall(text)


def _char_repetition_ratio(text: str, n: int) -> float:
    total = len(text) - n + 1
    if total <= 0:
        return 0.0
    freqs = Counter([text[i : i + n] for i in range(total)]).values()
    top = min(math.isqrt(len(freqs)), len(freqs) - countOf(freqs, 1))
    return sum(sorted(freqs, reverse=True)[:top]) / total if top else 0.0


def _word_repetition_ratio(words: list[str], n: int) -> float:
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    freqs = Counter(zip(*(islice(words, i, None) for i in range(n)))).values()
    return sum(f for f in freqs if f > 1) / total


def _special_character_ratio(text: str) -> float:
    return (len(text) - len(text.translate(_DELETE_SPECIAL))) / len(text) if text else 0.0


def _share(words: list[str], vocabulary: frozenset[str]) -> float:
    return sum(map(vocabulary.__contains__, words)) / len(words) if words else 0.0


def _punctuation_ratio(text: str, min_words: int) -> float:
    tokens = len(_WORD_OR_PUNCT_RE.findall(text))
    if not tokens:
        return 0.0
    if min_words > 0 and tokens < min_words:
        return 1.0
    return sum(map(text.count, PUNCTUATION)) / tokens


def _mean_word_length(words: list[str]) -> float:
    return sum(map(len, words)) / len(words) if words else 0.0


def _symbol_word_ratio(text: str, n_tokens: int) -> float:
    if not n_tokens:
        return 0.0
    return max(text.count("#"), text.count("...") + text.count("…")) / n_tokens


def _bullet_line_ratio(lines: list[str]) -> float:
    return sum(line.lstrip().startswith(("•", "-")) for line in lines) / len(lines) if lines else 0.0


def _ellipsis_line_ratio(lines: list[str]) -> float:
    return sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines) if lines else 0.0


def _alpha_word_ratio(tokens: list[str]) -> float:
    alpha = sum(any(map(str.isalpha, token)) for token in tokens)
    return alpha / len(tokens) if tokens else 0.0


def word_count(text: str) -> int:
    """Number of OBELICS words (``check_number_words``)."""
    return len(_words(_standardize(text)))


def char_repetition_ratio(text: str, n: int = 10) -> float:
    """OBELICS ``compute_character_repetition_ratio``: share of the character n-gram occurrences
    taken by the ``min(floor(sqrt(#distinct n-grams)), #n-grams seen more than once)`` most
    frequent n-grams; 0 when the text is shorter than ``n``."""
    return _char_repetition_ratio(_standardize(text), n)


def word_repetition_ratio(text: str, n: int = 5) -> float:
    """OBELICS ``compute_word_repetition_ratio``: share of word n-gram occurrences whose n-gram
    occurs more than once; 0 when there are fewer than ``n`` words."""
    return _word_repetition_ratio(_words(_standardize(text)), n)


def special_character_ratio(text: str) -> float:
    """OBELICS ``compute_special_character_ratio``: special characters / characters."""
    return _special_character_ratio(_standardize(text))


def stopword_ratio(text: str) -> float:
    """OBELICS ``compute_stopword_ratio``: share of words in the English stop-word list."""
    return _share(_words(_standardize(text)), STOPWORDS)


def flagged_word_ratio(text: str) -> float:
    """OBELICS ``compute_flagged_word_ratio``: share of words in the English flagged-word list."""
    return _share(_words(_standardize(text)), FLAGGED_WORDS)


def punctuation_ratio(text: str, min_words: int = 0) -> float:
    """OBELICS ``compute_punctuation_ratio``: tokens are ``[\\w']+`` runs and single marks of
    ``, ; : ? ! .``; returns marks / tokens, 0 without tokens, and 1.0 when ``min_words > 0`` and
    there are fewer tokens than that (OBELICS paragraphs: ``OBELICS_PUNCTUATION_MIN_WORDS``)."""
    return _punctuation_ratio(_standardize(text), min_words)


def mean_word_length(text: str) -> float:
    """Gopher mean word length, in characters, over OBELICS words (punctuation-only and number
    tokens are not words, like datatrove's non-symbol words; datatrove's tokenizer also splits
    contractions, which OBELICS words do not)."""
    return _mean_word_length(_words(_standardize(text)))


def symbol_word_ratio(text: str) -> float:
    """Gopher symbol-to-word ratio: ``max(#"#", #"..." + #"…") / #whitespace tokens``, so one
    ``<= 0.1`` bound equals Gopher's two checks (hash and ellipsis, each ``<= 0.1``)."""
    text = _standardize(text)
    return _symbol_word_ratio(text, len(text.split()))


def bullet_line_ratio(text: str) -> float:
    """Gopher: share of lines (``str.splitlines``) starting, after left-strip, with ``•`` or ``-``."""
    return _bullet_line_ratio(_standardize(text).splitlines())


def ellipsis_line_ratio(text: str) -> float:
    """Gopher: share of lines ending, after right-strip, with ``...`` or ``…``."""
    return _ellipsis_line_ratio(_standardize(text).splitlines())


def alpha_word_ratio(text: str) -> float:
    """Gopher: share of whitespace tokens holding at least one alphabetic character."""
    return _alpha_word_ratio(_standardize(text).split())


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    """py3langid's bundled model with normalised probabilities, loaded once per process."""
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language(text: str) -> tuple[str, float]:
    """py3langid ``(ISO 639-1 code, probability)``; ``("", 0.0)`` for blank text."""
    if not text or text.isspace():
        return "", 0.0
    lang, score = _identifier().classify(text)
    return lang, float(score)


def text_signals(
    text: str, *, char_n: int = 10, word_n: int = 5, punctuation_min_words: int = 0
) -> dict[str, float | int | str]:
    """All signals of ``text`` from one tokenisation, keyed by function name plus ``lang`` and
    ``lang_score``.  For OBELICS paragraphs pass
    ``punctuation_min_words=OBELICS_PUNCTUATION_MIN_WORDS``."""
    text = _standardize(text)
    words = _words(text)
    tokens = text.split()
    lines = text.splitlines()
    lang, lang_score = language(text)
    return {
        "word_count": len(words),
        "char_repetition_ratio": _char_repetition_ratio(text, char_n),
        "word_repetition_ratio": _word_repetition_ratio(words, word_n),
        "special_character_ratio": _special_character_ratio(text),
        "stopword_ratio": _share(words, STOPWORDS),
        "flagged_word_ratio": _share(words, FLAGGED_WORDS),
        "punctuation_ratio": _punctuation_ratio(text, punctuation_min_words),
        "mean_word_length": _mean_word_length(words),
        "symbol_word_ratio": _symbol_word_ratio(text, len(tokens)),
        "bullet_line_ratio": _bullet_line_ratio(lines),
        "ellipsis_line_ratio": _ellipsis_line_ratio(lines),
        "alpha_word_ratio": _alpha_word_ratio(tokens),
        "lang": lang,
        "lang_score": lang_score,
    }


def paragraphs(text: str) -> list[str]:
    """OBELICS node-level paragraphs: ``text.split("\\n\\n")``, kept verbatim (empty ones included),
    so ``"\\n\\n".join(paragraphs(text)) == text``."""
    return text.split("\n\n")
