"""`ask()`: an answer to a question, how sure it is, or an honest "not in the report"; follow-ups resolved.

No text is generated. The answer is the best answering sentence of the first passages (usually
the first), quoted verbatim, with a calibrated confidence (`qa.confidence`) that decides how it is
given: «Réponse», «Réponse possible — à vérifier», or no answer at all (the closest passages are
still offered, marked as such).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from qa.citations import Passage, Sentence, answer_passage
from qa.confidence import Calibration, Outcome, calibration_for, outcome, relevance_label, rule_outcome
from qa.french import analyze, normalize_apostrophes, words
from qa.index import load_index
from qa.search import DEFAULT_CONFIG, MAX_QUESTION_CHARS, check_k, check_question, is_text, search
from qa.signals import answer_signals, passage_signals, question_signals

NO_ANSWER = "Je n'ai pas trouvé de réponse à cette question dans le rapport."
OUTCOME_LABELS = {"answer": "Réponse", "possible": "Réponse possible — à vérifier", "none": "Pas de réponse"}
SIGNAL_DEPTH = 5  # passages the confidence signals look at, whatever k the caller shows

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
    """What `ask` returns: the quoted sentence and its passage, how sure the engine is, or an abstention.

    `outcome` is "answer" (likely right: shown as «Réponse»), "possible" (shown, hedged: «à vérifier»)
    or "none" (no answer: `sentence` is None, the passages are only the closest ones); `abstained` is
    `outcome == "none"`. `confidence` is the calibrated probability that the quoted sentence (or,
    for "none", the sentence that would have been quoted) answers; `relevance` holds, for each
    passage, the calibrated probability that it holds the answer. Both are None when the model has
    no calibration file (`calibration == "rule"`: see `qa.confidence.rule_outcome`).
    """

    question: str
    abstained: bool
    passages: tuple[Passage, ...]
    sentence: Sentence | None  # verbatim, document offsets; None when abstained
    passage: Passage | None  # the passage holding `sentence`
    message: str  # French text for the user: the sentence, or NO_ANSWER
    query: str  # what was searched: the question, or it after the questions it leans on
    follow_up: bool
    outcome: Outcome | None = None  # derived from `abstained` when not given
    confidence: float | None = None
    relevance: tuple[float | None, ...] = ()
    calibration: str = "rule"  # the model whose calibration file was used, or "rule"
    signals: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)  # the answer model's inputs

    def __post_init__(self) -> None:
        if self.outcome is None:
            object.__setattr__(self, "outcome", "none" if self.abstained else "answer")
        if self.outcome not in ("answer", "possible", "none") or self.abstained != (self.outcome == "none"):
            raise ValueError(f"outcome {self.outcome!r} does not fit abstained={self.abstained}")
        if not self.relevance:  # one entry per passage, always: faces index it alongside `passages`
            object.__setattr__(self, "relevance", (None,) * len(self.passages))
        if len(self.relevance) != len(self.passages):
            raise ValueError(f"{len(self.relevance)} relevance values for {len(self.passages)} passages")

    @property
    def fitted(self) -> Calibration | None:
        """The calibration this answer's numbers come from (its thresholds name the levels); None
        under the fallback rule."""
        return None if self.calibration == "rule" else calibration_for(self.calibration)

    @property
    def relevance_levels(self) -> tuple[str | None, ...]:
        """Each passage's level, "high", "medium" or "low", from its calibrated relevance and the
        thresholds fitted with it; None throughout under the fallback rule."""
        return tuple(relevance_label(self.fitted, r) for r in self.relevance)

    @property
    def label(self) -> str:
        """The outcome in French: «Réponse», «Réponse possible — à vérifier» or «Pas de réponse»."""
        return OUTCOME_LABELS[self.outcome]

    def to_dict(self) -> dict:
        """The JSON face shared by `qa ask --json` and the HTTP API's /ask."""
        return {
            "question": self.question,
            "outcome": self.outcome,
            "label": self.label,
            "confidence": self.confidence,
            "message": self.message,
            "sentence": None if self.sentence is None else asdict(self.sentence),
            "answer_rank": None if self.passage is None else self.passage.rank,
            "calibration": self.calibration,
            "query": self.query,
            "follow_up": self.follow_up,
            "passages": [{**p.to_dict(), "relevance": r} for p, r in zip(self.passages, self.relevance, strict=True)],
        }


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
    depth = max(k, SIGNAL_DEPTH)
    if follow_up:
        wide = max(depth, FOLLOW_UP_DEPTH)
        ranked = _fuse(search(idx, query, wide, docs=docs), search(idx, question, wide, docs=docs), depth)
    else:
        ranked = search(idx, query, depth, docs=docs)
    passages = ranked[:k]
    if not passages:
        return Answer(question, True, (), None, None, NO_ANSWER, query, follow_up, "none", 0.0)
    # The answering sentence may sit in a passage just below the first. A follow-up's passages come
    # from two searches whose sentence scores are not comparable: its first passage answers.
    chosen = passages[0] if follow_up else answer_passage(passages)
    q = question_signals(idx, query)
    signals = answer_signals(q, chosen, ranked)
    calibration = calibration_for(idx.model_id)
    if calibration is None:
        confidence, relevance, result = None, (None,) * len(passages), rule_outcome(passages[0], set(q.terms))
    else:
        confidence = calibration.answer(signals)
        relevance = tuple(calibration.passage(passage_signals(q, p, ranked)) for p in passages)
        result = outcome(calibration, confidence, calibration.answerable(signals))
    none = result == "none"
    return Answer(
        question=question,
        abstained=none,
        passages=tuple(passages),
        sentence=None if none else chosen.sentence,
        passage=None if none else chosen,
        message=NO_ANSWER if none else chosen.sentence.text,
        query=query,
        follow_up=follow_up,
        outcome=result,
        confidence=confidence,
        relevance=relevance,
        calibration="rule" if calibration is None else calibration.model,
        signals=signals,
    )


def user_questions(history: Sequence[str | Mapping] | None) -> list[str]:
    """The user's earlier questions, from plain strings or chat messages. Turns that could not have
    been asked (over MAX_QUESTION_CHARS, or not valid Unicode text) are ignored rather than searched."""
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
        if text.strip() and len(text) <= MAX_QUESTION_CHARS and is_text(text):
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
