"""French text handling: apostrophes, accents, elisions, stopwords, stemming, sentences.

The only module that knows French. The same `analyze` prepares passages and questions for the
keyword index, so both sides always agree on what a word is.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Typographic apostrophes and look-alikes: the report writes ’, users type '.
_APOSTROPHES = str.maketrans({c: "'" for c in "’‘ʼ´`′＇"})

ELISIONS = ("l", "d", "qu", "n", "s", "j", "c", "m", "t", "jusqu", "lorsqu", "puisqu", "quoiqu")
_ELISION_RE = re.compile(r"\b(?:" + "|".join(sorted(ELISIONS, key=len, reverse=True)) + r")'", re.I)
_WORD_RE = re.compile(r"\w+", re.UNICODE)

# Question words carry no topic: dropped from questions, for the keyword index only.
QUESTION_WORDS = frozenset(
    "quel quelle quels quelles qui que quoi qu comment pourquoi combien quand ou lequel laquelle "
    "lesquels lesquelles est-ce ce cela ceci".split()
)


def normalize_apostrophes(text: str) -> str:
    """Map every apostrophe look-alike to ASCII `'`; length is preserved, so offsets hold."""
    return text.translate(_APOSTROPHES)


def fold_accents(text: str) -> str:
    """Remove diacritics (é -> e, ç -> c) so that `securite` matches `sécurité`."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_FRENCH  # lazy: a heavy library, loaded on first use

    return frozenset(fold_accents(w) for w in STOPWORDS_FRENCH)


@functools.lru_cache(maxsize=1)
def _resources() -> tuple[object, frozenset[str]]:
    import Stemmer  # lazy: a heavy library, loaded on first use

    return Stemmer.Stemmer("french"), _stopwords()


def words(text: str) -> list[str]:
    """Lowercased words, accents kept, with elided articles split off (l'armée -> armée)."""
    text = _ELISION_RE.sub(" ", normalize_apostrophes(text))
    return _WORD_RE.findall(text.lower())


@functools.lru_cache(maxsize=200_000)
def _term(word: str, question: bool) -> str:
    """The index term of one lowercased word, or "" when it is dropped. Cached: a word's fate never
    changes, and folding and stemming every occurrence was most of the analyser's time."""
    _, stop = _resources()
    folded = fold_accents(word)
    if folded in stop or (len(word) == 1 and not word.isdigit()):
        return ""
    if question and folded in QUESTION_WORDS:
        return ""
    return _stem(word)


def _stem(word: str) -> str:
    """Stem, then fold accents: Snowball needs them to see suffixes (revendiquées -> revendiqu)."""
    stemmer, _ = _resources()
    return fold_accents(stemmer.stemWord(word))  # type: ignore[attr-defined]


def analyze(text: str, *, question: bool = False) -> list[str]:
    """Keyword-index terms of a text: words without stopwords, Snowball-stemmed.

    One-letter tokens are dropped unless they are digits ("7 localités" keeps "7").
    With `question=True`, French question words are dropped too.
    """
    return [t for t in (_term(w, question) for w in words(text)) if t]


ANALYZER_PARAMS = {
    "apostrophes": "normalized",
    "lowercase": True,
    "accents": "folded after stemming",
    "elisions": list(ELISIONS),
    "stopwords": "bm25s.STOPWORDS_FRENCH (accent-folded)",
    "stemmer": "snowball-french (PyStemmer)",
    "min_length": 2,
    "question_words": sorted(QUESTION_WORDS),
}

# Abbreviations whose final dot does not end a sentence.
_ABBREVIATIONS = frozenset(
    "m mm mme mmes mlle dr pr me st ste av apr j.-c etc cf ex p pp vol no n° art al fig chap "
    "env approx min max vs réf éd gén col cdt lt sgt".split()
)
_SENTENCE_END_RE = re.compile(r"[.!?…]+[»\"”)\]]*(?=\s+)")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentences of `text[start:end]` as (start, end) offsets into `text`, whitespace trimmed.

    A sentence ends at `.`, `!`, `?` or `…` followed by space and an upper-case letter, a digit or
    an opening quote, unless the dot closes a known abbreviation or a single initial (`J. Dupont`).
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for m in _SENTENCE_END_RE.finditer(text, start, end):
        nxt = m.end()
        while nxt < end and text[nxt].isspace():
            nxt += 1
        if nxt >= end:
            break
        following = text[nxt]
        if not (following.isupper() or following.isdigit() or following in "«\"“(-–—"):
            continue
        if text[m.start()] == "." and m.end() - m.start() == 1:
            before = re.search(r"(\S+)$", text[cursor : m.start()])
            token = before.group(1).lower().lstrip("(«\"") if before else ""
            if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
                continue
        spans.append(_trim(text, cursor, m.end()))
        cursor = nxt
    if cursor < end:
        spans.append(_trim(text, cursor, end))
    return [s for s in spans if s[1] > s[0]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
