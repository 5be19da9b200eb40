"""`search()`: hybrid dense + keyword search, fused; each hit cited by `qa.citations`.

Dense (FAISS, e5 vectors) finds paraphrases; BM25 (French analyser) finds exact names and
numbers. Reciprocal-rank fusion combines them without calibrating their scores against each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from qa.chunking import Passage
from qa.citations import DEFAULT_CITATION, CitationConfig, cite
from qa.errors import InputError
from qa.french import analyze, normalize_apostrophes
from qa.index import Index
from qa.model import encode_question

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
MAX_K = 50
CANDIDATES = 100  # per ranked list, before fusion
EXACT_MAX = 10_000  # up to this many passages every passage is scored by every list; above, candidates only
EXACT_FILTERED_MAX = 200_000  # a document filter this small is scored exactly, even over an IVF index

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class SearchConfig:
    """How ranked lists are fused. The defaults were chosen on half of piaf-dev (docs/evaluation.md)."""

    rrf_k: int = 10  # small k trusts the top of each list
    dense_weight: float = 1.0  # passage vectors
    keyword_weight: float = 1.0  # BM25
    sentence_weight: float = 1.0  # each passage's best sentence vector (max-sim)
    citation: CitationConfig = DEFAULT_CITATION  # how each hit's sentence, and the answer's, are chosen


DEFAULT_CONFIG = SearchConfig()


INVALID_TEXT = ("La question contient des caractères invalides (octets qui ne sont pas du texte UTF-8, "
                "par exemple d'un terminal en Latin-1) : réécrivez-la en UTF-8.")


def is_text(text: str) -> bool:
    """True when `text` is valid Unicode text: no lone surrogate (bytes that were not UTF-8, as Python
    keeps them from a Latin-1 terminal's argv, or a JSON "\\ud800" escape), so it can be encoded at all."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_question(question: str) -> str:
    """The question stripped; `InputError` (a `ValueError`) if it is empty, too long to be a question,
    or not valid Unicode text."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a str, not {type(question).__name__}")
    if not is_text(question):
        raise InputError("question is not valid Unicode text (lone surrogate)", INVALID_TEXT)
    question = question.strip()
    if not question:
        raise InputError("question is empty", "La question est vide : écrivez une question sur le rapport.")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(
            f"question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}",
            f"Question trop longue ({len(question)} caractères ; maximum {MAX_QUESTION_CHARS}).",
        )
    return question


def check_k(k: object) -> int:
    """`k` as a number of passages from 1 to MAX_K; `InputError` otherwise."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InputError(f"k must be an integer from 1 to {MAX_K}, got {k!r}",
                         f"Le nombre de passages doit être un entier de 1 à {MAX_K}.")
    return k


def search(
    idx: Index,
    question: str,
    k: int,
    *,
    mode: Mode = "hybrid",
    docs: list[str] | None = None,
    config: SearchConfig = DEFAULT_CONFIG,
) -> list[Passage]:
    """Rank the passages of a loaded index, best first (no input checks: `qa.Assistant.retrieve` does them)."""
    n = len(idx.passages)
    allowed = _doc_mask(idx, docs)
    query_vec = encode_question(idx.model_id, normalize_apostrophes(question))
    dense_scores = _dense_scores(idx, query_vec, None if docs is None else allowed)
    keyword_scores = _keyword_scores(idx, question) if mode != "dense" else np.zeros(n, dtype=np.float32)
    if mode == "dense":
        fused = dense_scores.copy()
    elif mode == "bm25":
        fused = keyword_scores.copy()
    else:
        fused = config.dense_weight * _rrf(dense_scores, allowed, config.rrf_k)
        fused += config.keyword_weight * _rrf(keyword_scores, allowed, config.rrf_k)
        if config.sentence_weight:
            candidates = None
            if n > EXACT_MAX:  # the best-sentence list only reorders what the other two lists found
                candidates = np.union1d(_top(np.where(allowed, dense_scores, -np.inf), CANDIDATES),
                                        _top(np.where(allowed, keyword_scores, -np.inf), CANDIDATES))
            sentences = _best_sentence_scores(idx, query_vec, candidates)
            fused += config.sentence_weight * _rrf(sentences, allowed, config.rrf_k)
    fused[~allowed] = -np.inf
    order = [i for i in _top(fused, k) if np.isfinite(fused[i])]
    terms = set(analyze(question, question=True))
    return [
        cite(idx, i, rank=rank, score=float(fused[i]), dense_score=float(dense_scores[i]),
             keyword_score=float(keyword_scores[i]), query_vec=query_vec, terms=terms, config=config.citation)
        for rank, i in enumerate(order, start=1)
    ]


def _best_sentence_scores(idx: Index, query_vec: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """Each passage scored by its sentence closest to the question (max-sim); only `candidates` when
    given (the others get 0, which fusion ignores), so a large index reads few sentence vectors."""
    if candidates is None:
        return np.maximum.reduceat(np.asarray(idx.sentence_vectors @ query_vec), idx.sentence_offsets[:-1])
    out = np.zeros(len(idx.passages), dtype=np.float32)
    offsets = idx.sentence_offsets
    for i in candidates:
        out[i] = float(np.max(idx.sentence_vectors[offsets[i] : offsets[i + 1]] @ query_vec))
    return out


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, ties in index order: `np.argsort(-scores, kind="stable")[:k]`,
    without sorting the whole array when it is large (an argsort of 10^5 floats costs ~6 ms)."""
    if len(scores) <= max(4 * k, 4096):
        return np.argsort(-scores, kind="stable")[:k]
    threshold = scores[np.argpartition(-scores, k - 1)[:k]].min()
    tied_or_above = np.flatnonzero(scores >= threshold)  # ascending indices, so the stable sort keeps ties in order
    return tied_or_above[np.argsort(-scores[tied_or_above], kind="stable")][:k]


def _doc_mask(idx: Index, docs: list[str] | None) -> np.ndarray:
    if docs is None:
        return np.ones(len(idx.passages), dtype=bool)
    if isinstance(docs, str):
        docs = [docs]
    wanted = set(docs)
    unknown = wanted - set(idx.document_ids())
    if unknown:
        names = ", ".join(sorted(unknown))
        raise InputError(
            f"unknown document(s): {sorted(unknown)}; indexed: {sorted(idx.document_ids())}",
            f"Document inconnu : {names}. Les documents indexés sont listés par « qa index status ».",
        )
    names, codes = idx.passage_docs()
    return np.isin(codes, [i for i, name in enumerate(names) if name in wanted])


def _dense_scores(idx: Index, query_vec: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Cosine of the question with every passage: exact for a flat index (one matrix-vector product
    over its vectors, faster than asking FAISS for n results) and, with an approximate index, inside
    a document filter (the global top would rarely reach the filtered documents); otherwise the
    approximate top CANDIDATES, the others at -1."""
    if idx.flat_vectors is not None:
        return idx.flat_vectors @ query_vec.astype(np.float32)
    n = idx.faiss.ntotal
    if allowed is not None:
        rows = np.flatnonzero(allowed)
        if len(rows) <= EXACT_FILTERED_MAX:
            out = np.full(n, -1.0, dtype=np.float32)
            out[rows] = np.asarray(idx.passage_vectors()[rows]) @ query_vec.astype(np.float32)
            return out
    scores, ids = idx.faiss.search(query_vec.reshape(1, -1).astype(np.float32), min(n, CANDIDATES))
    out = np.full(n, -1.0, dtype=np.float32)
    valid = ids[0] >= 0
    out[ids[0][valid]] = scores[0][valid]
    return out


def _keyword_scores(idx: Index, question: str) -> np.ndarray:
    terms = analyze(question, question=True) or analyze(question)
    ids = idx.bm25.get_tokens_ids(terms)
    if not ids:
        return np.zeros(len(idx.passages), dtype=np.float32)
    return np.asarray(idx.bm25.get_scores_from_ids(ids), dtype=np.float32)


def _rrf(scores: np.ndarray, allowed: np.ndarray, rrf_k: int) -> np.ndarray:
    """Reciprocal-rank fusion term 1/(k + rank) for the top candidates with a positive signal."""
    out = np.zeros(len(scores), dtype=np.float32)
    masked = np.where(allowed, scores, -np.inf)
    top = _top(masked, CANDIDATES)
    top = top[np.isfinite(masked[top]) & (masked[top] > 0)]
    out[top] = 1.0 / (rrf_k + np.arange(1, len(top) + 1))
    return out


