"""Which sentence `ask` quotes: answer-sentence variants on PIAF, chosen on the even-numbered questions
and checked on the odd ones. The ranking is the same for every variant (R@k does not move).

Usage: python benchmarks/answer_sentence.py PATH/piaf-dev.json [--workdir DIR]
Prints a table; asserts nothing. PIAF v1.0 (etalab-ia/piaf-code, MIT licence, (c) 2020 DINUM/Etalab).
A question counts when the quoted sentence contains a gold answer text.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from qa import build_index
from qa.citations import CitationConfig, answer_passage
from qa.evaluate.retrieval import holds_answer, write_piaf_corpus
from qa.index import load_index
from qa.search import DEFAULT_CONFIG, SearchConfig, search

VARIANTS = {
    "first passage, cosine + 0.2 x keyword share (before)": SearchConfig(
        citation=CitationConfig(sentence_lexical_weight=0.2, answer_depth=1)
    ),
    "first passage, cosine + 0.1 x keyword share": SearchConfig(citation=CitationConfig(answer_depth=1)),
    "first passage, cosine only": SearchConfig(citation=CitationConfig(sentence_lexical_weight=0.0, answer_depth=1)),
    "top 2 passages, + 0.1 x fused-score ratio": SearchConfig(citation=CitationConfig(answer_depth=2)),
    "top 3 passages, no fused-score ratio": SearchConfig(citation=CitationConfig(answer_passage_weight=0.0)),
    "**top 3 passages, + 0.1 x fused-score ratio (kept)**": DEFAULT_CONFIG,
    "top 3 passages, + 0.3 x fused-score ratio": SearchConfig(citation=CitationConfig(answer_passage_weight=0.3)),
    "top 5 passages, + 0.1 x fused-score ratio": SearchConfig(citation=CitationConfig(answer_depth=5)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("piaf")
    parser.add_argument("--workdir", help="kept between runs: the index is reused")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        gold = write_piaf_corpus(args.piaf, root / "corpus")
        build_index(root / "corpus", root / "index")
        idx = load_index(root / "index")
        print("| variant | even (tune) | odd (check) | all |")
        print("|---|---|---|---|")
        for name, config in VARIANTS.items():
            right = [0, 0]
            for n, g in enumerate(gold):
                hits = search(idx, g.question, 10, config=config)
                chosen = answer_passage(hits, config.citation)
                right[n % 2] += chosen is not None and holds_answer(chosen.sentence.text, g.answers)
            even, odd = (len(gold) + 1) // 2, len(gold) // 2
            print(f"| {name} | {right[0] / even:.3f} | {right[1] / odd:.3f} | {sum(right) / len(gold):.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
