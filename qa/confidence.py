"""How sure the engine is: the probability that the quoted sentence answers, and that a passage does.

On PIAF the quoted sentence holds the answer about 6 times in 10, and questions on the report's
subject that it does not answer look, to the cosine alone, much like questions it does. So `ask`
turns the signals of `qa.signals` into probabilities with three small logistic models fitted by
`benchmarks/fit_confidence.py` on both halves of its question sets, with settings chosen by fitting
on one half and scoring the other (docs/evaluation.md, "Trust"):

- `answer` → `Answer.confidence`: P(the quoted sentence answers the question);
- `answerable`: P(one of the candidate passages holds the answer); below its threshold, no answer;
- `passage` → `Answer.relevance`: P(this passage holds the answer); the card labels come from it.

The coefficients live in `qa/calibration/<model>.json`, tied to the embedding model: cosines of
another model mean something else. A model without its file gets an explicit fallback that
never claims a firm answer (see `rule_outcome`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from qa.signals import coverage

if TYPE_CHECKING:
    from qa.citations import Passage

log = logging.getLogger(__name__)

Outcome = Literal["answer", "possible", "none"]
CALIBRATION_DIR = Path(__file__).parent / "calibration"

# The fallback rule for a model without a calibration file (the thresholds multilingual-e5-small
# used before calibration): answer only when the best passage is close to the question, or fairly
# close and holding some of its keywords; even then only "possible", never a firm "answer".
RULE_DENSE_MIN = 0.82
RULE_DENSE_WITH_KEYWORDS_MIN = 0.78
RULE_COVERAGE_MIN = 0.3


@dataclass(frozen=True)
class Logistic:
    """p = 1 / (1 + exp(-(intercept + Σ weight·signal))), on raw signals (scaling folded in at fit)."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float

    def __call__(self, signals: Mapping[str, float]) -> float:
        z = self.intercept + sum(w * signals[f] for f, w in zip(self.features, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def from_dict(cls, d: Mapping) -> Logistic:
        return cls(tuple(d["features"]), tuple(float(w) for w in d["weights"]), float(d["intercept"]))

    def to_dict(self) -> dict:
        return {"features": list(self.features), "weights": list(self.weights), "intercept": self.intercept}


@dataclass(frozen=True)
class Thresholds:
    """Where probabilities become outcomes and labels; chosen by rule at fit time (docs/evaluation.md, "Trust")."""

    answer: float  # confidence at or above which the sentence is given as «Réponse»
    possible: float  # P(answerable) below which the engine says it has no answer
    relevance_high: float  # card labels: «pertinence élevée» at or above…
    relevance_medium: float  # …«moyenne» at or above, else «faible»


@dataclass(frozen=True)
class Calibration:
    """The fitted models and thresholds for one embedding model."""

    model: str
    answer: Logistic  # P(the quoted sentence answers)
    answerable: Logistic  # P(one of the candidate passages holds the answer): says "none" when low
    passage: Logistic  # P(this passage holds the answer): the card labels
    thresholds: Thresholds

    @classmethod
    def from_dict(cls, d: Mapping) -> Calibration:
        return cls(d["model"], Logistic.from_dict(d["answer"]), Logistic.from_dict(d["answerable"]),
                   Logistic.from_dict(d["passage"]), Thresholds(**d["thresholds"]))

    def to_dict(self) -> dict:
        return {"model": self.model, "answer": self.answer.to_dict(), "answerable": self.answerable.to_dict(),
                "passage": self.passage.to_dict(), "thresholds": vars(self.thresholds)}


def calibration_file(model_id: str) -> Path:
    """Where the calibration of `model_id` lives: one JSON file per model, named after it."""
    return CALIBRATION_DIR / (re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model_id).name) + ".json")


@functools.lru_cache(maxsize=8)
def calibration_for(model_id: str) -> Calibration | None:
    """The calibration fitted for `model_id`, or None (the fallback rule applies, with a warning)."""
    path = calibration_file(model_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("No calibration for model %s (%s): answers fall back to the uncalibrated rule", model_id, path)
        return None
    if data.get("model") != model_id:
        log.warning("%s calibrates %r, not %r: answers fall back to the uncalibrated rule", path, data.get("model"),
                    model_id)
        return None
    return Calibration.from_dict(data)


# --- outcomes ------------------------------------------------------------------------------------

def outcome(calibration: Calibration, confidence: float, answerable: float) -> Outcome:
    """«none» when no candidate passage is likely to hold the answer; «answer» when the quoted
    sentence is likely right; «possible» in between (shown, but hedged)."""
    if answerable < calibration.thresholds.possible:
        return "none"
    return "answer" if confidence >= calibration.thresholds.answer else "possible"


def rule_outcome(top: Passage, terms: set[str]) -> Outcome:
    """The uncalibrated fallback: «possible» when the first passage is close to the question (cosine
    ≥ 0.82, or ≥ 0.78 with ≥ 30 % of its keywords), else «none». Never «answer»: without a fitted
    calibration nothing supports a firm one."""
    if top.dense_score >= RULE_DENSE_MIN:
        return "possible"
    near = top.dense_score >= RULE_DENSE_WITH_KEYWORDS_MIN
    return "possible" if near and coverage(terms, f"{top.title} {top.section} {top.text}") >= RULE_COVERAGE_MIN \
        else "none"


def relevance_label(calibration: Calibration | None, relevance: float | None) -> str | None:
    """"high", "medium" or "low" from a calibrated passage probability; None without calibration."""
    if calibration is None or relevance is None:
        return None
    if relevance >= calibration.thresholds.relevance_high:
        return "high"
    return "medium" if relevance >= calibration.thresholds.relevance_medium else "low"
