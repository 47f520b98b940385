"""Tests for mmcurate.annotate.text_signals: OBELICS/Gopher text-quality signals and language id."""
import zipfile
from pathlib import Path

import pytest

from mmcurate.annotate.text_signals import (
    GOPHER_QUALITY,
    OBELICS_DOCUMENT,
    OBELICS_PARAGRAPH,
    OBELICS_PUNCTUATION_MIN_WORDS,
    alpha_word_ratio,
    bullet_line_ratio,
    char_repetition_ratio,
    ellipsis_line_ratio,
    flagged_word_ratio,
    language,
    mean_word_length,
    paragraphs,
    punctuation_ratio,
    special_character_ratio,
    stopword_ratio,
    symbol_word_ratio,
    text_signals,
    word_count,
    word_repetition_ratio,
)

NLTK_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "text" / "nltk_data"  # shared/ is the repo's sibling
NUMERIC_SIGNALS = [
    word_count, char_repetition_ratio, word_repetition_ratio, special_character_ratio, stopword_ratio,
    flagged_word_ratio, punctuation_ratio, mean_word_length, symbol_word_ratio, bullet_line_ratio,
    ellipsis_line_ratio, alpha_word_ratio,
]


def corpus_text(corpus: str, name: str) -> str:
    with zipfile.ZipFile(NLTK_DATA / f"{corpus}.zip") as archive:
        return archive.read(f"{corpus}/{name}").decode("utf-8")


def within(value: float, bounds: tuple) -> bool:
    low, high = bounds
    return (low is None or value >= low) and (high is None or value <= high)


@pytest.fixture(scope="module")
def washington() -> str:
    return corpus_text("inaugural", "1789-Washington.txt")


def test_english_paragraphs_pass_every_obelics_paragraph_threshold(washington):
    english = paragraphs(washington)
    assert len(english) == 7
    for paragraph in english:
        signals = text_signals(paragraph, punctuation_min_words=OBELICS_PUNCTUATION_MIN_WORDS)
        failed = {rule: signals[rule] for rule, bounds in OBELICS_PARAGRAPH.items() if not within(signals[rule], bounds)}
        assert not failed, (paragraph[:60], failed)


def test_english_address_passes_obelics_document_and_gopher_thresholds(washington):
    signals = text_signals(washington)
    assert signals["lang"] == "en"
    for rules in (OBELICS_DOCUMENT, GOPHER_QUALITY):
        failed = {rule: signals[rule] for rule, bounds in rules.items() if not within(signals[rule], bounds)}
        assert not failed


def test_spam_line_is_repetitive():
    spam = " ".join(["buy now"] * 50)
    # 100 words -> 96 word 5-grams, only 2 distinct ("buy now buy now buy", "now buy now buy now").
    assert word_repetition_ratio(spam) == 1.0
    # 399 chars -> 390 char 10-grams, 8 distinct (period "buy now "), occurring 49 (start offsets
    # 0..5 mod 8) or 48 times; isqrt(8) = 2 most frequent: (49 + 49) / 390.
    assert char_repetition_ratio(spam) == pytest.approx(98 / 390)
    assert char_repetition_ratio(spam) > OBELICS_PARAGRAPH["char_repetition_ratio"][1]
    assert word_repetition_ratio(spam) > OBELICS_PARAGRAPH["word_repetition_ratio"][1]


def test_symbol_heavy_text_exceeds_special_character_threshold():
    text = "$$$ 100% FREE!!! >>> CLICK <<< *** 50% OFF *** ### 24/7 ###"
    assert special_character_ratio(text) > 0.3


@pytest.mark.parametrize(
    ("corpus", "name", "expected"),
    [
        ("inaugural", "1789-Washington.txt", "en"),
        ("udhr2", "deu.txt", "de"),
        ("udhr2", "fra.txt", "fr"),
        ("udhr2", "spa.txt", "es"),
    ],
)
def test_language(corpus, name, expected):
    lang, score = language(corpus_text(corpus, name))
    assert lang == expected
    assert 0.9 < score <= 1.0


def test_language_on_a_single_paragraph(washington):
    lang, score = language(paragraphs(washington)[1])
    assert lang == "en" and score > 0.9


def test_empty_text_gives_zeros():
    signals = text_signals("")
    assert signals.pop("lang") == ""
    assert all(value == 0 for value in signals.values()), signals
    assert all(signal("") == 0 for signal in NUMERIC_SIGNALS)


def test_whitespace_only_text():
    signals = text_signals("   \n\n\t")
    assert signals["special_character_ratio"] == 1.0  # whitespace counts as special in OBELICS
    assert signals["word_count"] == signals["alpha_word_ratio"] == signals["bullet_line_ratio"] == 0
    assert (signals["lang"], signals["lang_score"]) == ("", 0.0)


def test_text_signals_matches_the_single_functions(washington):
    text = paragraphs(washington)[1] + "\n- a #tag line ...\n\u00a0😀 emoji\u3000word!"
    signals = text_signals(text, char_n=7, word_n=3, punctuation_min_words=500)
    assert set(signals) == {signal.__name__ for signal in NUMERIC_SIGNALS} | {"lang", "lang_score"}
    assert signals["char_repetition_ratio"] == char_repetition_ratio(text, n=7)
    assert signals["word_repetition_ratio"] == word_repetition_ratio(text, n=3)
    assert signals["punctuation_ratio"] == punctuation_ratio(text, min_words=500) == 1.0
    for signal in NUMERIC_SIGNALS:
        if signal not in (char_repetition_ratio, word_repetition_ratio, punctuation_ratio):
            assert signals[signal.__name__] == signal(text), signal.__name__
    assert (signals["lang"], signals["lang_score"]) == language(text)


def test_threshold_tables_name_computed_signals():
    names = set(text_signals("some words here"))
    for rules in (OBELICS_PARAGRAPH, OBELICS_DOCUMENT, GOPHER_QUALITY):
        assert set(rules) <= names
        assert all(low is None or high is None or low <= high for low, high in rules.values())
    assert OBELICS_PARAGRAPH["word_count"] == (4, 1000) and OBELICS_DOCUMENT["stopword_ratio"] == (0.35, None)


# Hand-computed examples, following the OBELICS / Gopher definitions.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # split on " \n\t" -> Hello, | world! | The | (quick) | fox | -- | 42; strip special chars
        # (punctuation, digits) -> hello world the quick fox; "--" and "42" vanish.
        ("Hello,  world!\tThe (quick) fox\n-- 42", 5),
        ("don't e-mail a.k.a.", 3),  # inner special characters stay: don't | e-mail | a.k.a
        ("a\u00a0b\u3000c", 3),  # no-break / ideographic spaces are standardised to " "
        ("hi 😀 there😀 😀😀", 2),  # emoji are special characters: hi | there
        ("a\rb", 1),  # "\r" is not a separator in OBELICS: one word "a\rb"
    ],
)
def test_word_count(text, expected):
    assert word_count(text) == expected


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("abababab", 2, 4 / 7),  # ab x4, ba x3; isqrt(2 distinct) = 1 -> 4 / 7
        ("abcab", 2, 2 / 4),  # ab x2, bc, ca; isqrt(3) = 1, 1 repeated -> 2 / 4
        ("aaabbbcccdd", 1, 6 / 11),  # a3 b3 c3 d2; isqrt(4) = 2 -> (3 + 3) / 11
        ("aabbcdefghi", 1, 4 / 11),  # a2 b2 + 7 singles; isqrt(9) = 3 but only 2 repeated -> 4 / 11
        ("abcdef", 2, 0.0),  # no repeated bigram
        ("short", 10, 0.0),  # shorter than n: no n-grams
    ],
)
def test_char_repetition_ratio(text, n, expected):
    assert char_repetition_ratio(text, n) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("The cat, the CAT sat.", 2, 2 / 4),  # the cat | cat the | the cat | cat sat -> 2 of 4
        ("a b a b a", 2, 4 / 4),  # a b | b a | a b | b a: every bigram repeated
        ("one two three four five six", 2, 0.0),
        ("only four words here", 5, 0.0),  # fewer than n words
    ],
)
def test_word_repetition_ratio(text, n, expected):
    assert word_repetition_ratio(text, n) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ab 1!", 3 / 5),  # " ", "1", "!"
        ("café™", 1 / 5),  # "™" is in OBELICS' other special characters, "é" is not
        ("hi😀", 1 / 3),  # one emoji = one code point
        ("plain", 0.0),
    ],
)
def test_special_character_ratio(text, expected):
    assert special_character_ratio(text) == pytest.approx(expected)


def test_stopword_ratio():
    # the | cat | sat | on | the | mat: the, on, the are stop words -> 3 / 6
    assert stopword_ratio("The cat sat on the mat.") == pytest.approx(3 / 6)


def test_flagged_word_ratio():
    # buy | xxx | videos | here | now: "xxx" is flagged -> 1 / 5
    assert flagged_word_ratio("Buy XXX videos here now") == pytest.approx(1 / 5)
    assert flagged_word_ratio("The cat sat on the mat.") == 0.0


@pytest.mark.parametrize(
    ("text", "min_words", "expected"),
    [
        ("Hello, world. It's fine!", 0, 3 / 7),  # Hello , world . It's fine ! -> 3 marks / 7 tokens
        ("Hello, world. It's fine!", 7, 3 / 7),  # 7 tokens are not fewer than 7
        ("Hello, world. It's fine!", 12, 1.0),  # 7 < 12 tokens: too short to judge
        ("Wait... what", 0, 3 / 5),  # Wait . . . what
        ("— «»", 0, 0.0),  # no token at all
    ],
)
def test_punctuation_ratio(text, min_words, expected):
    assert punctuation_ratio(text, min_words) == pytest.approx(expected)


def test_mean_word_length():
    assert mean_word_length("The cat, sat.") == pytest.approx(3.0)  # the cat sat
    assert mean_word_length("I am here 2024") == pytest.approx(7 / 3)  # i am here; "2024" is no word


def test_symbol_word_ratio():
    # 5 tokens; 2 "#", 1 "..." -> max(2, 1) / 5
    assert symbol_word_ratio("#tag #tag2 ok ... wow") == pytest.approx(2 / 5)
    # 4 tokens; no "#", "…" + "..." = 2 -> 2 / 4
    assert symbol_word_ratio("wait… what... ok ok") == pytest.approx(2 / 4)


def test_bullet_line_ratio():
    # "- one" yes, "  • two" yes (left-stripped), "three" no, "-four" yes -> 3 / 4
    assert bullet_line_ratio("- one\n  • two\nthree\n-four") == pytest.approx(3 / 4)


def test_ellipsis_line_ratio():
    # "wait..." yes, "ok" no, "hmm…  " yes (right-stripped), "end" no -> 2 / 4
    assert ellipsis_line_ratio("wait...\nok\nhmm…  \nend") == pytest.approx(2 / 4)


def test_alpha_word_ratio():
    # abc yes | 123 no | a1 yes | -- no | ½ no (numeric, not alphabetic) | é yes -> 3 / 6
    assert alpha_word_ratio("abc 123 a1 -- ½ é") == pytest.approx(3 / 6)


def test_paragraphs_split_on_blank_lines_like_obelics():
    text = "first para\nsame para\n\nsecond\n\n\nthird"
    assert paragraphs(text) == ["first para\nsame para", "second", "\nthird"]
    assert "\n\n".join(paragraphs(text)) == text
