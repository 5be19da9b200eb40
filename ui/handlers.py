"""The handlers: what the page's events and the API routes call, as plain functions of the index path
(tests call them without a browser). Every input is validated here, since any event is callable over HTTP;
refusals are French `gr.Error`s (`ui.guards.fail`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import qa
from qa import MAX_K, MAX_QUESTION_CHARS, is_text
from qa.wording import typeset
from ui.guards import check_docs, check_k, check_question, engine_call, fail
from ui.render import citations, esc, render_answer, render_source, render_summary, render_user

MAX_UI_K = 10  # the number of passages the page accepts; the API accepts up to the engine's MAX_K
DEFAULT_K = 3
MAX_TURNS = 100  # turns kept per session, in its state and in the page (memory is bounded)
MAX_API_HISTORY = 100  # earlier turns an /ask call may send (the engine reads only the last few)
_CITE_REF = re.compile(r"(\d{1,6}):(\d{1,3})")

# {"id", "question", "citations": {rank: Citation}, "outcome", "confidence"}: what a session keeps of a turn,
# for follow-ups and the source viewer. Not the answer's HTML (~13 KB a turn): the page keeps that.
Turn = dict[str, Any]


def respond(question: object, turns: list[Turn] | None, k: object = DEFAULT_K, docs: object = None, *,
            index: str | Path = "index") -> tuple[str, list[dict[str, str]], list[Turn]]:
    """Answer one chat turn: ("" for the textbox, this turn's two chat messages (the question escaped, the
    answer's HTML) for the page to append, the new state of at most MAX_TURNS turns)."""
    question = check_question(question)
    k = check_k(k, MAX_UI_K)
    turns = list(turns or [])
    with engine_call():
        answer = qa.ask(question, [t["question"] for t in turns], k=k, index=index, docs=check_docs(docs, index))
    turn_id = turns[-1]["id"] + 1 if turns else 0
    turns.append({"id": turn_id, "question": question, "citations": citations(answer), "outcome": answer.outcome,
                  "confidence": answer.confidence})
    messages = [{"role": "user", "content": render_user(question)},
                {"role": "assistant", "content": render_answer(answer, turn_id)}]
    return "", messages, turns[-MAX_TURNS:]


def show_source(selection: object, turns: list[Turn] | None, *, index: str | Path = "index") -> str:
    """The source viewer's HTML for a citation "<turn>:<rank>" of this session's chat."""
    match = _CITE_REF.fullmatch(selection.strip()) if isinstance(selection, str) and len(selection) <= 20 else None
    if match is None:
        raise fail("Citation invalide.")
    turn = next((t for t in turns or [] if t["id"] == int(match[1])), None)
    citation = turn["citations"].get(int(match[2])) if turn else None
    if citation is None:
        raise fail("Citation introuvable dans cette conversation.")
    try:
        engine = qa.assistant(index)
        doc = engine.document(citation.doc)
        # The index may have been rebuilt since the answer: never highlight offsets in another text.
        if doc is None or not citation.matches(doc["text"]):
            raise ValueError(f"{citation.doc} is not in the index as it was cited")
        return render_source(doc["text"], citation, engine.headings(citation.doc))
    except qa.QAError as exc:
        raise fail(qa.french_message(exc)) from exc
    except ValueError as exc:
        raise fail("Ce passage n'est plus dans l'index actuel : posez la question à nouveau.") from exc


def retrieve_passages(question: object, k: object = 5, *, index: str | Path = "index") -> list[dict]:
    """The API's /retrieve: the k best passages as dicts (Passage.to_dict), best first."""
    question = check_question(question)
    k = check_k(k, MAX_K)
    with engine_call():
        return [p.to_dict() for p in qa.retrieve(question, k, index=index)]


def check_history(history: object) -> list[str | dict]:
    """The /ask history: earlier questions (strings) or chat messages ({"role", "content"}), oldest first,
    bounded (it arrives over HTTP: an unbounded list would cost memory and analysis time)."""
    if history in (None, ""):
        return []
    if not isinstance(history, list):
        raise fail("L'historique doit être une liste de questions précédentes (textes) ou de messages.")
    if len(history) > MAX_API_HISTORY:
        raise fail(f"Historique trop long ({len(history)} tours ; maximum {MAX_API_HISTORY}).")
    for n, turn in enumerate(history, start=1):
        text = turn if isinstance(turn, str) else _message_text(turn)
        if text is None:
            raise fail(f"Historique invalide (tour {n}) : attendu un texte ou un message "
                       '{"role": "user", "content": "…"}.')
        if len(text) > MAX_QUESTION_CHARS:
            raise fail(f"Historique invalide (tour {n}) : {len(text)} caractères ; maximum {MAX_QUESTION_CHARS}.")
        if not is_text(text):
            raise fail(f"Historique invalide (tour {n}) : caractères invalides (pas du texte UTF-8).")
    return history


def _message_text(turn: object) -> str | None:
    """A chat message's text (a string, or Gradio's list of {"type": "text", "text": …} parts), else None."""
    if not (isinstance(turn, Mapping) and isinstance(turn.get("role"), str)):
        return None
    content = turn.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and len(content) <= MAX_API_HISTORY and all(
        isinstance(part, Mapping) and isinstance(part.get("text", ""), str) for part in content
    ):
        return " ".join(part.get("text", "") for part in content)
    return None


def ask_answer(question: object, history: object = None, k: object = DEFAULT_K, *, index: str | Path = "index") -> dict:
    """The API's /ask: Answer.to_dict (as `qa ask --json`), follow-ups resolved with `history`."""
    question = check_question(question)
    history = check_history(history)
    k = check_k(k, MAX_K)
    with engine_call():
        return qa.ask(question, history, k=k, index=index).to_dict()


def index_status(index: str | Path, corpus: str | Path | None) -> dict:
    """The API's /status: is the index the corpus as it is now? (A stale index is never served silently.)"""
    try:
        return qa.assistant(index).status(corpus).to_dict()
    except qa.QAError as exc:
        raise fail(qa.french_message(exc)) from exc
    except OSError as exc:
        raise fail("L'index est illisible : qa index build") from exc


def summary(index: str | Path, corpus: str | Path | None) -> str:
    """The corpus summary with a stale-index warning, or the French error when there is no index."""
    try:
        engine = qa.assistant(index)
        engine.index  # noqa: B018 - loading refuses an index the installed model cannot serve, in French
        status = engine.status(corpus)
    except qa.QAError as exc:
        return f'<div class="stale">{esc(typeset(qa.french_message(exc)))}</div>'
    return render_summary(status)
