from __future__ import annotations

import json

import pytest

from qa import NO_ANSWER, ask
from qa.answer import user_questions
from qa.french import is_follow_up

from .conftest import DATA, REPORT

DEV = json.loads((DATA / "mali-dev.json").read_text(encoding="utf-8"))
FOLLOW_UPS = json.loads((DATA / "follow-ups.json").read_text(encoding="utf-8"))["cases"]


def test_answer_quotes_a_verbatim_sentence_of_its_passage(report_index):
    answer = ask("Qui a revendiqué les attaques ?", index=report_index)
    assert not answer.abstained
    assert answer.passage == answer.passages[0]
    assert answer.sentence == answer.passage.sentence
    assert answer.message == answer.sentence.text
    assert "revendiquées par Jama’at Nusrat al-Islam wal-Muslimeen (JNIM)" in answer.sentence.text
    text = REPORT.read_text(encoding="utf-8")
    assert text[answer.sentence.start : answer.sentence.end] == answer.sentence.text
    assert len(answer.passages) == 3 and not answer.follow_up


@pytest.mark.parametrize("question", DEV["out_of_scope"])
def test_out_of_scope_questions_abstain_but_offer_passages(report_index, question):
    answer = ask(question, index=report_index)
    assert answer.abstained
    assert answer.message == NO_ANSWER == "Je n'ai pas trouvé de réponse à cette question dans le rapport."
    assert answer.sentence is None and answer.passage is None
    assert len(answer.passages) == 3  # the closest passages are still offered


def test_dev_questions_are_answered(report_index):
    answered = [item["q"] for item in DEV["questions"] if not ask(item["q"], index=report_index).abstained]
    assert len(answered) >= len(DEV["questions"]) - 1, set(q["q"] for q in DEV["questions"]) - set(answered)


def test_dev_follow_up_is_answered_right(report_index):
    case = DEV["follow_ups"][0]
    answer = ask(case["q"], case["history"], index=report_index)
    assert answer.follow_up and not answer.abstained
    assert any(g in answer.passages[0].text for g in case["gold"])


@pytest.mark.parametrize("case", FOLLOW_UPS, ids=[c["q"] for c in FOLLOW_UPS])
def test_follow_ups_use_the_previous_question(report_index, case):
    answer = ask(case["q"], case["history"], index=report_index)
    assert answer.follow_up
    assert case["history"][-1] in answer.query
    assert any(g in answer.passages[0].text for g in case["gold"]), answer.passages[0].text


def test_a_chain_of_follow_ups_keeps_the_original_subject(report_index):
    history = ["Quel groupe a revendiqué les attaques ?", "Quelle est son idéologie ?"]
    answer = ask("Et que cherche-t-il à contrôler ?", history, index=report_index)
    assert answer.follow_up
    assert answer.query.startswith("Quel groupe a revendiqué les attaques ? Quelle est son idéologie ?")
    assert "contrôler les zones rurales" in answer.passages[0].text


def test_a_self_contained_question_ignores_history(report_index):
    alone = ask("Les assaillants ont-ils utilisé des drones ?", index=report_index)
    after = ask("Les assaillants ont-ils utilisé des drones ?", ["Quel rôle joue la MINUSMA ?"], index=report_index)
    assert not after.follow_up and after.query == alone.query
    assert [p.start for p in after.passages] == [p.start for p in alone.passages]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Et par qui sont-elles remplacées ?", True),
        ("Et du côté de l'armée ?", True),
        ("Quelle est son idéologie ?", True),
        ("Pourquoi ?", True),
        ("Que cherche-t-il à contrôler ?", True),
        ("Les assaillants ont-ils utilisé des drones ?", False),
        ("Qu'est-ce qui manque entre les pays voisins du Sahel ?", False),
        ("Qui a revendiqué les attaques ?", False),
        ("Quelles forces étrangères quittent la région ?", False),
        ("Combien de localités ont été ciblées ?", False),
    ],
)
def test_follow_up_detection(question, expected):
    assert is_follow_up(question) is expected


def test_history_accepts_strings_and_chat_messages():
    history = [
        "Première ?",
        {"role": "assistant", "content": "réponse"},
        {"role": "user", "content": [{"type": "text", "text": "Deuxième ?"}]},
        {"role": "user", "content": "Troisième ?"},
        {"role": "user", "content": "   "},
    ]
    assert user_questions(history) == ["Première ?", "Deuxième ?", "Troisième ?"]


def test_bad_input_is_refused(report_index):
    with pytest.raises(ValueError, match="empty"):
        ask("  ", index=report_index)
    with pytest.raises(ValueError, match="k must be"):
        ask("drones ?", k=0, index=report_index)
