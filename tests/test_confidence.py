"""Calibrated answers: outcomes, confidence and the question sets written for them (issue 15).

tests/data/mali-answers.json holds 42 in-scope questions, 42 near-miss questions on the report's
subject that it does not answer, and 20 far out-of-scope ones, written for this project. The
floors sit under what the shipped calibration scores on the whole file (near-miss `none` 0.67,
in-scope `answer`+`possible` 0.81, far out-of-scope `none` 1.0: `qa eval answers` on its two halves).
"""

from __future__ import annotations

import json
import math

import pytest

from qa import NO_ANSWER, ask, build_index
from qa.answer import Answer
from qa.citations import Passage, Sentence
from qa.confidence import Logistic, calibration_file, calibration_for, relevance_label, rule_outcome
from qa.evaluate.answers import Case, Judged, calibration_error
from qa.evaluate.retrieval import holds_answer, write_piaf_corpus
from qa.model import DEFAULT_MODEL
from qa.signals import ANSWER_FEATURES, PASSAGE_FEATURES, answer_type, holds_type, names

from .conftest import DATA

SETS = json.loads((DATA / "mali-answers.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def outcomes(report_index):
    def of(questions):
        return [ask(q, index=report_index) for q in questions]

    return {
        "in_scope": of([item["q"] for item in SETS["in_scope"]]),
        "near_miss": of(SETS["near_miss"]),
        "out_of_scope": of(SETS["out_of_scope"]),
    }


def share(answers, *wanted):
    return sum(a.outcome in wanted for a in answers) / len(answers)


def test_question_sets_are_the_size_the_issue_asks():
    assert len(SETS["in_scope"]) >= 40 and len(SETS["near_miss"]) >= 40
    report = (DATA.parent.parent / "corpus" / "mali-attaques-juillet-2025.txt").read_text(encoding="utf-8")
    for item in SETS["in_scope"]:  # every gold excerpt is the report's own text
        assert any(holds_answer(report, (g,)) for g in item["gold"]), item


def test_near_miss_questions_mostly_end_without_an_answer(outcomes):
    assert share(outcomes["near_miss"], "none") >= 0.6
    assert share(outcomes["near_miss"], "answer") <= 0.1


def test_far_out_of_scope_questions_never_get_an_answer(outcomes):
    assert share(outcomes["out_of_scope"], "none") >= 0.95


def test_in_scope_questions_get_an_answer_or_a_hedged_one(outcomes):
    assert share(outcomes["in_scope"], "answer", "possible") >= 0.75
    # what is given as «Réponse» is right
    firm = [(a, item) for a, item in zip(outcomes["in_scope"], SETS["in_scope"], strict=True) if a.outcome == "answer"]
    assert firm and all(holds_answer(a.sentence.text, tuple(item["gold"])) for a, item in firm)


@pytest.mark.parametrize("question", [
    "Qui est le président du Mali ?",
    "Quelle est la capitale du Mali ?",
    "Quel est le salaire d'un soldat malien ?",
    "Combien de civils sont morts ?",
    "À quelle date ces offensives se sont-elles produites ?",  # quoted a sentence without a date
])
def test_the_issues_wrong_quotes_are_no_longer_given_as_answers(report_index, question):
    answer = ask(question, index=report_index)
    assert answer.outcome != "answer"
    if answer.outcome == "possible":  # shown, then, but only with a low confidence
        assert answer.confidence < calibration_for(DEFAULT_MODEL).thresholds.answer


def test_a_clear_question_is_answered_with_high_confidence(report_index):
    answer = ask("Qui a revendiqué les attaques ?", index=report_index)
    assert answer.outcome == "answer" and not answer.abstained and answer.label == "Réponse"
    assert answer.confidence >= 0.75
    assert "revendiquées par Jama’at Nusrat al-Islam" in answer.sentence.text
    # relevance is a probability per passage, and it varies: only the answering passage is likely
    assert len(answer.relevance) == len(answer.passages)
    assert relevance_label(calibration_for(DEFAULT_MODEL), answer.relevance[0]) == "high"
    assert any(relevance_label(calibration_for(DEFAULT_MODEL), r) == "low" for r in answer.relevance[1:])


def test_abstention_keeps_passages_and_a_confidence(report_index):
    answer = ask("Quelle est la hauteur de la tour Eiffel ?", index=report_index)
    assert answer.outcome == "none" and answer.abstained and answer.message == NO_ANSWER
    assert answer.sentence is None and answer.passage is None and len(answer.passages) == 3
    assert 0.0 <= answer.confidence < 0.2
    assert all(relevance_label(calibration_for(DEFAULT_MODEL), r) == "low" for r in answer.relevance)


def test_to_dict_is_json_and_says_the_outcome(report_index):
    d = json.loads(json.dumps(ask("Qui a revendiqué les attaques ?", index=report_index).to_dict()))
    assert d["outcome"] == "answer" and d["label"] == "Réponse" and 0 <= d["confidence"] <= 1
    assert d["sentence"]["text"] in d["passages"][d["answer_rank"] - 1]["text"]
    assert all(0 <= p["relevance"] <= 1 for p in d["passages"])


def test_piaf_slice_answers_are_precise(tmp_path):
    """On the PIAF slice (8 articles, 200 questions; 0.90 precision at 0.31 coverage, 0.885 shown
    when measured), what is given as «Réponse» holds the gold answer."""
    gold = write_piaf_corpus(DATA / "piaf-slice.json", tmp_path / "corpus")
    build_index(tmp_path / "corpus", tmp_path / "index")
    answers = [(ask(g.question, index=tmp_path / "index"), g) for g in gold]
    firm = [(a, g) for a, g in answers if a.outcome == "answer"]
    assert len(firm) / len(answers) >= 0.2
    assert sum(holds_answer(a.sentence.text, g.answers) for a, g in firm) / len(firm) >= 0.82
    assert sum(a.outcome != "none" for a, _ in answers) / len(answers) >= 0.8


# --- pieces ---------------------------------------------------------------------------------------

def test_logistic_is_the_textbook_formula():
    model = Logistic(("a", "b"), (2.0, -1.0), 0.5)
    assert model({"a": 0.0, "b": 0.5}) == pytest.approx(0.5)
    assert model({"a": math.log(3) / 2, "b": 0.5}) == pytest.approx(0.75)
    assert model({"a": 1e6, "b": 0.0}) == pytest.approx(1.0)  # no overflow


def test_the_shipped_calibration_matches_the_signals():
    calibration = calibration_for(DEFAULT_MODEL)
    assert calibration is not None and calibration.model == DEFAULT_MODEL
    assert calibration.answer.features == ANSWER_FEATURES == calibration.answerable.features
    assert calibration.passage.features == PASSAGE_FEATURES
    t = calibration.thresholds
    assert 0 < t.possible < 1 and 0 < t.answer < 1 and t.relevance_medium < t.relevance_high
    assert "fit_confidence.py" in json.loads(calibration_file(DEFAULT_MODEL).read_text(encoding="utf-8"))["fitted_by"]


def test_another_model_has_no_calibration_and_falls_back_to_the_rule(caplog):
    assert calibration_for("intfloat/multilingual-e5-base") is None
    assert "uncalibrated rule" in caplog.text

    def passage(dense, text="Texte sans rapport."):
        sentence = Sentence(0, len(text), text)
        return Passage(1, 1.0, "d.txt", "Titre", "", 0, len(text), text, sentence, dense_score=dense)

    assert rule_outcome(passage(0.85), {"attaqu"}) == "possible"  # never a firm "answer"
    assert rule_outcome(passage(0.80, "Les attaques."), {"attaqu"}) == "possible"
    assert rule_outcome(passage(0.80), {"attaqu"}) == "none"
    assert rule_outcome(passage(0.70, "Les attaques."), {"attaqu"}) == "none"
    assert relevance_label(None, 0.9) is None


def test_answer_outcome_and_abstained_cannot_disagree():
    args = ("Q ?", True, (), None, None, NO_ANSWER, "Q ?", False)
    assert Answer(*args).outcome == "none"
    with pytest.raises(ValueError):
        Answer(*args, outcome="answer")


def test_answer_has_one_relevance_per_passage():
    text = "Texte."
    p = Passage(1, 1.0, "d.txt", "Titre", "", 0, len(text), text, Sentence(0, len(text), text))
    args = ("Q ?", True, (p, p), None, None, NO_ANSWER, "Q ?", False)
    assert Answer(*args).relevance == (None, None)  # not given: unknown for each passage
    assert Answer(*args).relevance_levels == (None, None)
    with pytest.raises(ValueError):
        Answer(*args, relevance=(0.5,))


@pytest.mark.parametrize(("question", "kind"), [
    ("Quand la série d'attaques a-t-elle eu lieu ?", "date"),
    ("À quelle date ces offensives se sont-elles produites ?", "date"),
    ("Combien de localités ont été ciblées ?", "number"),
    ("Quel est le nombre de victimes ?", "number"),
    ("Qui a revendiqué les attaques ?", "name"),
    ("Où se trouve le camp ?", "name"),
    ("Dans quelle ville se trouve l'aéroport ?", "name"),
    ("Quelles armes ont été utilisées ?", None),
    ("Qu'est-ce qui profite aux groupes armés ?", None),
])
def test_answer_type_of_a_question(question, kind):
    assert answer_type(question) == kind


def test_holds_type_finds_dates_numbers_and_names():
    assert holds_type("Au début du mois de juillet 2025, le Mali a subi…", "date")
    assert not holds_type("Les forces armées maliennes ont indiqué que les assaillants ont ciblé…", "date")
    assert holds_type("au moins sept localités", "number") and holds_type("12 % des votes", "number")
    assert not holds_type("Des civils ont aussi été pris au piège des combats.", "number")
    assert holds_type("revendiquées par le JNIM", "name")
    assert names("Le gouvernorat de Tombouctou a confirmé") == {"tombouctou"}


def test_calibration_error_by_hand():
    def judged(confidence, right):
        answer = Answer("q", False, (), None, None, "", "q", False, "possible", confidence)
        return Judged(Case("piaf", "q", DATA, "check", ("x",)), answer, right, ())

    # two bins: 0.9 with 1 of 2 right (gap 0.4), 0.2 with 0 of 2 right (gap 0.2): (0.4·2 + 0.2·2) / 4
    items = [judged(0.9, True), judged(0.9, False), judged(0.2, False), judged(0.2, False)]
    assert calibration_error(items) == pytest.approx(0.3)
    assert calibration_error([judged(0.75, True)] * 3 + [judged(0.75, False)]) == pytest.approx(0.0)
