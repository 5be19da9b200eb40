"""One answer, four faces: Python `qa.ask`, `qa ask --json`, the HTTP API's /ask and the chat's `respond`
must agree on the outcome, the confidence and the quoted sentence, or a user would get a different
answer depending on where they ask."""

from __future__ import annotations

import html
import json
import re

import httpx
import pytest
from gradio_client import Client

import qa
from qa.answer import OUTCOME_LABELS
from ui.handlers import respond
from ui.render import guillemets, percent, typeset

from .test_cli import qa as run_cli
from .test_ui_app import app_url, served  # noqa: F401  (the served app, launched once for this module)

pytestmark = [
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

ANSWERED = "Qui a revendiqué les attaques ?"
NEAR_MISS = "Qui est le président du Mali ?"  # on the report's subject, not in it
FAR = "Quelle est la hauteur de la tour Eiffel ?"
QUESTIONS = [ANSWERED, NEAR_MISS, FAR]


def face(outcome: str, confidence: float | None, sentence: str | None) -> tuple[str, float | None, str | None]:
    return outcome, confidence, sentence


def same(a: tuple, b: tuple) -> bool:
    """Same outcome and quoted sentence, and the same confidence to 1e-6 (a JSON round trip may not
    keep the last bits of a float)."""
    (oa, ca, sa), (ob, cb, sb) = a, b
    close = (ca is None and cb is None) or (ca is not None and cb is not None and abs(ca - cb) <= 1e-6)
    return oa == ob and sa == sb and close


def from_dict(d: dict) -> tuple[str, float | None, str | None]:
    return face(d["outcome"], d["confidence"], None if d["sentence"] is None else d["sentence"]["text"])


def from_python(question: str, index, history=()) -> tuple[str, float | None, str | None]:
    a = qa.ask(question, list(history), k=3, index=index)
    return face(a.outcome, a.confidence, None if a.sentence is None else a.sentence.text)


def from_chat(question: str, index, turns=None) -> tuple[str, float | None, str | None]:
    """The chat handler's answer, as kept in its state, checked against what its HTML shows (the quoted
    sentence is read from the HTML: the state keeps no text of the answer)."""
    _, shown, turns = respond(question, turns or [], 3, None, index=index)
    turn, page = turns[-1], shown[1]["content"]
    sentence = None
    if turn["outcome"] == "none":
        assert html.escape(typeset(qa.NO_ANSWER)) in page and "<mark>" not in page
    else:
        confidence = "non calibrée" if turn["confidence"] is None else percent(turn["confidence"])
        assert html.escape(OUTCOME_LABELS[turn["outcome"]]) in page and f"confiance {confidence}" in page
        (marked,) = re.findall(r"<mark>(.*?)</mark>", page)
        sentence = html.unescape(marked)
        assert html.escape(guillemets(sentence)) in page
    return face(turn["outcome"], turn["confidence"], sentence)


@pytest.fixture(scope="module")
def cli_answers(report_index, tmp_path_factory) -> dict[str, dict]:
    """`qa ask --json` for each question, in a subprocess, as a program would call it."""
    cwd = tmp_path_factory.mktemp("cli")
    out = {}
    for question in QUESTIONS:
        run = run_cli("ask", question, "--json", "--index", str(report_index), cwd=cwd)
        assert run.returncode == 0, run.stderr  # an abstention is an answer: exit 0
        out[question] = json.loads(run.stdout)
    return out


@pytest.mark.parametrize("question", QUESTIONS)
def test_every_face_gives_the_same_answer(question, report_index, cli_answers, app_url):  # noqa: F811
    python = qa.ask(question, k=3, index=report_index)
    expected = face(python.outcome, python.confidence, None if python.sentence is None else python.sentence.text)
    cli = cli_answers[question]
    api = Client(app_url + "/", verbose=False).predict(question, [], 3, api_name="/ask")
    faces = {"cli": from_dict(cli), "api": from_dict(api), "chat": from_chat(question, report_index)}
    assert {name: f for name, f in faces.items() if not same(f, expected)} == {}, expected
    # The JSON faces are the same document, passages and their relevance included.
    for d in (cli, api):
        assert d["label"] == python.label and d["message"] == python.message
        assert [(p["doc"], p["start"], p["end"]) for p in d["passages"]] == [(p.doc, p.start, p.end)
                                                                           for p in python.passages]
        assert [p["relevance"] for p in d["passages"]] == pytest.approx(list(python.relevance), abs=1e-6)


def test_the_outcomes_are_told_apart(cli_answers):
    """The answerable question is answered, the far one is not: agreement alone would also hold if
    every face always abstained."""
    assert cli_answers[ANSWERED]["outcome"] in ("answer", "possible")
    assert "JNIM" in cli_answers[ANSWERED]["sentence"]["text"]
    assert cli_answers[FAR]["outcome"] == "none" and cli_answers[FAR]["sentence"] is None
    assert cli_answers[FAR]["message"] == qa.NO_ANSWER and len(cli_answers[FAR]["passages"]) == 3
    if cli_answers[ANSWERED]["calibration"] != "rule":
        assert cli_answers[ANSWERED]["confidence"] > cli_answers[FAR]["confidence"]
    else:  # the model has no calibration file: no probability is claimed, on any face
        assert cli_answers[ANSWERED]["confidence"] is None is cli_answers[FAR]["confidence"]


def test_a_follow_up_gets_the_same_answer_from_python_the_api_and_the_chat(report_index, app_url):  # noqa: F811
    first, follow_up = "Quel groupe a mené les attaques ?", "Quelle est son idéologie ?"
    expected = from_python(follow_up, report_index, [first])
    client = Client(app_url + "/", verbose=False)
    as_questions = client.predict(follow_up, [first], 3, api_name="/ask")
    as_messages = client.predict(follow_up, [{"role": "user", "content": first},
                                             {"role": "assistant", "content": "…"}], 3, api_name="/ask")
    assert as_questions["follow_up"] and as_questions["query"].startswith(first)
    _, _, turns = respond(first, [], 3, None, index=report_index)
    chat = from_chat(follow_up, report_index, turns)
    assert same(from_dict(as_questions), expected) and same(from_dict(as_messages), expected)
    assert same(chat, expected)
    alone = client.predict(follow_up, api_name="/ask")  # history and k are optional
    assert alone["follow_up"] is False and len(alone["passages"]) == 3


def call_ask(base: str, data: list) -> tuple[str, object]:
    """POST /gradio_api/call/ask as plain HTTP, then read the event stream: (event name, data)."""
    posted = httpx.post(f"{base}/gradio_api/call/ask", json={"data": data}, timeout=30)
    assert posted.status_code == 200, posted.text
    stream = httpx.get(f"{base}/gradio_api/call/ask/{posted.json()['event_id']}", timeout=30).text
    event = None
    for line in stream.splitlines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event in ("complete", "error"):
            return event, json.loads(line.removeprefix("data: "))
    return event, None


def test_ask_over_plain_http(app_url, report_index):  # noqa: F811
    event, data = call_ask(app_url, [ANSWERED, [], 2])
    assert event == "complete"
    assert same(from_dict(data[0]), from_python(ANSWERED, report_index)) and len(data[0]["passages"]) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["", [], 3], "La question est vide"),
        (["x" * 2001, [], 3], "Question trop longue"),
        ([ANSWERED, "Quel groupe ?", 3], "L'historique doit être une liste"),
        ([ANSWERED, ["Q ?"] * 101, 3], "Historique trop long (101 tours\u202f; maximum 100)"),
        ([ANSWERED, ["Q ?", "x" * 2001], 3], "Historique invalide (tour 2)\u202f: 2001 caractères"),
        ([ANSWERED, [3], 3], "Historique invalide (tour 1)"),
        ([ANSWERED, [{"role": "user", "content": {"a": 1}}], 3], "Historique invalide (tour 1)"),
        ([ANSWERED, [], 0], "Le nombre de passages doit être un entier de 1 à 50"),
    ],
)
def test_ask_rejects_bad_input_in_french(app_url, data, message):  # noqa: F811
    event, payload = call_ask(app_url, data)
    assert event == "error"
    assert message in payload["error"]
