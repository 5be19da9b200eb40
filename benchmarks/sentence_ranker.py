"""Could a learned ranker choose the answer sentence better than `qa.citations`' rule?

    python benchmarks/sentence_ranker.py PATH/piaf-dev.json --workdir DIR

For every PIAF question, every sentence of the first three passages is a candidate, described by
its cosine to the question, its share of the question's keywords (plain and IDF-weighted), its
passage's rank and fused score over the first's, its length, position, answer-type agreement and
its neighbours' cosines. A logistic regression (scikit-learn) is fitted on the even articles (tune)
and picks the best candidate on both halves, against the shipped rule: cosine + 0.1 x keyword share
+ 0.1 x passage score ratio. Prints the share of questions whose chosen sentence holds the answer.
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.citations import sentence_scores  # noqa: E402
from qa.evaluate.retrieval import holds_answer, piaf_workdir  # noqa: E402
from qa.french import analyze, normalize_apostrophes  # noqa: E402
from qa.index import load_index  # noqa: E402
from qa.model import encode_question  # noqa: E402
from qa.search import search  # noqa: E402
from qa.signals import answer_type, holds_type  # noqa: E402

FEATURES = ("cos", "lex", "idf_lex", "ratio", "log_len", "typed", "type_asked", "first", "position", "below_best",
            "prev_cos", "next_cos", "rank0", "rank1")


def candidates(idx, question: str, answers: tuple[str, ...], idf) -> list[dict]:
    """Every sentence of the first three passages, with its features and whether it holds the answer."""
    passages = search(idx, question, 5)
    where = {(p.doc, p.start): i for i, p in enumerate(idx.passages)}
    query_vec = encode_question(idx.model_id, normalize_apostrophes(question))
    terms = set(analyze(question, question=True))
    kind = answer_type(normalize_apostrophes(question))
    weight = sum(idf(t) for t in terms) or 1.0
    out = []
    for rank, p in enumerate(passages[:3]):
        i = where[(p.doc, p.start)]
        cos = sentence_scores(idx, i, query_vec, set(), 0.0)
        texts = idx.passages[i].sentence_texts()
        for j, (c, text) in enumerate(zip(cos, texts, strict=True)):
            held = terms & set(analyze(text))
            out.append({
                "cos": float(c), "lex": len(held) / len(terms) if terms else 0.0,
                "idf_lex": sum(idf(t) for t in held) / weight, "ratio": p.score / passages[0].score,
                "log_len": math.log1p(len(text.split())), "typed": float(kind is not None and holds_type(text, kind)),
                "type_asked": float(kind is not None), "first": float(j == 0), "position": j / max(len(texts) - 1, 1),
                "below_best": float(c - max(cos)), "prev_cos": float(cos[j - 1] if j else c),
                "next_cos": float(cos[j + 1] if j + 1 < len(cos) else c), "rank0": float(rank == 0),
                "rank1": float(rank == 1), "right": holds_answer(text, answers),
            })
    return out


def main() -> None:
    from sklearn.linear_model import LogisticRegression  # lazy: the calibrate extra
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("piaf")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    root = Path(args.workdir)
    gold, piaf_index = piaf_workdir(args.piaf, root)
    idx = load_index(piaf_index)
    df: collections.Counter = collections.Counter()
    for p in idx.passages:
        for text in p.sentence_texts():
            df.update(set(analyze(text)))
    n = sum(len(p.sentences) for p in idx.passages)

    def idf(term: str) -> float:
        return math.log((n + 1) / (df.get(term, 0) + 1))

    articles = {doc: k for k, doc in enumerate(dict.fromkeys(g.doc for g in gold))}
    questions = [(articles[g.doc] % 2, candidates(idx, g.question, g.answers, idf)) for g in gold]
    train = [c for half, cs in questions if half == 0 for c in cs]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(
        np.array([[c[f] for f in FEATURES] for c in train]), np.array([c["right"] for c in train]))

    def accuracy(half: int, choose) -> float:
        return float(np.mean([choose(cs)["right"] for h, cs in questions if h == half and cs]))

    def rule(cs: list[dict]) -> dict:
        return max(cs, key=lambda c: c["cos"] + 0.1 * c["lex"] + 0.1 * c["ratio"])

    def learned(cs: list[dict]) -> dict:
        return cs[int(np.argmax(model.predict_proba(np.array([[c[f] for f in FEATURES] for c in cs]))[:, 1]))]

    print("| sentence chooser | tune (even articles) | check (odd articles) |")
    print("|---|---|---|")
    print(f"| shipped rule | {accuracy(0, rule):.3f} | {accuracy(1, rule):.3f} |")
    print(f"| logistic ranker, {len(FEATURES)} features | {accuracy(0, learned):.3f} | {accuracy(1, learned):.3f} |")


if __name__ == "__main__":
    main()
