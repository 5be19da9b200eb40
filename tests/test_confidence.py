"""Calibrated answers: outcomes, confidence and the question sets written for them (issue 15).

tests/data/mali-answers.json holds 112 in-scope questions, 82 near-miss questions on the report's
subject that it does not answer, and 30 far out-of-scope ones, written for this project. The
floors sit under what the shipped calibration scores on the whole file (near-miss `none` 0.66,
in-scope `answer`+`possible` 0.93, far out-of-scope `none` 1.0: `qa eval answers … --half all`);
the file was fitted on these questions too (`benchmarks/fit_confidence.py`, whose two-fold table
holds the figures on questions a fit has not seen).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys

import numpy as np
import pytest

from qa import NO_ANSWER, ask, build_index
from qa.answer import Answer
from qa.chunking import Passage, Sentence
from qa.confidence import Logistic, calibration_file, calibration_for, relevance_label, rule_outcome
from qa.evaluate import Case, Judged, calibration_error, holds_answer, write_piaf_corpus
from qa.french import answer_type, focus_word, holds_type, names
from qa.model import DEFAULT_MODEL
from qa.signals import ANSWER_FEATURES, PASSAGE_FEATURES

from .conftest import DATA, ROOT

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
    assert share(outcomes["in_scope"], "answer", "possible") >= 0.85
    # what is given as «Réponse» is right
    firm = [(a, item) for a, item in zip(outcomes["in_scope"], SETS["in_scope"], strict=True) if a.outcome == "answer"]
    assert firm and all(holds_answer(a.sentence.text, tuple(item["gold"])) for a, item in firm)


@pytest.mark.parametrize("question", [
    "Combien de localités ont été visées ?",  # in the sets since; refused before they had such questions
    "Combien de localités ont été ciblées ?",
    "Quel camp militaire a été visé ?",
    "Qui a revendiqué ces attaques djihadistes ?",
    "Quelles zones ont été attaquées ?",
])
def test_a_question_in_the_reports_own_words_is_not_refused(report_index, question):
    """Every keyword in the passage is no sign of a near-miss question (a set of paraphrases alone
    once taught the gate that it was: «Combien de localités ont été visées ?» was refused)."""
    assert ask(question, index=report_index).outcome in ("answer", "possible")


@pytest.mark.parametrize("question", [
    "Qui est le président du Mali ?",
    "Quelle est la capitale du Mali ?",
    "Quel est le salaire d'un soldat malien ?",
    "Combien de civils sont morts ?",
    "À quelle date ces offensives se sont-elles produites ?",  # quoted a sentence without a date
    # «Réponse» at 0.80 once: the sentence names Wagner's mercenaries but holds no number at all
    "Combien de mercenaires de Wagner sont déployés au Mali ?",
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
    """On the PIAF slice (8 articles of piaf-dev, so fitted on; 200 questions: 0.91 precision at
    0.33 coverage, 0.935 shown when measured), what is given as «Réponse» holds the gold answer."""
    gold = write_piaf_corpus(DATA / "piaf-slice.json", tmp_path / "corpus")
    build_index(tmp_path / "corpus", tmp_path / "index")
    answers = [(ask(g.question, index=tmp_path / "index"), g) for g in gold]
    firm = [(a, g) for a, g in answers if a.outcome == "answer"]
    assert len(firm) / len(answers) >= 0.25
    assert sum(holds_answer(a.sentence.text, g.answers) for a, g in firm) / len(firm) >= 0.85
    assert sum(a.outcome != "none" for a, _ in answers) / len(answers) >= 0.9


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
        return Passage("d.txt", "Titre", "", 0, len(text), text, ((0, len(text)),), rank=1, score=1.0,
                       sentence=sentence, dense_score=dense)

    assert rule_outcome(passage(0.85), {"attaqu"}) == "possible"  # never a firm "answer"
    assert rule_outcome(passage(0.80, "Les attaques."), {"attaqu"}) == "possible"
    assert rule_outcome(passage(0.80), {"attaqu"}) == "none"
    assert rule_outcome(passage(0.70, "Les attaques."), {"attaqu"}) == "none"
    assert relevance_label(None, 0.9) is None


def _quoted(text: str = "Texte.") -> Passage:
    return Passage("d.txt", "Titre", "", 0, len(text), text, ((0, len(text)),), rank=1, score=1.0,
                   sentence=Sentence(0, len(text), text))


def test_an_answer_quotes_a_passage_unless_it_has_no_answer():
    p = _quoted()
    none = Answer("Q ?", "none", (p,), None, "Q ?", "m")
    assert none.abstained and none.sentence is None and none.message == NO_ANSWER and not none.follow_up
    given = Answer("Q ?", "possible", (p,), p, "A ? Q ?", "m")
    assert not given.abstained and given.sentence == p.sentence and given.message == "Texte." and given.follow_up
    with pytest.raises(ValueError):
        Answer("Q ?", "none", (p,), p, "Q ?", "m")
    with pytest.raises(ValueError):
        Answer("Q ?", "answer", (p,), None, "Q ?", "m")
    with pytest.raises(ValueError):
        Answer("Q ?", "sure", (p,), p, "Q ?", "m")


def test_answer_has_one_relevance_per_passage():
    p = _quoted()
    args = ("Q ?", "none", (p, p), None, "Q ?", "m")
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


@pytest.mark.parametrize(("question", "focus"), [
    ("Qui est le président du Mali ?", "président"),
    ("Quelle est la capitale du Mali ?", "capitale"),
    ("Combien d'habitants compte Tombouctou ?", "habitants"),
    ("Combien de soldats maliens ont perdu la vie ?", "soldats"),
    ("Quel type de pouvoir est en place à Bamako ?", "pouvoir"),
    ("Quels autres groupes sont actifs au Burkina Faso ?", "groupes"),
    ("Qui est le Premier ministre du Mali ?", "ministre"),
    ("Quelle est la principale ressource du Mali ?", "ressource"),
    ("Quel est l'objectif du mouvement ?", "objectif"),
    ("Qui souffre le plus de ces violences ?", None),  # a verb is not what is asked about
    ("Qui dirige le JNIM ?", None),
    ("Qui est derrière cette offensive ?", None),
    ("Combien coûte un drone ?", None),
    ("Qui est Iyad Ag Ghaly ?", None),  # a name: names_missing's business
    ("Où se trouve le camp ?", None),
])
def test_focus_word_is_the_noun_asked_about(question, focus):
    assert focus_word(question) == focus


def test_holds_type_finds_dates_numbers_and_names():
    assert holds_type("Au début du mois de juillet 2025, le Mali a subi…", "date")
    assert not holds_type("Les forces armées maliennes ont indiqué que les assaillants ont ciblé…", "date")
    assert not holds_type("Le camp militaire de Niono a été attaqué.", "date")  # "Le" is no Roman numeral
    assert holds_type("Il vécut au XIXe siècle.", "date") and holds_type("sous la Ve République", "date")
    assert holds_type("au moins sept localités", "number") and holds_type("12 % des votes", "number")
    assert not holds_type("Des civils ont aussi été pris au piège des combats.", "number")
    assert holds_type("revendiquées par le JNIM", "name")
    assert names("Le gouvernorat de Tombouctou a confirmé") == {"tombouctou"}


def test_calibration_error_by_hand():
    def judged(confidence, right):
        answer = Answer("q", "possible", (_quoted(),), _quoted(), "q", "m", confidence)
        return Judged(Case("piaf", "q", DATA, "check", ("x",)), answer, right, ())

    # two bins: 0.9 with 1 of 2 right (gap 0.4), 0.2 with 0 of 2 right (gap 0.2): (0.4·2 + 0.2·2) / 4
    items = [judged(0.9, True), judged(0.9, False), judged(0.2, False), judged(0.2, False)]
    assert calibration_error(items) == pytest.approx(0.3)
    assert calibration_error([judged(0.75, True)] * 3 + [judged(0.75, False)]) == pytest.approx(0.0)


# --- the fit: benchmarks/fit_confidence.py --------------------------------------------------------

@pytest.fixture(scope="module")
def fc():
    spec = importlib.util.spec_from_file_location("fit_confidence", ROOT / "benchmarks" / "fit_confidence.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fit_confidence"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_shipped_file_is_what_the_documented_command_writes(fc):
    """Its defaults made it, on both halves of every set: `fit_confidence.py PATH --workdir DIR` rewrites it."""
    record = json.loads(calibration_file(DEFAULT_MODEL).read_text(encoding="utf-8"))
    assert record["fitted_by"] == fc.Settings().command()
    assert record["settings"] == {**dataclasses.asdict(fc.Settings()), "fit": "all"}  # a changed default fails
    assert record["fit_rows"]["piaf"] == record["fit_rows"]["piaf_on_report"] > 1700  # piaf-dev: 1,784
    sizes = {"report": len(SETS["in_scope"]), "near_miss": len(SETS["near_miss"]),
             "out_of_scope": len(SETS["out_of_scope"])}
    assert {k: record["fit_rows"][k] for k in sizes} == sizes
    t = calibration_for(DEFAULT_MODEL).thresholds
    assert t.answer == fc.ANSWER_CONFIDENCE and (t.relevance_high, t.relevance_medium) == (0.5, 0.2)
    assert 0.05 < t.possible < 0.5


def test_the_command_line_gives_back_the_settings(fc):
    settings = fc.Settings(gate_report_weight=40.0, gate_rule="coverage", precision=0.9)
    flags = settings.command().split("--workdir DIR")[1].split()
    assert fc.settings_from(fc.parse(["piaf.json", "--workdir", "d", *flags])) == settings
    assert fc.Settings().command().endswith("--workdir DIR")  # the defaults need no flag
    with pytest.raises(ValueError):
        fc.Settings(gate_rule="best")


GATE_SETS = ["report"] * 10 + ["near_miss"] * 10
IN_SCOPE = [0.05, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
NEAR_MISS = [0.01, 0.02, 0.03, 0.04, 0.1, 0.2, 0.3, 0.45, 0.6, 0.95]


def test_the_gate_balances_in_scope_shown_against_near_miss_refused(fc):
    gate = np.array(IN_SCOPE + NEAR_MISS)
    # 0.9 of in-scope shown and ≥ 0.6 of near-miss refused from 0.2 to 0.5: the centre of that range
    assert fc.gate_threshold(gate, GATE_SETS, fc.Settings()) == pytest.approx(0.375)
    # a far out-of-scope question at 0.35 must be refused too: the range narrows to 0.35–0.5
    far = np.append(gate, 0.35)
    assert fc.gate_threshold(far, [*GATE_SETS, "out_of_scope"], fc.Settings()) == pytest.approx(0.475)
    # PIAF questions at 0.3: the threshold may not refuse more than 7 % of them
    piaf = np.append(gate, [0.3] * 100)
    assert fc.gate_threshold(piaf, GATE_SETS + ["piaf"] * 100, fc.Settings()) == pytest.approx(0.25)
    coverage = fc.Settings(gate_rule="coverage", report_coverage=0.8)
    assert fc.gate_threshold(gate, GATE_SETS, coverage) == pytest.approx(np.quantile(IN_SCOPE, 0.2))


def synthetic(n: int, seed: int) -> list[Judged]:
    """PIAF-like questions whose quote is right with a known probability, and report-like ones."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        name = ["piaf", "piaf", "piaf", "piaf_on_report", "report", "near_miss"][i % 6]
        signals = {f: float(rng.normal()) for f in ANSWER_FEATURES}
        if name in ("piaf_on_report", "near_miss"):
            signals["dense_top"] -= 3.0
        # near-miss quotes are rarely right: their low dense_top says so, as the model can learn
        p = 1 / (1 + math.exp(-(1.5 * signals["sentence"] + signals["dense"] + 0.8 * signals["dense_top"] - 0.2)))
        right = name != "piaf_on_report" and bool(rng.random() < p)
        answer = Answer("q", "possible", (_quoted(),), _quoted(), "q", "m", p, signals=signals)
        case = Case(name, "q", DATA, "tune" if i % 12 < 6 else "check", ("x",) if name in ("piaf", "report") else ())
        out.append(Judged(case, answer, right, (right or name in ("piaf", "report") and rng.random() < 0.5,)))
    return out


def test_the_fit_recovers_a_known_probability(fc):
    pytest.importorskip("sklearn")
    judged = synthetic(6000, seed=1)
    answer, gate, thresholds = fc.fit_outcomes([j for j in judged if j.case.half == "tune"], fc.Settings())
    check = [j for j in judged if j.case.half == "check" and j.case.set == "piaf"]
    fitted = np.array([answer(j.answer.signals) for j in check])
    assert np.abs(fitted - np.array([j.answer.confidence for j in check])).mean() < 0.03
    assert calibration_error([dataclasses.replace(j, answer=dataclasses.replace(j.answer, confidence=float(p)))
                              for j, p in zip(check, fitted, strict=True)]) < 0.05
    assert thresholds.answer == fc.ANSWER_CONFIDENCE
    far = [gate(j.answer.signals) for j in judged if j.case.set == "piaf_on_report"]
    assert np.mean(np.array(far) < thresholds.possible) > 0.8  # their low dense_top: most are refused
    rows = fc.two_fold(judged, fc.Settings())
    assert [name for name, _ in rows] == ["tune → check", "check → tune", "mean"]
    assert rows[2][1] == pytest.approx(list(np.mean([rows[0][1], rows[1][1]], axis=0)), nan_ok=True)
    assert math.isnan(rows[0][1][7])  # no far out-of-scope question here: no figure


def test_rescoring_from_signals_is_what_ask_says(fc, report_index):
    """The two-fold table scores stored signals instead of asking again: the same outcome and confidence."""
    calibration = calibration_for(DEFAULT_MODEL)
    questions = ["Qui a revendiqué les attaques ?", "Qui est le président du Mali ?", *SETS["near_miss"][:4],
                 *(item["q"] for item in SETS["in_scope"][:6])]
    asked = [ask(q, index=report_index) for q in questions]
    judged = [Judged(Case("report", q, report_index, "tune"), a, False, ())
              for q, a in zip(questions, asked, strict=True)]
    again = fc.rescored(judged, calibration)
    assert [j.answer.outcome for j in again] == [a.outcome for a in asked]
    assert [j.answer.confidence for j in again] == pytest.approx([a.confidence for a in asked])
    assert {a.outcome for a in asked} >= {"answer", "none"}
