"""`retrieve()`: hybrid dense + keyword search, fused, with the answering sentence of each hit.

Dense (FAISS, e5 vectors) finds paraphrases; BM25 (French analyser) finds exact names and
numbers. Reciprocal-rank fusion combines them without calibrating their scores against each other.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from qa.errors import InputError
from qa.french import analyze, normalize_apostrophes
from qa.index import Index, load_index

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
MAX_K = 50
CANDIDATES = 100  # per ranked list, before fusion
EXACT_MAX = 10_000  # up to this many passages every passage is scored by every list; above, candidates only
EXACT_FILTERED_MAX = 200_000  # a document filter this small is scored exactly, even over an IVF index

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class SearchConfig:
    """How ranked lists are fused. The defaults were chosen on half of piaf-dev (see README)."""

    rrf_k: int = 10  # small k trusts the top of each list
    dense_weight: float = 1.0  # passage vectors
    keyword_weight: float = 1.0  # BM25
    sentence_weight: float = 1.0  # each passage's best sentence vector (max-sim)
    sentence_lexical_weight: float = 0.1  # answer sentence: share of question keywords it holds
    answer_depth: int = 3  # the answer sentence is the best of the top passages' best sentences…
    answer_passage_weight: float = 0.1  # …each plus this share of its passage's fused score over the first's


DEFAULT_CONFIG = SearchConfig()


@dataclass(frozen=True)
class Sentence:
    """The sentence of a passage that best answers the question, in document offsets."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    """A retrieved passage with its citation: `text == document_text[start:end]`."""

    rank: int
    score: float
    doc: str
    title: str
    section: str
    start: int
    end: int
    text: str
    sentence: Sentence
    page: int | None = None
    dense_score: float = 0.0
    keyword_score: float = 0.0
    sentence_score: float = 0.0  # how well `sentence` answers: cosine plus a share of the question's keywords
    sentence_margin: float = 0.0  # `sentence_score` minus the passage's next best sentence (0 for one sentence)

    def to_dict(self) -> dict:
        return asdict(self)


def check_question(question: str) -> str:
    """The question stripped; `ValueError` if it is empty or too long to be a question."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a str, not {type(question).__name__}")
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


def retrieve(
    question: str,
    k: int = 5,
    *,
    index: str | Path = "index",
    mode: Mode = "hybrid",
    docs: list[str] | None = None,
) -> list[Passage]:
    """The `k` passages that best answer `question`, best first.

    Args:
        question: a question in French (other languages work less well).
        k: how many passages, 1 to 50.
        index: the index folder built by `build_index`.
        mode: "hybrid" (default), or "dense" / "bm25" alone, for comparison.
        docs: restrict the search to these document ids.

    Example:
        >>> retrieve("Qui a revendiqué les attaques ?", k=1)[0].section
        'Introduction : une escalade djihadiste dans plusieurs régions maliennes'
    """
    question = check_question(question)
    check_k(k)
    if mode not in ("hybrid", "dense", "bm25"):
        raise ValueError(f"mode must be 'hybrid', 'dense' or 'bm25', got {mode!r}")
    idx = load_index(index)
    return search(idx, question, k, mode=mode, docs=docs)


def search(
    idx: Index,
    question: str,
    k: int,
    *,
    mode: Mode = "hybrid",
    docs: list[str] | None = None,
    config: SearchConfig = DEFAULT_CONFIG,
) -> list[Passage]:
    """Rank the passages of a loaded index (no input checks: `retrieve` does them)."""
    from qa.query_encoder import encode_question

    n = len(idx.passages)
    allowed = _doc_mask(idx, docs)
    query_vec = encode_question(idx.model_id, normalize_apostrophes(question))
    dense = _dense_scores(idx, query_vec, None if docs is None else allowed)
    keyword = _keyword_scores(idx, question) if mode != "dense" else np.zeros(n, dtype=np.float32)
    if mode == "dense":
        fused = dense.copy()
    elif mode == "bm25":
        fused = keyword.copy()
    else:
        fused = config.dense_weight * _rrf(dense, allowed, config.rrf_k)
        fused += config.keyword_weight * _rrf(keyword, allowed, config.rrf_k)
        if config.sentence_weight:
            candidates = None
            if n > EXACT_MAX:  # the best-sentence list only reorders what the other two lists found
                candidates = np.union1d(_top(np.where(allowed, dense, -np.inf), CANDIDATES),
                                        _top(np.where(allowed, keyword, -np.inf), CANDIDATES))
            sentences = _best_sentence_scores(idx, query_vec, candidates)
            fused += config.sentence_weight * _rrf(sentences, allowed, config.rrf_k)
    fused[~allowed] = -np.inf
    order = [i for i in _top(fused, k) if np.isfinite(fused[i])]
    terms = set(analyze(question, question=True))
    return [
        _passage(idx, i, rank, float(fused[i]), float(dense[i]), float(keyword[i]), query_vec, terms, config)
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
    unknown = wanted - set(idx.manifest["documents"])
    if unknown:
        names = ", ".join(sorted(unknown))
        raise InputError(
            f"unknown document(s): {sorted(unknown)}; indexed: {sorted(idx.manifest['documents'])}",
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
    n = idx.dense.ntotal
    if allowed is not None:
        rows = np.flatnonzero(allowed)
        if len(rows) <= EXACT_FILTERED_MAX:
            out = np.full(n, -1.0, dtype=np.float32)
            out[rows] = np.asarray(idx.passage_vectors()[rows]) @ query_vec.astype(np.float32)
            return out
    scores, ids = idx.dense.search(query_vec.reshape(1, -1).astype(np.float32), min(n, CANDIDATES))
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


def _passage(idx, i, rank, score, dense, keyword, query_vec, terms, config) -> Passage:
    p = idx.passages[i]
    scores = sentence_scores(idx, i, query_vec, terms, config.sentence_lexical_weight)
    best = int(np.argmax(scores))
    runner_up = float(np.partition(scores, -2)[-2]) if len(scores) > 1 else float(scores[best])
    start, end = p.sentences[best]
    return Passage(
        rank=rank, score=score, doc=p.doc, title=p.title, section=p.section, start=p.start, end=p.end,
        text=p.text, sentence=Sentence(start, end, p.text[start - p.start : end - p.start]),
        page=p.page, dense_score=dense, keyword_score=keyword, sentence_score=float(scores[best]),
        sentence_margin=float(scores[best]) - runner_up,
    )


def answer_passage(passages: list[Passage], config: SearchConfig = DEFAULT_CONFIG) -> Passage | None:
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
        for j, sentence_terms in enumerate(_sentence_terms(idx, i)):
            scores[j] += lexical_weight * len(terms & sentence_terms) / len(terms)
    return scores


def _sentence_terms(idx: Index, i: int) -> list[frozenset[str]]:
    """The keyword terms of each sentence of passage i, analysed once per loaded index."""
    cached = idx.sentence_terms.get(i)
    if cached is None:
        p = idx.passages[i]
        cached = [frozenset(analyze(p.text[s - p.start : e - p.start])) for s, e in p.sentences]
        idx.sentence_terms[i] = cached  # a plain dict write: a race only analyses twice
    return cached


