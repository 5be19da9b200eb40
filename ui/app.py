"""The Gradio chat app: layout, handlers, and `serve` (index check, then launch on 127.0.0.1).

Handlers are module-level functions taking the index path, so tests call them directly; every
input is validated in Python (lengths, types, ranges), since any event is callable over HTTP.
"""

from __future__ import annotations

import html
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

import qa
from qa.freshness import built_corpus
from qa.index import load_index, read_documents
from qa.search import MAX_K, MAX_QUESTION_CHARS
from ui.assets import CSS, HEAD, SCROLL_TO_LAST_JS, VIEWER_JS
from ui.guards import BlockUploads, check_docs, check_k, check_question, fail, french_error
from ui.render import VIEWER_PLACEHOLDER, citations, render_answer, render_source, render_summary, render_user

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by Gradio at each telemetry call: none, ever

EXAMPLES = [
    "Qui a revendiqué les attaques ?",
    "Combien de localités ont été ciblées ?",
    "Quelles forces étrangères quittent la région ?",
    "Quel rôle joue la MINUSMA ?",
    "Quelles armes ont été utilisées ?",
    "Quelles sont les conséquences pour les civils ?",
]
MAX_UI_K = 10  # the slider's range; the API accepts up to the engine's MAX_K
DEFAULT_K = 3
MAX_TURNS = 100  # turns kept per session (state memory is bounded)
MAX_API_HISTORY = 100  # earlier turns an /ask call may send (the engine reads only the last few)
CONCURRENCY = 2  # two CPU cores: more parallel questions would only slow each other down
_CITE_REF = re.compile(r"(\d{1,6}):(\d{1,3})")

# {"id": int, "question": str, "html": str, "citations": {rank: Citation},
#  "outcome": str, "confidence": float | None, "sentence": str | None}: what was shown, kept server-side
Turn = dict[str, Any]


def messages(turns: list[Turn]) -> list[dict[str, str]]:
    """The chat as Gradio messages, rebuilt from the server-side state (never from client HTML)."""
    out = []
    for t in turns:
        out.append({"role": "user", "content": render_user(t["question"])})
        out.append({"role": "assistant", "content": t["html"]})
    return out


def validate_turn(
    question: object, turns: object = None, k: object = DEFAULT_K, docs: object = None, *, index: str | Path = "index"
) -> None:
    """The chat inputs' checks alone, run before `respond` so a refusal is a toast, not an error overlay."""
    check_question(question)
    check_k(k, MAX_UI_K)
    check_docs(docs, index)


def respond(
    question: object,
    turns: list[Turn] | None,
    k: object = DEFAULT_K,
    docs: object = None,
    *,
    index: str | Path = "index",
) -> tuple[str, list[dict[str, str]], list[Turn]]:
    """Answer one chat turn: ("" for the textbox, the chat messages, the new state)."""
    question = check_question(question)
    k = check_k(k, MAX_UI_K)
    turns = list(turns or [])
    try:
        answer = qa.ask(question, [t["question"] for t in turns], k=k, index=index, docs=check_docs(docs, index))
    except qa.QAError as exc:
        raise fail(french_error(exc)) from exc
    except ValueError as exc:
        raise fail(f"Question refusée : {html.escape(str(exc))}") from exc
    turn_id = turns[-1]["id"] + 1 if turns else 0
    turns.append(
        {
            "id": turn_id,
            "question": question,
            "html": render_answer(answer, turn_id),
            "citations": citations(answer),
            "outcome": answer.outcome,
            "confidence": answer.confidence,
            "sentence": None if answer.sentence is None else answer.sentence.text,
        }
    )
    turns = turns[-MAX_TURNS:]
    return "", messages(turns), turns


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
        doc = read_documents(index).get(citation.doc)
        # The index may have been rebuilt since the answer: never highlight offsets in another text.
        if doc is None or doc["text"][citation.start : citation.end] != citation.text:
            raise ValueError(f"{citation.doc} is not in the index as it was cited")
        return render_source(doc["text"], citation)
    except qa.QAError as exc:
        raise fail(french_error(exc)) from exc
    except ValueError as exc:  # the index was rebuilt since the answer: its offsets may point elsewhere now
        raise fail("Ce passage n'est plus dans l'index actuel : posez la question à nouveau.") from exc


def retrieve_passages(question: object, k: object = 5, *, index: str | Path = "index") -> list[dict]:
    """The API's /retrieve: the k best passages as dicts (Passage.to_dict), best first."""
    question = check_question(question)
    k = check_k(k, MAX_K)
    try:
        return [p.to_dict() for p in qa.retrieve(question, k, index=index)]
    except qa.QAError as exc:
        raise fail(french_error(exc)) from exc


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
    try:
        return qa.ask(question, history, k=k, index=index).to_dict()
    except qa.QAError as exc:
        raise fail(french_error(exc)) from exc
    except ValueError as exc:
        raise fail(f"Question refusée : {html.escape(str(exc))}") from exc


def index_status(index: str | Path, corpus: str | Path | None) -> dict:
    """The API's /status: is the index the corpus as it is now? (A stale index is never served silently.)"""
    from qa import storage

    try:
        manifest = storage.live_manifest(index)
        fresh = qa.check_freshness(index, corpus, manifest=manifest)
    except (qa.QAError, OSError, ValueError, KeyError) as exc:
        raise fail(french_error(exc) if isinstance(exc, qa.QAError) else "L'index est illisible : qa index build") from exc
    return {
        "stale": fresh.stale, "added": list(fresh.added), "changed": list(fresh.changed), "removed": list(fresh.removed),
        "model_changed": fresh.model_changed, "settings_changed": fresh.settings_changed,
        "built": manifest["created"], "documents": manifest["counts"]["documents"],
        "passages": manifest["counts"]["passages"],
    }


def summary(index: str | Path, corpus: str | Path | None) -> str:
    """The corpus summary with a stale-index warning, or the French error when there is no index."""
    try:
        manifest = load_index(index).manifest
        fresh = qa.check_freshness(index, corpus)
    except qa.QAError as exc:
        return f'<div class="stale">{french_error(exc)}</div>'
    return render_summary(manifest, vars(fresh))


def build_app(index: str | Path = "index", corpus: str | Path = "corpus") -> gr.Blocks:
    """The chat app over the index at `index` (built from `corpus`). Launch it with `launch`."""
    manifest = load_index(index).manifest
    doc_choices = [(f"{info.get('title') or doc} ({doc})", doc) for doc, info in manifest["documents"].items()]

    def ask_turn(question: str, turns: list, k: float, docs: list) -> tuple[str, list, list]:
        return respond(question, turns, k, docs, index=index)

    def validate(question: str, turns: list, k: float, docs: list) -> None:
        validate_turn(question, turns, k, docs, index=index)

    def open_source(selection: str, turns: list) -> str:
        return show_source(selection, turns, index=index)

    def retrieve(question: str, k: int = 5) -> list[dict]:
        return retrieve_passages(question, k, index=index)

    def ask(question: str, history: list | None = None, k: int = DEFAULT_K) -> dict:
        return ask_answer(question, history, k, index=index)

    def status() -> dict:
        return index_status(index, corpus)

    with gr.Blocks(title="Questions-réponses sur les rapports", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Questions-réponses sur les rapports\n"
            "Posez une question en français : l'assistant cite les passages du rapport qui y répondent, "
            "mot pour mot, sans rien inventer.",
            elem_classes="app-title",
        )
        summary_box = gr.HTML(summary(index, corpus), elem_id="summary")
        turns = gr.State([])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chat = gr.Chatbot(
                    label="Conversation",
                    show_label=False,
                    elem_id="chat",
                    height=540,
                    autoscroll=False,
                    render_markdown=False,
                    sanitize_html=True,
                    feedback_options=None,
                    buttons=[],
                    layout="panel",
                    placeholder="**Posez une question sur le rapport.**\n\nChaque réponse cite le texte exact, "
                    "avec ses sources.",
                )
                with gr.Row(equal_height=False):
                    question = gr.Textbox(
                        label="Votre question",
                        show_label=False,
                        placeholder="Posez votre question sur le rapport…",
                        max_length=MAX_QUESTION_CHARS,
                        lines=1,
                        scale=5,
                        elem_id="question",
                        autofocus=True,
                    )
                    send = gr.Button("Envoyer", variant="primary", scale=1, min_width=110, elem_id="send")
                examples = gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="Exemples de questions")
            with gr.Column(scale=2, min_width=320):
                with gr.Row(equal_height=False, elem_id="controls"):
                    k = gr.Slider(1, MAX_UI_K, value=DEFAULT_K, step=1, label="Nombre de passages", scale=3)
                    clear = gr.Button("Nouvelle conversation", variant="secondary", scale=1, min_width=150, size="md")
                docs = gr.Dropdown(
                    doc_choices,
                    value=[],
                    multiselect=True,
                    label="Documents interrogés (tous si vide)",
                    visible=len(doc_choices) > 1,
                )
                viewer = gr.HTML(VIEWER_PLACEHOLDER, label="Document source", elem_id="viewer", js_on_load=VIEWER_JS)
        cite_sel = gr.Textbox(visible="hidden", elem_id="cite_sel", max_length=20)
        cite_go = gr.Button("Afficher la source", visible="hidden", elem_id="cite_go")

        inputs, outputs = [question, turns, k, docs], [question, chat, turns]
        for event in (question.submit, send.click):
            event(
                validate, inputs, None, api_visibility="private", concurrency_limit=None, show_progress="hidden"
            ).success(ask_turn, inputs, outputs, api_visibility="private", concurrency_id="ask").then(
                None, js=SCROLL_TO_LAST_JS
            )
        examples.load_input_event.then(ask_turn, inputs, outputs, api_visibility="private", concurrency_id="ask").then(
            None, js=SCROLL_TO_LAST_JS
        )
        cite_go.click(open_source, [cite_sel, turns], [viewer], api_visibility="private", concurrency_limit=None)
        clear.click(lambda: ([], [], VIEWER_PLACEHOLDER), None, [chat, turns, viewer], api_visibility="private")
        chat.clear(lambda: ([], VIEWER_PLACEHOLDER), None, [turns, viewer], api_visibility="private")
        demo.load(lambda: summary(index, corpus), None, [summary_box], api_visibility="private")
        gr.api(
            retrieve,
            api_name="retrieve",
            concurrency_id="ask",  # chat and API share the two search slots: two CPU cores in all
            api_description="Les k passages du rapport qui répondent le mieux à la question (meilleur d'abord), "
            "avec document, section, position en caractères et phrase réponse.",
        )
        gr.api(
            ask,
            api_name="ask",
            concurrency_id="ask",
            api_description="La réponse à la question, comme « qa ask --json » : issue (answer : réponse, "
            "possible : réponse à vérifier, none : pas de réponse), confiance estimée, phrase citée mot pour mot "
            "et passages avec leur pertinence. history : les questions précédentes (textes) ou les messages de "
            "la conversation, pour les questions de suivi ; k : nombre de passages (3 par défaut).",
        )
        gr.api(
            status,
            api_name="status",
            concurrency_limit=None,  # reads the manifest and hashes files: no search slot needed
            api_description="L'état de l'index : à jour ou périmé (documents ajoutés, modifiés, supprimés "
            "depuis la construction, modèle changé), nombre de documents et de passages.",
        )
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo


THEME = gr.themes.Soft(
    primary_hue="blue", font=["system-ui", "Segoe UI", "Roboto", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, *, prevent_thread_lock: bool = False) -> None:
    """Launch with the app's settings: local only unless asked, no share, no uploads, no analytics."""
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=prevent_thread_lock,
        theme=THEME,
        css=CSS,
        head=HEAD,
        footer_links=["api"],
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        run_history=False,
        quiet=True,
        show_error=False,
        app_kwargs={"middleware": [Middleware(BlockUploads)]},
    )


def ensure_index(index: str | Path, corpus: str | Path | None = None) -> Path:
    """Build the index if it is missing, unreadable or stale, saying so in French; return its corpus.

    With no `corpus`, the one the index was built from is used (else `corpus/`), so serving an
    index built from another folder never rebuilds it from the wrong one; likewise the rebuild uses
    the model the index was built with (`qa index build --model …`), not the default.
    """
    corpus = Path(corpus) if corpus is not None else built_corpus(index) or Path("corpus")
    model = built_model(index)
    try:
        if not qa.check_freshness(index, corpus).stale:
            load_index(index)
            return corpus
    except (qa.IndexNotFoundError, qa.IndexCorruptError, ValueError, KeyError, OSError):
        pass
    print("Index absent ou périmé : reconstruction…", file=sys.stderr, flush=True)
    s = qa.build_index(corpus, index, model=model)
    print(f"Index prêt : {s.documents} document(s), {s.passages} passages ({s.embedded_passages} encodés), "
          f"en {s.seconds:.1f} s.", file=sys.stderr)
    return corpus


def built_model(index: str | Path) -> str | None:
    """The model the live build was made with, or None (the default) when there is no readable build."""
    from qa import storage

    try:
        return storage.live_manifest(index)["model"]["id"]
    except (qa.QAError, OSError, ValueError, KeyError):
        return None


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    corpus: str | Path | None = None,
    index: str | Path = "index",
    *,
    prevent_thread_lock: bool = False,
) -> gr.Blocks:
    """`qa serve`: check (or rebuild) the index, load the model, then launch the app."""
    corpus = ensure_index(index, corpus)
    print("Chargement du modèle…", file=sys.stderr, flush=True)
    qa.retrieve("Bonjour", k=1, index=index)  # the first real question then answers at once
    demo = build_app(index, corpus)
    launch(demo, host, port, prevent_thread_lock=True)
    print(f"Assistant prêt : {demo.local_url} (Ctrl+C pour arrêter)", file=sys.stderr, flush=True)
    if not prevent_thread_lock:
        try:
            while demo.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("Arrêt de l'assistant.", file=sys.stderr)
        finally:
            demo.close()
    return demo
