"""`qa eval`: benchmarks as a face of `qa`. They print figures; the tests assert behaviour.

- retrieval (`qa eval piaf`, `qa eval report`): R@1, R@5, MRR@10, the answer sentence, latency;
- answers (`qa eval answers`): how often `ask()` answers, how often it is right, how honest its confidence is.

PIAF v1.0 (etalab-ia/piaf-code, MIT licence, (c) 2020 DINUM/Etalab): real French questions over French
Wikipedia paragraphs. `qa eval answers` asks PIAF questions of a PIAF index, the report's in-scope
questions (`tests/data/mali-answers.json`, `mali-dev.json`) of the report (a quote is right when its
sentence holds a gold text), and questions nothing answers: near-miss, far out-of-scope, and PIAF's.

Every set is split in two halves: PIAF by article (even articles tune, odd check), the others by
position. `benchmarks/fit_confidence.py` fits on one half and scores the other, both ways (the figures
to trust), then ships a file fitted on both: on these questions `qa eval answers`'s figures are
in-sample (`--fit tune` keeps "check" held out). The fit and the benchmark judge the same cases.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from qa.answer import SIGNAL_DEPTH, Answer
from qa.assistant import ask, assistant, retrieve
from qa.chunking import Passage
from qa.citations import DEFAULT_CITATION, answer_passage, sentence_scores
from qa.french import analyze, normalize_apostrophes
from qa.index import build_index
from qa.model import encode_question

MODES = ("hybrid", "bm25", "dense")
Half = Literal["tune", "check", "all"]
ECE_BINS = 10


@dataclass(frozen=True)
class Row:
    """One line of a retrieval table."""

    name: str
    questions: int
    r1: float
    r5: float
    mrr10: float
    sentence: float | None
    p50_ms: float
    p95_ms: float
    extra: str = ""


@dataclass(frozen=True)
class GoldQuestion:
    question: str
    doc: str
    start: int
    end: int
    answers: tuple[str, ...]


def write_piaf_corpus(path: str | Path, folder: Path, limit: int | None = None) -> list[GoldQuestion]:
    """Write each PIAF article as `title\\n\\nparagraph\\n\\nparagraph…` and return its questions."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    folder.mkdir(parents=True, exist_ok=True)
    gold = []
    for n, article in enumerate(data[:limit]):
        doc = f"{n:04d}-{re.sub(r'[^A-Za-z0-9]+', '-', article['title']).strip('-')[:60]}.txt"
        text = article["title"].strip()
        for para in article["paragraphs"]:
            context = para["context"].strip()
            text += "\n\n"
            start = len(text)
            text += context
            for qa in para["qas"]:
                answers = tuple(a["text"] for a in qa["answers"])
                gold.append(GoldQuestion(qa["question"], doc, start, start + len(context), answers))
        (folder / doc).write_text(text + "\n", encoding="utf-8")
    return gold


def evaluate_piaf(path: str | Path, *, workdir: str | Path | None = None, limit: int | None = None) -> list[Row]:
    """Build an index of PIAF articles and score every mode on every question."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        index = root / "index"
        gold = write_piaf_corpus(path, root / "corpus", limit)
        summary = build_index(root / "corpus", index)
        paragraphs = len({(g.doc, g.start) for g in gold})
        build = (f"build {summary.seconds:.1f} s, {summary.passages} passages, "
                 f"{paragraphs / summary.seconds:.1f} paragraphs/s")
        cases = [(g.question, _inside(g), g.answers) for g in gold]
        rows = [score_cases(mode, cases, lambda question, mode=mode: retrieve(question, k=10, index=index, mode=mode))
                for mode in MODES]
        rows[0] = replace(rows[0], extra=build)
        rows.append(Row("answer sentence, given gold paragraph", len(gold), 0, 0, 0,
                        sentence_given_paragraph(gold, index), 0, 0))
        return rows


def holds_answer(haystack: str, needles: tuple[str, ...]) -> bool:
    """Does `haystack` hold one of the gold answer texts? Case-insensitive, apostrophes alike: the one
    judge of "right" for every benchmark, the answer calibration and its tests."""
    haystack = normalize_apostrophes(haystack).casefold()
    return any(normalize_apostrophes(n).casefold() in haystack for n in needles)


def _inside(g: GoldQuestion) -> Callable[[Passage], bool]:
    """A PIAF hit is right when it lies inside the question's gold paragraph."""
    return lambda h: h.doc == g.doc and g.start <= h.start and h.end <= g.end


Scored = tuple[str, Callable[[Passage], bool], tuple[str, ...]]  # question, is this hit right?, gold answers


def score_cases(name: str, cases: list[Scored], run: Callable[[str], list[Passage]]) -> Row:
    """The one R@k loop: run every question through `run` (its top 10, best first), rank of its first
    right hit, whether the sentence `ask` would quote holds a gold answer, and the latency."""
    run(cases[0][0])  # warm up: model and index loaded
    r1 = r5 = mrr = sent = 0.0
    times = []
    for question, right, answers in cases:
        t0 = time.perf_counter()
        hits = run(question)
        times.append((time.perf_counter() - t0) * 1000)
        ranks = [h.rank for h in hits if right(h)]
        if ranks:
            r1 += ranks[0] == 1
            r5 += ranks[0] <= 5
            mrr += 1 / ranks[0]
        sent += bool(hits) and holds_answer(answer_passage(hits).sentence.text, answers)
    n = len(cases)
    q = statistics.quantiles(times, n=20)
    return Row(name, n, r1 / n, r5 / n, mrr / n, sent / n, statistics.median(times), q[18])


def sentence_given_paragraph(gold: list[GoldQuestion], index: Path) -> float:
    """Share of questions whose chosen sentence, among the gold paragraph's, holds the answer."""
    idx = assistant(index).index
    by_doc: dict[str, list[int]] = {}
    for i, p in enumerate(idx.passages):
        by_doc.setdefault(p.doc, []).append(i)
    ok = 0
    for g in gold:
        qv = encode_question(idx.model_id, normalize_apostrophes(g.question))
        terms = set(analyze(g.question, question=True))
        best = (-1e9, "")
        for i in by_doc[g.doc]:
            p = idx.passages[i]
            if g.start <= p.start and p.end <= g.end:
                scores = sentence_scores(idx, i, qv, terms, DEFAULT_CITATION.sentence_lexical_weight)
                for text, score in zip(p.sentence_texts(), scores, strict=True):
                    best = max(best, (float(score), text))
        ok += holds_answer(best[1], g.answers)
    return ok / len(gold)


def evaluate_report(path: str | Path, *, index: str | Path = "index") -> list[Row]:
    """On the report's dev set: is a gold excerpt inside the top passage (R@1), the top 5 (R@5)?"""
    questions = json.loads(Path(path).read_text(encoding="utf-8"))["questions"]
    cases: list[Scored] = []
    for item in questions:
        gold = tuple(item["gold"])
        cases.append((item["q"], lambda h, gold=gold: holds_answer(h.text, gold), gold))
    return [score_cases("report hybrid", cases, lambda question: retrieve(question, k=10, index=index))]


def format_table(rows: list[Row]) -> str:
    """A Markdown table, ready to paste into the docs."""
    lines = [
        "| variant | questions | R@1 | R@5 | MRR@10 | answer sentence | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sentence = f"{r.sentence:.3f}" if r.sentence is not None else "–"
        if r.p50_ms:
            lines.append(f"| {r.name} | {r.questions} | {r.r1:.3f} | {r.r5:.3f} | {r.mrr10:.3f} | {sentence} | "
                         f"{r.p50_ms:.1f} | {r.p95_ms:.1f} |")
        else:
            lines.append(f"| {r.name} | {r.questions} | – | – | – | {sentence} | – | – |")
    notes = [r.extra for r in rows if r.extra]
    return "\n".join(lines + ([""] + notes if notes else []))


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
    """Write and index the PIAF corpus and the report under `root` and list the cases. Both indexes are
    reused when present (piaf-index built the first time only, report-index incremental), so the
    benchmarks and the answer calibration share one slow build per workdir."""
    gold = write_piaf_corpus(piaf_path, root / "piaf-corpus")
    piaf, report = root / "piaf-index", root / "report-index"
    if not (piaf / "CURRENT").exists():
        build_index(root / "piaf-corpus", piaf)
    build_index(corpus, report)
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
    """One line of the answers table."""

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


def evaluate_answers(piaf_path: str | Path, *, sets: str | Path | None = None, dev: str | Path | None = None,
                     corpus: str | Path = "corpus", workdir: str | Path | None = None,
                     follow_ups: str | Path | None = None, half: Half = "check") -> str:
    """The Markdown report of `qa eval answers`; with `follow_ups`, how many follow-up questions
    (tests/data/follow-ups.json, or mali-dev.json) have a gold excerpt in their first passage."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        out = table(judge(build_cases(piaf_path, root, sets=sets, dev=dev, corpus=corpus)), half)
        if follow_ups:
            data = json.loads(Path(follow_ups).read_text(encoding="utf-8"))
            cases = data.get("cases", data.get("follow_ups", []))
            right = sum(holds_answer(ask(c["q"], c["history"], index=root / "report-index").passages[0].text,
                                     tuple(c["gold"])) for c in cases)
            out += f"\n\nFollow-ups: {right}/{len(cases)} with the gold excerpt in the top passage."
    return out
