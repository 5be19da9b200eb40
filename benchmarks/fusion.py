"""Fusion variants on PIAF, tuned on even-numbered articles and checked on odd ones.

Usage: python benchmarks/fusion.py PATH/piaf-dev.json [--workdir DIR]
Prints R@1 / R@5 / MRR@10 and answer-sentence accuracy for each variant on both halves.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from qa import build_index
from qa.evaluate import _contains, write_piaf_corpus
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
    "answer sentence: lexical 0": dataclasses.replace(DEFAULT_CONFIG, sentence_lexical_weight=0.0),
    "answer sentence: lexical 0.4": dataclasses.replace(DEFAULT_CONFIG, sentence_lexical_weight=0.4),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--workdir", default="/tmp/qa-piaf")
    args = parser.parse_args()
    root = Path(args.workdir)
    gold = write_piaf_corpus(args.path, root / "corpus")
    if not (root / "index" / "CURRENT").exists():
        build_index(root / "corpus", root / "index")
    idx = load_index(root / "index")
    halves = {"tune": [g for g in gold if int(g.doc[:4]) % 2 == 0], "check": [g for g in gold if int(g.doc[:4]) % 2]}
    print("| variant | half | R@1 | R@5 | MRR@10 | sentence | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, config in VARIANTS.items():
        for half, qs in halves.items():
            r1 = r5 = mrr = sent = 0.0
            times = []
            for g in qs:
                t0 = time.perf_counter()
                hits = search(idx, g.question, 10, config=config)
                times.append((time.perf_counter() - t0) * 1000)
                ranks = [h.rank for h in hits if h.doc == g.doc and g.start <= h.start and h.end <= g.end]
                if ranks:
                    r1 += ranks[0] == 1
                    r5 += ranks[0] <= 5
                    mrr += 1 / ranks[0]
                sent += _contains(hits[0].sentence.text, g.answers)
            n = len(qs)
            p50, p95 = statistics.median(times), statistics.quantiles(times, n=20)[18]
            print(f"| {name} | {half} ({n}) | {r1/n:.3f} | {r5/n:.3f} | {mrr/n:.3f} | {sent/n:.3f} | {p50:.1f} | {p95:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
