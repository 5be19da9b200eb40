"""The handlers: what the page's events and the API routes call, as plain functions of the index path.

Tests call them directly, without a browser or a server. Every input is validated in Python (lengths,
types, ranges), since any event is callable over HTTP; refusals are French `gr.Error`s (`ui.guards.fail`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import qa
from qa import MAX_K, MAX_QUESTION_CHARS, is_text
from qa.wording import typeset
from ui.guards import check_docs, check_k, check_question, engine_call, fail, french_error
from ui.render import citations, esc, render_answer, render_source, render_summary, render_user

MAX_UI_K = 10  # the slider's range; the API accepts up to the engine's MAX_K
DEFAULT_K = 3
MAX_TURNS = 100  # turns kept per session, in its state and in the page (memory is bounded)
MAX_API_HISTORY = 100  # earlier turns an /ask call may send (the engine reads only the last few)
_CITE_REF = re.compile(r"(\d{1,6}):(\d{1,3})")

# {"id": int, "question": str, "citations": {rank: Citation}, "outcome": str, "confidence": float | None}:
# what a session keeps of each turn, server-side: the question for follow-ups, where each citation points
# for the source viewer, and what the answer was. Not the answer's HTML (~13 KB a turn), which the page
# keeps: each turn sends only its own two messages, which the page appends to the chat.
Turn = dict[str, Any]


def turn_messages(question: str, answer_html: str) -> list[dict[str, str]]:
    """One turn as Gradio chat messages: the question (escaped) and the answer's HTML."""
    return [{"role": "user", "content": render_user(question)}, {"role": "assistant", "content": answer_html}]


def respond(
    question: object,
    turns: list[Turn] | None,
    k: object = DEFAULT_K,
    docs: object = None,
    *,
    index: str | Path = "index",
) -> tuple[str, list[dict[str, str]], list[Turn]]:
    """Answer one chat turn: ("" for the textbox, this turn's two messages for the page to append, the
    new state, at most MAX_TURNS turns)."""
    question = check_question(question)
    k = check_k(k, MAX_UI_K)
    turns = list(turns or [])
    with engine_call():
        answer = qa.ask(question, [t["question"] for t in turns], k=k, index=index, docs=check_docs(docs, index))
    turn_id = turns[-1]["id"] + 1 if turns else 0
    turns.append({"id": turn_id, "question": question, "citations": citations(answer), "outcome": answer.outcome,
                  "confidence": answer.confidence})
    return "", turn_messages(question, render_answer(answer, turn_id)), turns[-MAX_TURNS:]


def show_source(selection: object, turns: list[Turn] | None, *, index: str | Path = "index") -> str:
    """The source viewer's HTML for a citation "<turn>:<rank>" of this session's chat."""
    match = _CITE_REF.fullmatch(selection.strip()) if isinstance(selection, str) and len(selection) <= 20 else None
    if match is None:
        raise fail("Citation invalide.")
    turn_id, rank = int(match[1]), int(match[2])
    turn = next((t for t in turns or [] if t["id"] == turn_id), None)
    citation = turn["citations"].get(rank) if turn else None
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
        raise fail(french_error(exc)) from exc
    except ValueError as exc:  # the index was rebuilt since the answer: its offsets may point elsewhere now
        raise fail("Ce passage n'est plus dans l'index actuel : posez la question à nouveau.") from exc


def retrieve_passages(question: object, k: object = 5, *, index: str | Path = "index") -> list[dict]:
    """The API's /retrieve: the k best passages as dicts (Passage.to_dict), best first."""
    question = check_question(question)
    k = check_k(k, MAX_K)
    with engine_call():
        return [p.to_dict() for p in qa.retrieve(question, k, index=index)]


def check_history(history: object) -> list[str | dict]:
    """The /ask history: earlier user questions (strings) or chat messages ({"role", "content"}), oldest
    first; at most MAX_API_HISTORY turns of at most MAX_QUESTION_CHARS each, else a French gr.Error.

    Bounded because it arrives over HTTP: an unbounded list would cost memory and analysis time.
    """
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
    """A chat message's text (a string, or Gradio's list of {"type": "text", "text": …} parts); None
    when `turn` is not a message of that shape."""
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


def ask_answer(
    question: object, history: object = None, k: object = DEFAULT_K, *, index: str | Path = "index"
) -> dict:
    """The API's /ask: the answer as `qa ask --json` prints it (Answer.to_dict), follow-ups resolved
    with `history`, the same engine call as the chat's."""
    question = check_question(question)
    history = check_history(history)
    k = check_k(k, MAX_K)
    with engine_call():
        return qa.ask(question, history, k=k, index=index).to_dict()


def index_status(index: str | Path, corpus: str | Path | None) -> dict:
    """The API's /status: is the index the corpus as it is now? (A stale index is never served silently.)"""
    try:
        return qa.assistant(index).status(corpus).to_dict()
    except (qa.QAError, OSError) as exc:
        message = french_error(exc) if isinstance(exc, qa.QAError) else "L'index est illisible : qa index build"
        raise fail(message) from exc


def summary(index: str | Path, corpus: str | Path | None) -> str:
    """The corpus summary with a stale-index warning, or the French error when there is no index."""
    try:
        engine = qa.assistant(index)
        engine.index  # noqa: B018 - loading refuses an index the installed model cannot serve, in French
        status = engine.status(corpus)
    except qa.QAError as exc:
        return f'<div class="stale">{esc(typeset(french_error(exc)))}</div>'
    return render_summary(status)
