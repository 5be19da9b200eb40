"""Regression guard for the chosen search configuration, on a small PIAF slice (fast).

PIAF v1.0 (etalab-ia/piaf-code, MIT licence, (c) 2020 DINUM/Etalab, see tests/data/PIAF-LICENSE):
the first 8 articles of piaf-dev (40 paragraphs, 200 questions). The floors sit a few points under
what the configuration scores (hybrid R@1 0.845 and R@5 0.98, against BM25 0.77 and dense 0.775;
answer sentence 0.70, chosen among the first three passages as `ask` does; 8-bit question weights
and bfloat16 document products where the CPU has them), so a
change that loses ground on French questions fails here; the full benchmark is `qa eval piaf`.
"""

from __future__ import annotations

import pytest

from qa import build_index, retrieve
from qa.citations import answer_passage
from qa.evaluate import write_piaf_corpus

from .conftest import DATA

SLICE_R1_FLOOR = 0.80
SLICE_R5_FLOOR = 0.95
SENTENCE_FLOOR = 0.65


@pytest.fixture(scope="module")
def piaf_slice(tmp_path_factory):
    root = tmp_path_factory.mktemp("piaf")
    gold = write_piaf_corpus(DATA / "piaf-slice.json", root / "corpus")
    build_index(root / "corpus", root / "index")
    return gold, root / "index"


def ranks(gold, index, mode):
    """Rank of the first passage inside the gold paragraph, per question (None when not in the top 10)."""
    out = []
    for g in gold:
        hits = retrieve(g.question, k=10, index=index, mode=mode)
        inside = [h.rank for h in hits if h.doc == g.doc and g.start <= h.start and h.end <= g.end]
        out.append(inside[0] if inside else None)
    return out


def recall(found, k):
    return sum(r is not None and r <= k for r in found) / len(found)


def test_hybrid_keeps_its_quality_and_beats_each_method_alone(piaf_slice):
    gold, index = piaf_slice
    assert len(gold) == 200
    hybrid, bm25, dense = (ranks(gold, index, mode) for mode in ("hybrid", "bm25", "dense"))
    assert recall(hybrid, 1) >= SLICE_R1_FLOOR
    assert recall(hybrid, 5) >= SLICE_R5_FLOOR
    assert recall(hybrid, 1) > recall(bm25, 1)
    assert recall(hybrid, 1) > recall(dense, 1)


def test_answer_sentence_holds_the_answer_often(piaf_slice):
    gold, index = piaf_slice
    right = 0
    for g in gold:
        chosen = answer_passage(retrieve(g.question, k=3, index=index))  # the sentence `ask` quotes
        right += any(a.casefold() in chosen.sentence.text.casefold() for a in g.answers)
    assert right / len(gold) >= SENTENCE_FLOOR
