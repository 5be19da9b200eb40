"""Fusion variants on PIAF, tuned on even-numbered articles and checked on odd ones.

Usage: python benchmarks/fusion.py PATH/piaf-dev.json [--workdir DIR]
Prints R@1 / R@5 / MRR@10 and answer-sentence accuracy for each variant on both halves.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from qa.citations import CitationConfig
from qa.evaluate.retrieval import piaf_workdir, score_questions
from qa.index import load_index
from qa.search import DEFAULT_CONFIG, search

VARIANTS = {
    "default: rrf k=10, sentence max-sim 1.0, lexical 0.2": DEFAULT_CONFIG,
    "no sentence max-sim": dataclasses.replace(DEFAULT_CONFIG, sentence_weight=0.0),
    "sentence max-sim 0.5": dataclasses.replace(DEFAULT_CONFIG, sentence_weight=0.5),
    "rrf k=5": dataclasses.replace(DEFAULT_CONFIG, rrf_k=5),
    "rrf k=30": dataclasses.replace(DEFAULT_CONFIG, rrf_k=30),
    "bm25 x1.3": dataclasses.replace(DEFAULT_CONFIG, keyword_weight=1.3),
    "dense x1.3": dataclasses.replace(DEFAULT_CONFIG, dense_weight=1.3),
    "answer sentence: lexical 0": dataclasses.replace(
        DEFAULT_CONFIG, citation=CitationConfig(sentence_lexical_weight=0.0)
    ),
    "answer sentence: lexical 0.4": dataclasses.replace(
        DEFAULT_CONFIG, citation=CitationConfig(sentence_lexical_weight=0.4)
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--workdir", default="/tmp/qa-piaf")
    args = parser.parse_args()
    root = Path(args.workdir)
    gold, piaf_index = piaf_workdir(args.path, root)
    idx = load_index(piaf_index)
    halves = {"tune": [g for g in gold if int(g.doc[:4]) % 2 == 0], "check": [g for g in gold if int(g.doc[:4]) % 2]}
    print("| variant | half | R@1 | R@5 | MRR@10 | sentence | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, config in VARIANTS.items():
        for half, qs in halves.items():
            r = score_questions(name, qs, lambda question, config=config: search(idx, question, 10, config=config))
            print(f"| {name} | {half} ({r.questions}) | {r.r1:.3f} | {r.r5:.3f} | {r.mrr10:.3f} | {r.sentence:.3f} "
                  f"| {r.p50_ms:.1f} | {r.p95_ms:.1f} |", flush=True)

if __name__ == "__main__":
    main()
