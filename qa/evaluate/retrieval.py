"""Benchmarks: retrieval quality and speed on PIAF and on the report's question set.

These print figures; they assert nothing. PIAF v1.0 (etalab-ia/piaf-code, MIT licence,
(c) 2020 DINUM/Etalab): real French questions over French Wikipedia paragraphs.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qa.assistant import assistant, retrieve
from qa.chunking import Passage
from qa.citations import DEFAULT_CITATION, answer_passage, sentence_scores
from qa.french import analyze, normalize_apostrophes
from qa.index import build_index
from qa.model import encode_question

MODES = ("hybrid", "bm25", "dense")


@dataclass(frozen=True)
class Row:
    """One line of a benchmark table."""

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


def piaf_workdir(path: str | Path, root: Path) -> tuple[list[GoldQuestion], Path]:
    """PIAF's questions and an index of its articles under `root` (piaf-corpus, piaf-index), built the
    first time only: benchmarks and the answer calibration share one slow build per workdir."""
    gold = write_piaf_corpus(path, root / "piaf-corpus")
    index = root / "piaf-index"
    if not (index / "CURRENT").exists():
        build_index(root / "piaf-corpus", index)
    return gold, index


def evaluate_piaf(path: str | Path, *, workdir: str | Path | None = None, limit: int | None = None) -> list[Row]:
    """Build an index of PIAF articles and score every mode on every question."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        gold = write_piaf_corpus(path, root / "corpus", limit)
        summary = build_index(root / "corpus", root / "index")
        paragraphs = len({(g.doc, g.start) for g in gold})
        build = (f"build {summary.seconds:.1f} s, {summary.passages} passages, "
                 f"{paragraphs / summary.seconds:.1f} paragraphs/s")
        rows = [score_mode(gold, root / "index", mode) for mode in MODES]
        rows.append(Row("answer sentence, given gold paragraph", len(gold), 0, 0, 0,
                        sentence_given_paragraph(gold, root / "index"), 0, 0))
        return [Row(r.name, r.questions, r.r1, r.r5, r.mrr10, r.sentence, r.p50_ms, r.p95_ms, build) if i == 0 else r
                for i, r in enumerate(rows)]


def holds_answer(haystack: str, needles: tuple[str, ...]) -> bool:
    """Does `haystack` hold one of the gold answer texts? Case-insensitive, apostrophes alike: the one
    judge of "right" for every benchmark, the answer calibration and its tests."""
    haystack = normalize_apostrophes(haystack).casefold()
    return any(normalize_apostrophes(n).casefold() in haystack for n in needles)


def score_mode(gold: list[GoldQuestion], index: Path, mode: str) -> Row:
    """R@1, R@5, MRR@10, answer-sentence accuracy and latency of one retrieval mode."""
    return score_questions(mode, gold, lambda question: retrieve(question, k=10, index=index, mode=mode))


def score_questions(name: str, gold: list[GoldQuestion], run: Callable[[str], list[Passage]]) -> Row:
    """Score PIAF questions: a hit is right when it lies inside the question's gold paragraph."""
    return score_cases(name, [(g.question, _inside(g), g.answers) for g in gold], run)


def _inside(g: GoldQuestion) -> Callable[[Passage], bool]:
    return lambda h: h.doc == g.doc and g.start <= h.start and h.end <= g.end


Case = tuple[str, Callable[[Passage], bool], tuple[str, ...]]  # question, is this hit right?, gold answers


def score_cases(name: str, cases: list[Case], run: Callable[[str], list[Passage]]) -> Row:
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
    cases = [(item["q"], _holding(tuple(item["gold"])), tuple(item["gold"])) for item in questions]
    return [score_cases("report hybrid", cases, lambda question: retrieve(question, k=10, index=index))]


def _holding(gold: tuple[str, ...]) -> Callable[[Passage], bool]:
    return lambda h: holds_answer(h.text, gold)


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
