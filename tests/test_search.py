from __future__ import annotations

import json

import numpy as np
import pytest

from qa import Passage, retrieve

from .conftest import DATA, REPORT

DEV = json.loads((DATA / "mali-dev.json").read_text(encoding="utf-8"))


def test_claim_question_finds_the_introduction(report_index):
    top = retrieve("Qui a revendiqué les attaques ?", k=3, index=report_index)[0]
    assert isinstance(top, Passage)
    assert top.rank == 1
    assert top.doc == "mali-attaques-juillet-2025.txt"
    assert top.title == "Mali attaques juillet 2025"
    assert top.section.startswith("Introduction : une escalade djihadiste")
    assert "revendiquées par Jama’at Nusrat al-Islam wal-Muslimeen (JNIM)" in top.sentence.text


def test_citations_are_verbatim(report_index):
    text = REPORT.read_text(encoding="utf-8")
    for p in retrieve("Que se passe-t-il à Tombouctou ?", k=9, index=report_index):
        assert text[p.start : p.end] == p.text
        assert text[p.sentence.start : p.sentence.end] == p.sentence.text
        assert p.start <= p.sentence.start < p.sentence.end <= p.end
    ranks = [p.rank for p in retrieve("drones", k=9, index=report_index)]
    assert ranks == list(range(1, 10))


def test_dev_set_gold_in_top_passage(report_index):
    hits = 0
    for item in DEV["questions"]:
        top = retrieve(item["q"], k=1, index=report_index)[0]
        hits += any(g in top.text for g in item["gold"])
    assert hits / len(DEV["questions"]) >= 0.9


def test_dev_set_gold_in_top_three(report_index):
    for item in DEV["questions"]:
        passages = retrieve(item["q"], k=3, index=report_index)
        assert any(g in p.text for p in passages for g in item["gold"]), item["q"]


def test_answer_sentence_holds_the_gold_excerpt(report_index):
    ok = 0
    for item in DEV["questions"]:
        top = retrieve(item["q"], k=1, index=report_index)[0]
        ok += any(g in top.sentence.text for g in item["gold"])
    assert ok / len(DEV["questions"]) >= 0.85


def test_typed_and_typographic_apostrophes_give_the_same_answer(report_index):
    a = retrieve("Qu'est-ce que l'aéroport de Tombouctou a subi ?", k=3, index=report_index)
    b = retrieve("Qu’est-ce que l’aéroport de Tombouctou a subi ?", k=3, index=report_index)
    assert [(p.start, p.score) for p in a] == [(p.start, p.score) for p in b]


def test_scores_are_ordered_and_modes_differ(report_index):
    hybrid = retrieve("drones explosifs", k=5, index=report_index)
    assert [p.score for p in hybrid] == sorted((p.score for p in hybrid), reverse=True)
    bm25 = retrieve("drones explosifs", k=5, index=report_index, mode="bm25")
    assert "drones explosifs" in bm25[0].text and bm25[0].keyword_score > 0
    dense = retrieve("drones explosifs", k=5, index=report_index, mode="dense")
    assert all(-1 <= p.dense_score <= 1 for p in dense)


def test_document_filter(report_index):
    only = retrieve("drones", k=3, index=report_index, docs=["mali-attaques-juillet-2025.txt"])
    assert {p.doc for p in only} == {"mali-attaques-juillet-2025.txt"}
    with pytest.raises(ValueError, match="unknown document"):
        retrieve("drones", index=report_index, docs=["absent.txt"])


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_refused(report_index, question):
    with pytest.raises(ValueError, match="empty"):
        retrieve(question, index=report_index)


def test_overlong_question_is_refused(report_index):
    with pytest.raises(ValueError, match="2000"):
        retrieve("attaque " * 300, index=report_index)
    assert retrieve("attaque " * 240, k=1, index=report_index)  # 1,920 characters is fine


@pytest.mark.parametrize("k", [0, -1, 51, 2.5])
def test_bad_k_is_refused(report_index, k):
    with pytest.raises(ValueError, match="k must be"):
        retrieve("drones", k=k, index=report_index)


def test_question_with_no_known_word_still_answers(report_index):
    passages = retrieve("zzzz qwxv", k=2, index=report_index)
    assert len(passages) == 2 and all(p.keyword_score == 0 for p in passages)


def test_top_k_matches_a_stable_full_sort_on_large_arrays():
    """`_top` avoids sorting 10^5 scores per question; it must rank exactly as the full stable sort."""
    from qa.search import _top

    rng = np.random.default_rng(0)
    for n in (50, 5_000, 60_000):
        scores = rng.integers(0, 40, size=n).astype(np.float32)  # many ties
        scores[rng.random(n) < 0.3] = -np.inf
        for k in (1, 10, 100):
            assert _top(scores, k).tolist() == np.argsort(-scores, kind="stable")[:k].tolist()


def test_answer_sentence_comes_from_the_best_of_the_first_three_passages():
    from qa.chunking import Passage, Sentence
    from qa.citations import answer_passage

    def passage(rank, score, sentence_score):
        return Passage("d.txt", "T", "", 0, 5, "Texte", ((0, 5),), rank=rank, score=score,
                       sentence=Sentence(0, 5, "Texte"), sentence_score=sentence_score)

    first, second, third, fourth = (passage(1, 0.30, 0.90), passage(2, 0.15, 0.93),
                                    passage(3, 0.1, 0.5), passage(4, 0.1, 2.0))
    # the second's sentence is 0.03 better, its passage 0.05 worse (0.1 x 0.15 / 0.30): the first wins
    assert answer_passage([first, second, third, fourth]) is first
    better = passage(2, 0.15, 0.96)  # 0.06 better: it wins; the fourth passage is never considered
    assert answer_passage([first, better, third, fourth]) is better
    assert answer_passage([first, passage(2, 0.30, 0.90)]) is first  # a tie goes to the higher rank
    assert answer_passage([first]) is first and answer_passage([]) is None
