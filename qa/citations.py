"""Hits → citations: each passage found, in document offsets, with the sentence that best answers.

A hit is the index's `Passage` seen from one question: `cite` adds what only a question gives, its
rank, scores and the chosen `Sentence`. The sentence is scored by its cosine to the question plus a
share of the question's keywords it holds; `answer_passage` picks whose sentence `ask` quotes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qa.chunking import Passage, Sentence
from qa.french import analyze
from qa.index import Index


@dataclass(frozen=True)
class CitationConfig:
    """How sentences are chosen. The defaults were chosen on half of piaf-dev (docs/evaluation.md)."""

    sentence_lexical_weight: float = 0.1  # answer sentence: share of question keywords it holds
    answer_depth: int = 3  # the answer sentence is the best of the top passages' best sentences…
    answer_passage_weight: float = 0.1  # …each plus this share of its passage's fused score over the first's


DEFAULT_CITATION = CitationConfig()


def cite(idx: Index, i: int, *, rank: int, score: float, dense_score: float, keyword_score: float,
         query_vec: np.ndarray, terms: set[str], config: CitationConfig = DEFAULT_CITATION) -> Passage:
    """Passage i of the index as a hit: its citation, and its sentence that best answers the question."""
    p = idx.passages[i]
    scores = sentence_scores(idx, i, query_vec, terms, config.sentence_lexical_weight)
    best = int(np.argmax(scores))
    runner_up = float(np.partition(scores, -2)[-2]) if len(scores) > 1 else float(scores[best])
    start, end = p.sentences[best]
    return replace(
        p, rank=rank, score=score, sentence=Sentence(start, end, p.text_at(start, end)),
        dense_score=dense_score, keyword_score=keyword_score, sentence_score=float(scores[best]),
        sentence_margin=float(scores[best]) - runner_up,
    )


def answer_passage(passages: list[Passage], config: CitationConfig = DEFAULT_CITATION) -> Passage | None:
    """The passage whose sentence answers: among the first `answer_depth`, the best sentence score
    plus `answer_passage_weight` x its fused score over the first passage's; ties go to the higher rank.

    The first passage often names the question's topic while the answer is in the next one. On PIAF
    this lifts answer-sentence accuracy from 0.577 to 0.601 with the ranking unchanged (`qa eval piaf`;
    chosen on the even-numbered questions, +3.1 points on the odd ones).
    """
    if not passages:
        return None
    top = passages[0].score
    if top <= 0:
        return passages[0]
    found = [p for p in passages[: config.answer_depth] if p.score > 0]  # a passage no list ranked is no answer
    return max(found, key=lambda p: p.sentence_score + config.answer_passage_weight * p.score / top)


def sentence_scores(idx: Index, i: int, query_vec: np.ndarray, terms: set[str], lexical_weight: float) -> np.ndarray:
    """Each sentence of passage i against the question: cosine, plus a share of its keywords."""
    scores = idx.sentence_vectors[idx.sentence_offsets[i] : idx.sentence_offsets[i + 1]] @ query_vec
    if terms:
        for j, held in enumerate(sentence_terms(idx, i)):
            scores[j] += lexical_weight * len(terms & held) / len(terms)
    return scores


def sentence_terms(idx: Index, i: int) -> list[frozenset[str]]:
    """The keyword terms of each sentence of passage i, analysed once per loaded index."""
    cached = idx.sentence_terms.get(i)
    if cached is None:
        p = idx.passages[i]
        cached = [frozenset(analyze(text)) for text in p.sentence_texts()]
        idx.sentence_terms[i] = cached  # a plain dict write: a race only analyses twice
    return cached


