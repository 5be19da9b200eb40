"""The answerable gate's trade-off: in-scope report questions shown against near-miss ones refused.

    python benchmarks/gate_frontier.py PATH/piaf-dev.json --workdir DIR [--weights 10 20 40]

For each weight of the report's questions in the gate's fit (as `benchmarks/fit_confidence.py`
fits it with its default settings), fitted on each half and scored on the other, and each
threshold, prints the scored half's shares: report in-scope shown, near-miss refused, far
out-of-scope refused, PIAF shown, PIAF-on-report refused. Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fit_confidence as fc  # noqa: E402

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def main() -> None:
    parser = fc.question_parser(__doc__)
    parser.add_argument("--weights", type=float, nargs="+", default=[10.0, 20.0, 40.0])
    args = parser.parse_args()
    judged = fc.judged_questions(args)
    for weight in args.weights:
        print(f"\nGate weight of the report's questions: {weight:g}\n")
        print("| threshold | fitted on → scored on | in scope shown | near-miss refused | far refused | PIAF shown "
              "| PIAF on report refused |")
        print("|---|---|---|---|---|---|---|")
        gates = {}
        for fitted, scored in (("tune", "check"), ("check", "tune")):
            part = [j for j in judged if j.case.half == fitted]
            gates[fitted, scored] = fc.fit_logistic([j.answer.signals for j in part],
                                                    [fc.answerable_label(j) for j in part], fc.ANSWER_FEATURES,
                                                    fc.sample_weights(part, weight))
        for threshold in THRESHOLDS:
            for (fitted, scored), gate in gates.items():
                def shown(name: str, scored: str = scored, threshold: float = threshold, gate=gate) -> float:
                    return float(np.mean([gate(j.answer.signals) >= threshold for j in judged
                                          if j.case.set == name and j.case.half == scored]))
                print(f"| {threshold:.2f} | {fitted} → {scored} | {shown('report'):.2f} | "
                      f"{1 - shown('near_miss'):.2f} | {1 - shown('out_of_scope'):.2f} | {shown('piaf'):.2f} | "
                      f"{1 - shown('piaf_on_report'):.2f} |")


if __name__ == "__main__":
    main()
