"""`answer()`: an answer to a question, how sure it is, or an honest "not in the report"; follow-ups resolved.

No text is generated. The answer is the best answering sentence of the first passages (usually
the first), quoted verbatim, with a calibrated confidence (`qa.confidence`) that decides how it is
given: «Réponse», «Réponse possible — à vérifier», or no answer at all (the closest passages are
still offered, marked as such).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

from qa.chunking import Passage, Sentence
from qa.citations import answer_passage
from qa.confidence import Calibration, Outcome, calibration_for, outcome, relevance_label, rule_outcome
from qa.french import is_follow_up
from qa.index import Index
from qa.search import DEFAULT_CONFIG, MAX_QUESTION_CHARS, is_text, search
from qa.signals import answer_signals, passage_signals, question_signals

NO_ANSWER = "Je n'ai pas trouvé de réponse à cette question dans le rapport."
OUTCOME_LABELS = {"answer": "Réponse", "possible": "Réponse possible — à vérifier", "none": "Pas de réponse"}
SIGNAL_DEPTH = 5  # passages the confidence signals look at, whatever k the caller shows

MAX_HISTORY = 3
FOLLOW_UP_DEPTH = 10  # passages fused from each of the two searches
ALONE_WEIGHT = 0.75  # the follow-up alone lacks its subject but carries its new focus ("l'armée")


@dataclass(frozen=True)
class Answer:
    """What `ask` returns: the quoted sentence's passage, how sure the engine is, or an abstention.

    `outcome` is "answer" (likely right: shown as «Réponse»), "possible" (shown, hedged: «à vérifier»)
    or "none" (no answer: `passage` is None, the passages are only the closest ones). `confidence` is
    the calibrated probability that the quoted sentence (or, for "none", the sentence that would have
    been quoted) answers; `relevance` holds, for each passage, the calibrated probability that it holds
    the answer. Both are None when the model has no calibration file (`calibration == "rule"`: see
    `qa.confidence.rule_outcome`). `stale`: the index was older than its corpus when it answered.
    """

    question: str
    outcome: Outcome
    passages: tuple[Passage, ...]
    passage: Passage | None  # the passage holding the quoted sentence; None for "none"
    query: str  # what was searched: the question, or it after the questions it leans on
    model: str  # the embedding model of the index that answered
    confidence: float | None = None
    relevance: tuple[float | None, ...] = ()
    calibration: str = "rule"  # the model whose calibration file was used, or "rule"
    stale: bool = False
    signals: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)  # the answer model's inputs

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOME_LABELS or (self.passage is None) != (self.outcome == "none"):
            raise ValueError(f"outcome {self.outcome!r} does not fit passage={self.passage!r}")
        if not self.relevance:  # one entry per passage, always: faces index it alongside `passages`
            object.__setattr__(self, "relevance", (None,) * len(self.passages))
        if len(self.relevance) != len(self.passages):
            raise ValueError(f"{len(self.relevance)} relevance values for {len(self.passages)} passages")

    @property
    def abstained(self) -> bool:
        return self.outcome == "none"

    @property
    def sentence(self) -> Sentence | None:
        """The quoted sentence, verbatim, in document offsets; None when abstained."""
        return None if self.passage is None else self.passage.sentence

    @property
    def message(self) -> str:
        """French text for the user: the quoted sentence, or NO_ANSWER."""
        return NO_ANSWER if self.sentence is None else self.sentence.text

    @property
    def follow_up(self) -> bool:
        """The question leaned on earlier ones: they were searched with it."""
        return self.query != self.question

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
    def relevance_thresholds(self) -> tuple[float, float] | None:
        """The calibrated relevance from which a passage's level is "high", then "medium" (what the
        app's badges explain); None under the fallback rule."""
        fitted = self.fitted
        return None if fitted is None else (fitted.thresholds.relevance_high, fitted.thresholds.relevance_medium)

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
            "stale": self.stale,
            "passages": [{**p.to_dict(), "relevance": r} for p, r in zip(self.passages, self.relevance, strict=True)],
        }


def answer(
    idx: Index,
    question: str,
    history: Sequence[str | Mapping] | None = (),
    *,
    k: int = 3,
    docs: list[str] | None = None,
) -> Answer:
    """Answer `question` from a loaded index (`qa.Assistant.ask` checks the inputs and holds the index),
    resolving a follow-up with the previous user questions (`history`: strings or chat messages)."""
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
    base = {"question": question, "query": query, "model": idx.model_id, "stale": idx.freshness.stale}
    if not passages:
        return Answer(outcome="none", passages=(), passage=None, confidence=0.0, **base)
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
    return Answer(
        outcome=result, passages=tuple(passages), passage=None if result == "none" else chosen,
        confidence=confidence, relevance=relevance, signals=signals,
        calibration="rule" if calibration is None else calibration.model, **base,
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
