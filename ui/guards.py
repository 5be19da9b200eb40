"""Guards: input checks shared by every handler (all are callable over HTTP), French errors, no
analytics. The HTTP edge (routes, body cap) is `ui.serving.Edge`."""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

import qa
from qa.terminal import clean
from qa.wording import typeset


def analytics_off() -> None:
    """Turn Gradio's telemetry off for this process, before an app is made: Gradio 6 (checked in 6.31) reads
    GRADIO_ANALYTICS_ENABLED at each analytics call and as a Blocks or a Client takes its default, never at import."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def fail(message: str) -> gr.Error:
    """A French error for the user (a toast titled «Erreur», the API's error message), no traceback, in
    French typography, inert (a quoted file name shows its control characters and bidi overrides as escapes)."""
    return gr.Error(typeset(clean(message, newlines=True)), title="Erreur", print_exception=False)


@contextlib.contextmanager
def engine_call() -> Iterator[None]:
    """Engine refusals as French errors: a `qa.QAError` with its French message, a ValueError (a question
    the engine refuses) as «Question refusée»."""
    try:
        yield
    except qa.QAError as exc:
        raise fail(qa.french_message(exc)) from exc
    except ValueError as exc:
        raise fail(f"Question refusée : {html.escape(str(exc))}") from exc


def check_question(question: object) -> str:
    """The question stripped, or the engine's refusal (not Unicode, empty, too long) before any work is done."""
    if not isinstance(question, str):
        raise fail("La question doit être un texte.")
    with engine_call():
        return qa.check_question(question)


def check_k(k: object, maximum: int) -> int:
    """An integer number of passages from 1 to `maximum` (3.0 from a JSON client is accepted)."""
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= maximum:
        raise fail(f"Le nombre de passages doit être un entier de 1 à {maximum}.")
    return k


def check_docs(docs: object, index: str | Path) -> list[str] | None:
    """The document filter: None for all, else known document ids of the index."""
    if docs in (None, "", []):
        return None
    if isinstance(docs, str):
        docs = [docs]
    with engine_call():
        known = qa.assistant(index).document_ids()
    if not isinstance(docs, list) or not all(isinstance(d, str) and d in known for d in docs):
        raise fail("Filtre de documents invalide : choisissez des documents de l'index.")
    return docs
