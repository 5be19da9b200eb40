"""Where the quoted sentence goes wrong: how often it is right by the kind of thing asked for, and
whether it holds that kind; and how often the answer is in reach at all.

    python benchmarks/quote_kinds.py PATH/piaf-dev.json --workdir DIR

The kinds are `qa.signals.answer_type`'s (a date, a number, a name, or nothing in particular) and
"holds it" is the answer's own `type_mismatch` signal, read from what `ask` saw for the sentence it
quotes (or would quote). The reach lines
say for how many PIAF questions a gold answer text lies in the first passage and in the first three
(the quoted sentence cannot be right more often). These rates chose the `number_mismatch` signal
(docs/evaluation.md, "Trust"). Prints figures; asserts nothing.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fit_confidence as fc  # noqa: E402

from qa.evaluate.retrieval import holds_answer  # noqa: E402
from qa.signals import answer_type  # noqa: E402

SETS = ("piaf", "report", "near_miss")


def main() -> None:
    args = fc.question_parser(__doc__).parse_args()
    judged = fc.judged_questions(args)
    counts: dict[tuple[str, str, bool], list[int]] = collections.defaultdict(lambda: [0, 0])
    reach = collections.Counter()
    for j in judged:
        if j.case.set not in SETS or not j.answer.passages:
            continue
        kind = answer_type(j.answer.query)  # what the signals were computed from
        tally = counts[j.case.set, kind or "-", not j.answer.signals["type_mismatch"]]
        tally[0] += 1
        tally[1] += j.right
        if j.case.set == "piaf":
            reach["questions"] += 1
            reach["right"] += j.right
            for depth in (1, 3):
                reach[depth] += any(holds_answer(p.text, j.case.answers) for p in j.answer.passages[:depth])
    n = reach["questions"]
    print(f"PIAF ({n} questions): a gold answer in the first passage {reach[1] / n:.3f}, in the first three "
          f"{reach[3] / n:.3f}; the quoted sentence holds one {reach['right'] / n:.3f}\n")
    print("| set | kind asked for | the quoted sentence holds it | questions | quoted sentence right |")
    print("|---|---|---|---|---|")
    for (name, kind, held), (total, right) in sorted(counts.items()):
        print(f"| {name} | {kind} | {'yes' if held else 'no'} | {total} | {right / total:.3f} |")


if __name__ == "__main__":
    main()
