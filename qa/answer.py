"""`ask()`: an answer to a question, or an honest "not in the report", with follow-ups resolved.

No text is generated. The answer is the best answering sentence of the first passages (usually
the first), quoted verbatim; abstaining is an answer too (the closest passages are still offered,
marked as such).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from qa.french import analyze, normalize_apostrophes, words
from qa.index import load_index
from qa.search import (
    DEFAULT_CONFIG,
    MAX_QUESTION_CHARS,
    Passage,
    Sentence,
    answer_passage,
    check_k,
    check_question,
    search,
)

NO_ANSWER = "Je n'ai pas trouvé de réponse à cette question dans le rapport."

# Abstention rule for multilingual-e5-small, calibrated with `qa eval answers` (see README) on half
# of the PIAF questions (positives: against PIAF; negatives: against the report) and checked on the
# other half: answer when the best passage is close to the question, or fairly close and holding
# some of its keywords. Another --model needs its own thresholds.
DENSE_MIN = 0.82
DENSE_WITH_KEYWORDS_MIN = 0.78
KEYWORD_COVERAGE_MIN = 0.3

# A follow-up leans on the previous turn: it opens with "et", or points back with a pronoun.
_FOLLOW_UP_START = re.compile(r"^\s*(et|mais|alors|puis|ensuite|donc|aussi)\b", re.I)
_BACK_REFERENCES = frozenset(
    "il ils elle elles son sa ses leur leurs lui eux celui celle ceux celles cela ça cet cette ces "
    "y dernier dernière derniers dernières".split()
)
# An inverted subject ("ont-ils", "cherche-t-il") points back only when the question names little
# else: "Les assaillants ont-ils utilisé des drones ?" stands alone, "Que cherche-t-il ?" does not.
_INVERTED = re.compile(r"-(?:t-)?(?:il|ils|elle|elles|on|ce)\b")
MAX_HISTORY = 3
FOLLOW_UP_DEPTH = 10  # passages fused from each of the two searches
ALONE_WEIGHT = 0.75  # the follow-up alone lacks its subject but carries its new focus ("l'armée")


@dataclass(frozen=True)
class Answer:
    """What `ask` returns: the answering sentence and its passage, or an abstention."""

    question: str
    abstained: bool
    passages: tuple[Passage, ...]
    sentence: Sentence | None  # verbatim, document offsets; None when abstained
    passage: Passage | None  # the passage holding `sentence`
    message: str  # French text for the user: the sentence, or NO_ANSWER
    query: str  # what was searched: the question, or it after the questions it leans on
    follow_up: bool


def ask(
    question: str,
    history: Sequence[str | Mapping] | None = (),
    *,
    k: int = 3,
    index: str | Path = "index",
    docs: list[str] | None = None,
) -> Answer:
    """Answer `question` from the index, resolving a follow-up with the previous user questions.

    Args:
        question: the question in French.
        history: earlier turns, oldest first: user questions as strings, or chat messages
            (`{"role": "user", "content": ...}`); assistant turns are ignored.
        k: how many passages to return.

    Example:
        >>> ask("Qui a revendiqué les attaques ?").sentence.text[:40]
        'Ces attaques, revendiquées par Jama’at N'
        >>> ask("Quelle est la hauteur de la tour Eiffel ?").abstained
        True
    """
    question = check_question(question)
    check_k(k)
    idx = load_index(index)
    previous = user_questions(history)
    follow_up = bool(previous) and is_follow_up(question)
    query = " ".join([*context_questions(previous), question]) if follow_up else question
    if follow_up:
        depth = max(k, FOLLOW_UP_DEPTH)
        passages = _fuse(search(idx, query, depth, docs=docs), search(idx, question, depth, docs=docs), k)
    else:
        passages = search(idx, query, k, docs=docs)
    if not passages:
        return Answer(question, True, (), None, None, NO_ANSWER, query, follow_up)
    abstained = should_abstain(passages[0], query)  # calibrated on the first passage
    # The answering sentence may sit in a passage just below the first. A follow-up's passages come
    # from two searches whose sentence scores are not comparable: its first passage answers.
    chosen = passages[0] if follow_up else answer_passage(passages)
    return Answer(
        question=question,
        abstained=abstained,
        passages=tuple(passages),
        sentence=None if abstained else chosen.sentence,
        passage=None if abstained else chosen,
        message=NO_ANSWER if abstained else chosen.sentence.text,
        query=query,
        follow_up=follow_up,
    )


def user_questions(history: Sequence[str | Mapping] | None) -> list[str]:
    """The user's earlier questions, from plain strings or chat messages. Turns that could not have
    been asked (over MAX_QUESTION_CHARS) are ignored rather than searched."""
    out = []
    if isinstance(history, (str, Mapping)):
        history = [history]
    for turn in history or ():
        if isinstance(turn, str):
            text = turn
        elif isinstance(turn, Mapping) and turn.get("role") == "user":
            text = _content_text(turn.get("content"))
        else:
            continue
        if text.strip() and len(text) <= MAX_QUESTION_CHARS:
            out.append(text.strip())
    return out


def _content_text(content: object) -> str:
    """Chat content as text: a string, or Gradio's list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return " ".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


def context_questions(previous: list[str]) -> list[str]:
    """The earlier questions a follow-up leans on: back to the last one that stands alone, at most
    MAX_HISTORY ("Qui mène les attaques ?", "Et où ?" then "Et quand ?" keeps the first two)."""
    context: list[str] = []
    for earlier in reversed(previous[-MAX_HISTORY:]):
        context.insert(0, earlier)
        if not is_follow_up(earlier):
            break
    return context


def is_follow_up(question: str) -> bool:
    """True when the question needs the previous turn: "Et …", a back-reference, or no topic word."""
    if _FOLLOW_UP_START.match(question):
        return True
    topic = analyze(question, question=True)
    if len(topic) <= 1:
        return True
    text = normalize_apostrophes(question.lower())
    if any(t in _BACK_REFERENCES for t in words(_INVERTED.sub(" ", text))):
        return True
    return _INVERTED.search(text) is not None and len(topic) <= 2


def keyword_coverage(passage: Passage, query: str) -> float:
    """Share of the question's keywords found in the passage (comparable across corpora, unlike BM25)."""
    terms = set(analyze(query, question=True))
    if not terms:
        return 0.0
    found = terms & set(analyze(f"{passage.title} {passage.section} {passage.text}"))
    return len(found) / len(terms)


def should_abstain(top: Passage, query: str) -> bool:
    """The calibrated rule: is the best passage too far from the question to be its answer?"""
    if top.dense_score >= DENSE_MIN:
        return False
    return not (top.dense_score >= DENSE_WITH_KEYWORDS_MIN and keyword_coverage(top, query) >= KEYWORD_COVERAGE_MIN)


def _fuse(with_history: list[Passage], alone: list[Passage], k: int) -> list[Passage]:
    """Reciprocal-rank fusion of the question with its history and, weighted less, alone."""
    scores: dict[tuple[str, int], float] = {}
    best: dict[tuple[str, int], Passage] = {}
    for weight, ranked in ((1.0, with_history), (ALONE_WEIGHT, alone)):
        for p in ranked:
            key = (p.doc, p.start)
            scores[key] = scores.get(key, 0.0) + weight / (DEFAULT_CONFIG.rrf_k + p.rank)
            if key not in best or p.dense_score > best[key].dense_score:
                best[key] = p
    order = sorted(scores, key=lambda key: -scores[key])[:k]
    return [replace(best[key], rank=r, score=scores[key]) for r, key in enumerate(order, start=1)]
