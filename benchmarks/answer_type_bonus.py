"""Would answer-type agreement choose better answer sentences? (Issue 15: keep it only if it generalises.)

    python benchmarks/answer_type_bonus.py PATH/piaf-dev.json --workdir DIR

For each PIAF question, the candidate sentences are those `ask` weighs (the first three passages'),
scored as `qa.citations.answer_passage` scores them plus a bonus when the sentence holds the kind of
thing the question asks for (`qa.signals.answer_type` / `holds_type`: a date, a number, a name).
Prints the share of quoted sentences holding a gold answer per bonus, on each half (even articles:
tune; odd: check). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.citations import DEFAULT_CITATION, sentence_scores  # noqa: E402
from qa.evaluate.retrieval import holds_answer, piaf_workdir  # noqa: E402
from qa.french import analyze, normalize_apostrophes  # noqa: E402
from qa.index import load_index  # noqa: E402
from qa.model.query_encoder import encode_question  # noqa: E402
from qa.search import search  # noqa: E402
from qa.signals import answer_type, holds_type  # noqa: E402

BONUSES = (0.0, 0.02, 0.05, 0.1, 0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("piaf")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)

    root = Path(args.workdir)
    gold, piaf_index = piaf_workdir(args.piaf, root)
    idx = load_index(piaf_index)
    row = {(p.doc, p.start): i for i, p in enumerate(idx.passages)}
    articles = {doc: n for n, doc in enumerate(dict.fromkeys(g.doc for g in gold))}
    right = {h: dict.fromkeys(BONUSES, 0) for h in ("tune", "check")}
    count = {"tune": 0, "check": 0}
    config = DEFAULT_CITATION
    for g in gold:
        half = "tune" if articles[g.doc] % 2 == 0 else "check"
        count[half] += 1
        passages = search(idx, g.question, 5)
        kind = answer_type(g.question)
        qv = encode_question(idx.model_id, normalize_apostrophes(g.question))
        terms = set(analyze(g.question, question=True))
        candidates = []
        for p in passages[: config.answer_depth]:
            i = row[(p.doc, p.start)]
            ip = idx.passages[i]
            scores = sentence_scores(idx, i, qv, terms, config.sentence_lexical_weight)
            for (s, e), score in zip(ip.sentences, scores, strict=True):
                text = ip.text[s - ip.start : e - ip.start]
                base = float(score) + config.answer_passage_weight * p.score / passages[0].score
                candidates.append((base, kind is not None and holds_type(text, kind), text))
        for bonus in BONUSES:
            best = max(candidates, key=lambda c: c[0] + bonus * c[1])
            right[half][bonus] += holds_answer(best[2], g.answers)
    print("| bonus | answer sentence, tune | answer sentence, check |")
    print("|---|---|---|")
    for bonus in BONUSES:
        tune, check = right["tune"][bonus] / count["tune"], right["check"][bonus] / count["check"]
        print(f"| {bonus} | {tune:.3f} | {check:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
