"""Benchmark of `ask()`: abstention on answerable and unanswerable questions, and follow-ups.

Positives: the report's dev questions (against the report) and PIAF questions (against a PIAF
index). Negatives: the dev set's out-of-scope questions and the same PIAF questions asked of the
report, which is about Mali and answers none of them. Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from qa.evaluate import _contains, write_piaf_corpus


def evaluate_answers(dev_path: str | Path, piaf_path: str | Path, *, corpus: str | Path = "corpus",
                     workdir: str | Path | None = None, follow_ups: str | Path | None = None) -> str:
    """A Markdown report: share answered / abstained per question set, follow-up accuracy."""
    from qa import ask, build_index

    dev = json.loads(Path(dev_path).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        gold = write_piaf_corpus(piaf_path, root / "piaf-corpus")
        if not (root / "piaf-index" / "CURRENT").exists():
            build_index(root / "piaf-corpus", root / "piaf-index")
        build_index(corpus, root / "report-index")
        report, piaf = root / "report-index", root / "piaf-index"

        def answered(questions: list[str], index: Path) -> float:
            return sum(not ask(q, index=index).abstained for q in questions) / len(questions)

        rows = [
            ("positives: report dev questions", len(dev["questions"]),
             answered([q["q"] for q in dev["questions"]], report)),
            ("positives: PIAF questions, PIAF index", len(gold), answered([g.question for g in gold], piaf)),
            ("negatives: out-of-scope questions, report", len(dev["out_of_scope"]),
             answered(dev["out_of_scope"], report)),
            ("negatives: PIAF questions, report index", len(gold), answered([g.question for g in gold], report)),
        ]
        cases = list(dev.get("follow_ups", []))
        if follow_ups:
            cases += json.loads(Path(follow_ups).read_text(encoding="utf-8"))["cases"]
        right = sum(_contains(ask(c["q"], c["history"], index=report).passages[0].text, tuple(c["gold"]))
                    for c in cases)
    lines = ["| question set | questions | answered | abstained |", "|---|---|---|---|"]
    lines += [f"| {name} | {n} | {a:.1%} | {1 - a:.1%} |" for name, n, a in rows]
    for label, part in (("all positives", rows[:2]), ("all negatives", rows[2:])):
        n = sum(r[1] for r in part)
        a = sum(r[1] * r[2] for r in part) / n
        lines.append(f"| **{label}** | {n} | {a:.1%} | {1 - a:.1%} |")
    lines.append("")
    lines.append(f"Follow-ups: {right}/{len(cases)} with the gold excerpt in the top passage.")
    return "\n".join(lines)
