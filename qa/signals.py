"""Signals of how likely an answer is right: cheap facts the engine already has about a question,
its passages and the sentence it would quote.

The ranking orders passages; it does not say whether the best one answers. These signals are what
`qa.confidence` turns into probabilities: cosines, margins, keyword coverage, BM25, whether the
question's terms, names and focus word exist in the index at all, and whether the sentence holds
the kind of thing the question asks for (a date, a number, a name). `ANSWER_FEATURES` and
`PASSAGE_FEATURES` name them, in the order the calibration files weigh them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qa.citations import DEFAULT_CITATION
from qa.french import analyze, answer_type, focus_word, fold, holds_type, names

if TYPE_CHECKING:
    from qa.citations import Passage
    from qa.index import Index

ANSWER_DEPTH = DEFAULT_CITATION.answer_depth  # the quoted sentence is chosen among the first passages

ANSWER_FEATURES = (
    "dense_top",  # cosine of the question and the first passage
    "dense",  # cosine of the question and the quoted sentence's passage
    "sentence",  # the quoted sentence's score (cosine plus a share of keywords)
    "sentence_margin",  # …minus the next best sentence of its passage
    "dense_margin",  # first passage's cosine minus the second's
    "coverage",  # share of the question's keywords in the passage (title and section included)
    "sentence_coverage",  # …in the sentence alone
    "missing_index",  # share of the question's keywords found nowhere in the index
    "names_missing",  # share of the question's names (capitalised words) absent from the passage
    "lists_agree",  # the first passage is also the best by cosine and by BM25
    "first",  # the quoted sentence comes from the first passage
    "type_expected",  # the question asks for a date, a number or a name
    "type_mismatch",  # …and the sentence holds none
    "bm25_share",  # the passage's BM25 over the best BM25 of the list
    "cross_margin",  # the quoted sentence's score minus the best sentence of the other candidate passages
    "sentence_words",  # log(1 + words in the quoted sentence): a longer sentence holds more
    "focus_missing",  # the question's focus word ("le président", "combien d'habitants") is nowhere in the index
    "number_mismatch",  # a number is asked for and the sentence holds none: the strongest of the three kinds
)
PASSAGE_FEATURES = (
    "dense",
    "sentence",
    "coverage",
    "dense_gap",  # the first passage's cosine minus this one's
    "inverse_rank",
    "missing_index",
    "names_missing",
    "type_mismatch",  # the passage's best sentence lacks the date, number or name asked for
    "bm25_share",
    "focus_missing",
)


def coverage(terms: set[str], text: str) -> float:
    """Share of the question's keywords found in `text` (comparable across corpora, unlike BM25)."""
    return len(terms & set(analyze(text))) / len(terms) if terms else 0.0


@dataclass(frozen=True)
class QuestionSignals:
    """What is known of the question alone, against the index."""

    terms: frozenset[str]
    names: frozenset[str]
    kind: str | None
    missing_index: float
    focus_missing: float  # 1.0 when the question's focus word is found nowhere in the index


def question_signals(idx: Index, query: str) -> QuestionSignals:
    terms = frozenset(analyze(query, question=True))
    known = idx.bm25.get_tokens_ids(sorted(terms)) if terms else []
    missing = (len(terms) - len(known)) / len(terms) if terms else 1.0
    focus = focus_word(query)
    focus_terms = analyze(focus) if focus else []
    focus_missing = float(bool(focus_terms) and not idx.bm25.get_tokens_ids(focus_terms))
    return QuestionSignals(terms, frozenset(names(query)), answer_type(query), missing, focus_missing)


def _names_missing(q: QuestionSignals, p: Passage) -> float:
    if not q.names:
        return 0.0
    text = fold(f"{p.title} {p.section} {p.text}")
    return sum(name not in text for name in q.names) / len(q.names)


def passage_signals(q: QuestionSignals, p: Passage, passages: Sequence[Passage]) -> dict[str, float]:
    """The passage model's inputs for one passage of a ranked list."""
    best_bm25 = max(x.keyword_score for x in passages)
    return {
        "dense": p.dense_score,
        "sentence": p.sentence_score,
        "coverage": coverage(set(q.terms), f"{p.title} {p.section} {p.text}"),
        "dense_gap": passages[0].dense_score - p.dense_score,
        "inverse_rank": 1.0 / p.rank,
        "missing_index": q.missing_index,
        "names_missing": _names_missing(q, p),
        "type_mismatch": float(not holds_type(p.sentence.text, q.kind)),
        "bm25_share": p.keyword_score / best_bm25 if best_bm25 > 0 else 0.0,
        "focus_missing": q.focus_missing,
    }


def answer_signals(q: QuestionSignals, chosen: Passage, passages: Sequence[Passage]) -> dict[str, float]:
    """The answer model's inputs: the quoted sentence, its passage, and the list around them."""
    top = passages[0]
    best_bm25 = max(x.keyword_score for x in passages)
    agree = top.dense_score >= max(x.dense_score for x in passages) and top.keyword_score >= best_bm25
    others = [x.sentence_score for x in passages[:ANSWER_DEPTH] if x is not chosen]
    lacks_kind = not holds_type(chosen.sentence.text, q.kind)
    return {
        "dense_top": top.dense_score,
        "dense": chosen.dense_score,
        "sentence": chosen.sentence_score,
        "sentence_margin": chosen.sentence_margin,
        "dense_margin": top.dense_score - passages[1].dense_score if len(passages) > 1 else 0.0,
        "coverage": coverage(set(q.terms), f"{chosen.title} {chosen.section} {chosen.text}"),
        "sentence_coverage": coverage(set(q.terms), chosen.sentence.text),
        "missing_index": q.missing_index,
        "names_missing": _names_missing(q, chosen),
        "lists_agree": float(agree),
        "first": float(chosen.rank == 1),
        "type_expected": float(q.kind is not None),
        "type_mismatch": float(lacks_kind),
        "bm25_share": chosen.keyword_score / best_bm25 if best_bm25 > 0 else 0.0,
        "cross_margin": chosen.sentence_score - max(others) if others else 0.0,
        "sentence_words": math.log1p(len(chosen.sentence.text.split())),
        "focus_missing": q.focus_missing,
        "number_mismatch": float(q.kind == "number" and lacks_kind),
    }
