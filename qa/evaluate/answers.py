"""`qa eval answers`: how often `ask()` answers, how often its answer is right, how honest its confidence is.

Question sets, each asked of the index it belongs to:
- PIAF questions over a PIAF index (PIAF v1.0, etalab-ia/piaf-code, MIT): a quote is right when
  its sentence holds a gold answer text, as `qa eval piaf` judges the answer sentence;
- the report's in-scope questions (`tests/data/mali-answers.json`, and the dev set `mali-dev.json`):
  right when the sentence holds a gold excerpt;
- questions nothing answers: near-miss questions on the report's subject, far out-of-scope ones,
  and the PIAF questions asked of the report.

Every set is split in two halves: PIAF by article (even articles tune, odd check), the others by
position. `benchmarks/fit_confidence.py` fits on one half and scores the other, both ways (the
figures to trust: its two-fold table), then ships a file fitted on both: `qa eval answers` scores
that file, so on these questions its figures are in-sample (`--fit tune` keeps "check" held out).
The same collected cases feed both, so the fit and the benchmark judge exactly what `ask` does.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qa.answer import SIGNAL_DEPTH, Answer
from qa.assistant import ask
from qa.citations import answer_passage
from qa.evaluate.retrieval import holds_answer, piaf_workdir
from qa.index import build_index

Half = Literal["tune", "check", "all"]
ECE_BINS = 10


@dataclass(frozen=True)
class Case:
    """One question asked of one index, and what a right quote would hold."""

    set: str  # "piaf", "report", "near_miss", "out_of_scope", "piaf_on_report"
    question: str
    index: Path
    half: str  # "tune" or "check"
    answers: tuple[str, ...] = ()  # texts a right sentence holds; () when nothing in the index answers
    doc: str = ""  # PIAF: the gold paragraph, in document offsets
    start: int = 0
    end: int = 0


@dataclass(frozen=True)
class Judged:
    """A case, what `ask` said, and whether its quote (the one it would give) is right."""

    case: Case
    answer: Answer
    right: bool  # the sentence `ask` quotes, or would quote when it abstains, holds a gold answer
    passage_right: tuple[bool, ...]  # each returned passage holds the answer


def _half(n: int) -> str:
    return "tune" if n % 2 == 0 else "check"


def build_cases(piaf_path: str | Path, root: Path, *, sets: str | Path | None = None,
                dev: str | Path | None = None, corpus: str | Path = "corpus") -> list[Case]:
    """Write and index the PIAF corpus and the report under `root` (reused when present) and list the cases."""
    gold, piaf = piaf_workdir(piaf_path, root)
    report = root / "report-index"
    build_index(corpus, report)  # incremental: nothing re-encoded when the report is unchanged
    articles = {doc: n for n, doc in enumerate(dict.fromkeys(g.doc for g in gold))}
    cases = [Case("piaf", g.question, piaf, _half(articles[g.doc]), g.answers, g.doc, g.start, g.end) for g in gold]
    cases += [Case("piaf_on_report", g.question, report, _half(articles[g.doc])) for g in gold]
    for path in (sets, dev):
        if path is None:
            continue
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for n, item in enumerate(data.get("in_scope", data.get("questions", []))):
            cases.append(Case("report", item["q"], report, _half(n), tuple(item["gold"])))
        for name in ("near_miss", "out_of_scope"):
            cases += [Case(name, q, report, _half(n)) for n, q in enumerate(data.get(name, []))]
    return cases


def judge(cases: Iterable[Case]) -> list[Judged]:
    """Ask every case of its index and judge the quote and each passage."""
    out = []
    for c in cases:
        # k = the depth ask's signals see, so the passages returned are exactly the ones they saw (the
        # fit computes each passage's signals from them); the answer is chosen among the first three either way
        a = ask(c.question, index=c.index, k=SIGNAL_DEPTH)
        quoted = answer_passage(list(a.passages)) if a.passages else None  # what ask quotes, or would
        right = quoted is not None and bool(c.answers) and holds_answer(quoted.sentence.text, c.answers)
        if c.doc:
            passages = tuple(p.doc == c.doc and c.start <= p.start and p.end <= c.end for p in a.passages)
        else:
            passages = tuple(bool(c.answers) and holds_answer(p.text, c.answers) for p in a.passages)
        out.append(Judged(c, a, right, passages))
    return out


def calibration_error(judged: list[Judged], bins: int = ECE_BINS) -> float:
    """Expected calibration error of `confidence`: |accuracy - mean confidence| per equal-width bin,
    weighted by the bin's share of the questions."""
    scored = [(j.answer.confidence, j.right) for j in judged if j.answer.confidence is not None]
    if not scored:
        return float("nan")
    total = 0.0
    for b in range(bins):
        inside = [(p, r) for p, r in scored if b / bins <= p < (b + 1) / bins or (b == bins - 1 and p == 1.0)]
        if inside:
            accuracy = sum(r for _, r in inside) / len(inside)
            total += abs(accuracy - sum(p for p, _ in inside) / len(inside)) * len(inside)
    return total / len(scored)


@dataclass(frozen=True)
class SetFigures:
    """One line of the table."""

    name: str
    questions: int
    answer: float  # share given as "answer"
    precision: float | None  # share of those whose quote is right (None: nothing to be right about)
    answer_or_possible: float
    ece: float | None  # over the questions answered or hedged

    @property
    def none(self) -> float:
        return 1 - self.answer_or_possible


def figures(name: str, judged: list[Judged]) -> SetFigures:
    n = len(judged)
    answered = [j for j in judged if j.answer.outcome == "answer"]
    shown = [j for j in judged if j.answer.outcome != "none"]
    if not any(j.case.answers for j in judged):  # nothing in the index answers them: nothing to be right about
        return SetFigures(name, n, len(answered) / n, None, len(shown) / n, None)
    precision = sum(j.right for j in answered) / len(answered) if answered else float("nan")
    ece = calibration_error(shown) if shown else None
    return SetFigures(name, n, len(answered) / n, precision, len(shown) / n, ece)


SET_NAMES = {
    "piaf": "PIAF questions, PIAF index",
    "report": "report questions, in scope",
    "near_miss": "near-miss questions, report",
    "out_of_scope": "far out-of-scope questions, report",
    "piaf_on_report": "PIAF questions, report index",
}


def table(judged: list[Judged], half: Half = "check") -> str:
    """The Markdown table `qa eval answers` prints."""
    chosen = [j for j in judged if half == "all" or j.case.half == half]
    lines = [
        f"Half: {half}.",
        "",
        "| question set | questions | `answer` | precision of `answer` | `answer`+`possible` | `none` | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in SET_NAMES.items():
        part = [j for j in chosen if j.case.set == key]
        if not part:
            continue
        f = figures(label, part)
        precision = "–" if f.precision is None else f"{f.precision:.3f}"
        ece = "–" if f.ece is None else f"{f.ece:.3f}"
        lines.append(f"| {label} | {f.questions} | {f.answer:.3f} | {precision} | {f.answer_or_possible:.3f} | "
                     f"{f.none:.3f} | {ece} |")
    return "\n".join(lines)


def follow_up_accuracy(follow_ups: str | Path, index: Path) -> tuple[int, int]:
    """Follow-up questions whose first passage holds a gold excerpt: (right, total)."""
    data = json.loads(Path(follow_ups).read_text(encoding="utf-8"))
    cases = data.get("cases", data.get("follow_ups", []))  # tests/data/follow-ups.json, or mali-dev.json
    right = sum(holds_answer(ask(c["q"], c["history"], index=index).passages[0].text, tuple(c["gold"])) for c in cases)
    return right, len(cases)


def evaluate_answers(piaf_path: str | Path, *, sets: str | Path | None = None, dev: str | Path | None = None,
                     corpus: str | Path = "corpus", workdir: str | Path | None = None,
                     follow_ups: str | Path | None = None, half: Half = "check") -> str:
    """The Markdown report of `qa eval answers`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        judged = judge(build_cases(piaf_path, root, sets=sets, dev=dev, corpus=corpus))
        out = table(judged, half)
        if follow_ups:
            right, total = follow_up_accuracy(follow_ups, root / "report-index")
            out += f"\n\nFollow-ups: {right}/{total} with the gold excerpt in the top passage."
    return out
