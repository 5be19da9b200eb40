"""The page: `build_app` lays out the gr.Blocks, one function per part of the page, and wires its
events and API routes to the handlers of `ui.handlers`.

The page, top to bottom: the title and the corpus summary; the chat (conversation, question box,
examples) beside the side panel (number of passages, new conversation, document filter, source
viewer); and a hidden citation bridge that the <head> script (`ui.assets.HEAD`) drives.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import gradio as gr

import qa
from qa.index import IndexStatus
from qa.search import MAX_QUESTION_CHARS
from qa.terminal import clean
from qa.wording import typeset
from ui.assets import AFTER_ANSWER_JS, SKIP_AND_WAIT, VIEWER_JS, append_turn_js
from ui.guards import analytics_off
from ui.handlers import (
    DEFAULT_K,
    MAX_TURNS,
    MAX_UI_K,
    ask_answer,
    index_status,
    respond,
    retrieve_passages,
    show_source,
    summary,
    validate_turn,
)
from ui.render import VIEWER_PLACEHOLDER

EXAMPLES = [  # a narrow no-break space before «?»: it never wraps alone onto the next line
    typeset(question)
    for question in (
        "Qui a revendiqué les attaques ?",
        "Combien de localités ont été ciblées ?",
        "Quelles forces étrangères quittent la région ?",
        "Quel rôle joue la MINUSMA ?",
        "Quelles armes ont été utilisées ?",
        "Quelles sont les conséquences pour les civils ?",
    )
]
CONCURRENCY = 2  # two CPU cores: more parallel questions would only slow each other down
TITLE = "Questions-réponses sur les rapports"


class ChatPanel(NamedTuple):
    """The left column: the conversation, the question box and its button, the example questions, and
    the hidden chatbot that carries each new turn's two messages to the page (`last_turn`)."""

    chat: gr.Chatbot
    question: gr.Textbox
    send: gr.Button
    examples: gr.Examples
    last_turn: gr.Chatbot


class SidePanel(NamedTuple):
    """The right column: the number of passages, «Nouvelle conversation», the document filter, the viewer."""

    k: gr.Slider
    clear: gr.Button
    docs: gr.Dropdown
    viewer: gr.HTML


class Page(NamedTuple):
    """Every component an event reads or writes: the summary, the session's turns, both panels, and the
    hidden citation bridge (`cite_sel` gets "<turn>:<rank>", then `cite_go` is clicked)."""

    summary: gr.HTML
    turns: gr.State
    chat: ChatPanel
    side: SidePanel
    cite_sel: gr.Textbox
    cite_go: gr.Button


def build_app(index: str | Path = "index", corpus: str | Path = "corpus") -> gr.Blocks:
    """The chat app over the index at `index` (built from `corpus`). Launch it with `ui.serving.launch`."""
    analytics_off()
    doc_choices = document_choices(qa.index_status(index, check_model=False))
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        page = lay_out_page(index, corpus, doc_choices)
        wire_chat(page, index)
        wire_viewer_and_reset(page, index)
        demo.load(lambda: summary(index, corpus), None, [page.summary], api_visibility="private",
                  show_progress="hidden")
        add_api_routes(index, corpus)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64, api_open=False)  # no route skips the queue
    return demo


def document_choices(status: IndexStatus) -> list[tuple[str, str]]:
    """The document filter's choices: ("<title> (<id>)", id) for each document of the index, the label
    inert (a title or file name from the corpus shows its bidi overrides as escapes)."""
    return [(clean(f"{d.title} ({d.doc})"), d.doc) for d in status.documents]


def lay_out_page(index: str | Path, corpus: str | Path, doc_choices: list[tuple[str, str]]) -> Page:
    """All the page's components, in page order, inside the current gr.Blocks."""
    summary_box = header(index, corpus)
    turns = gr.State([])
    with gr.Row(equal_height=False):
        chat = chat_panel()
        side = side_panel(doc_choices)
    cite_sel = gr.Textbox(visible="hidden", elem_id="cite_sel", max_length=20)
    cite_go = gr.Button("Afficher la source", visible="hidden", elem_id="cite_go")
    return Page(summary_box, turns, chat, side, cite_sel, cite_go)


def header(index: str | Path, corpus: str | Path) -> gr.HTML:
    """The title, what the assistant does, and the corpus summary (returned: it is refreshed at page load)."""
    gr.Markdown(
        f"# {TITLE}\n"
        + typeset("Posez une question en français : l'assistant cite les passages du rapport qui y répondent, "
                  "mot pour mot, sans rien inventer."),
        elem_classes="app-title",
    )
    return gr.HTML(summary(index, corpus), elem_id="summary")


def chat_panel() -> ChatPanel:
    """The left column: the conversation (HTML answers, sanitised), the question box, the examples."""
    with gr.Column(scale=3, min_width=420):
        chat = gr.Chatbot(
            label="Conversation",
            show_label=False,
            elem_id="chat",
            height="auto",  # no box of its own: the page has one scroll, the newest answer shows whole
            autoscroll=False,
            render_markdown=False,
            sanitize_html=True,
            feedback_options=None,
            buttons=[],
            layout="panel",
            placeholder="**Posez une question sur le rapport.**\n\nChaque réponse cite le texte exact, "
            "avec ses sources.",
        )
        gr.HTML(SKIP_AND_WAIT, elem_id="qa-bar", js_on_load=None)  # «Aller à la dernière réponse», the wait
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
        last_turn = gr.Chatbot(visible=False, render_markdown=False, sanitize_html=True)
    return ChatPanel(chat, question, send, examples, last_turn)


def side_panel(doc_choices: list[tuple[str, str]]) -> SidePanel:
    """The right column: the controls, the document filter (shown only for two documents or more), the viewer."""
    with gr.Column(scale=2, min_width=320, elem_id="side"):
        with gr.Row(equal_height=False, elem_id="controls"):
            k = gr.Slider(1, MAX_UI_K, value=DEFAULT_K, step=1, label="Nombre de passages", scale=3, buttons=[])
            clear = gr.Button("Nouvelle conversation", variant="secondary", scale=1, min_width=150, size="md")
        docs = gr.Dropdown(
            doc_choices,
            value=[],
            multiselect=True,
            label="Documents interrogés (tous si vide)",
            visible=len(doc_choices) > 1,
        )
        viewer = gr.HTML(VIEWER_PLACEHOLDER, label="Document source", elem_id="viewer", js_on_load=VIEWER_JS)
    return SidePanel(k, clear, docs, viewer)


def wire_chat(page: Page, index: str | Path) -> None:
    """A question (Enter, «Envoyer» or an example) is checked, then answered in a search slot; the page
    appends the new turn to the chat (only that turn crosses the network) and scrolls to it. No Gradio
    progress over the question box: it writes «processing» in English over the text; a long wait is
    said in French under the conversation (`ui.assets.SKIP_AND_WAIT`)."""

    def ask_turn(question: str, turns: list, k: float, docs: list) -> tuple[str, list, list]:
        return respond(question, turns, k, docs, index=index)

    def validate(question: str, turns: list, k: float, docs: list) -> None:
        validate_turn(question, turns, k, docs, index=index)

    chat, side = page.chat, page.side
    inputs, outputs = [chat.question, page.turns, side.k, side.docs], [chat.question, chat.last_turn, page.turns]
    append = {"fn": None, "inputs": [chat.chat, chat.last_turn], "outputs": [chat.chat],
              "js": append_turn_js(2 * MAX_TURNS), "api_visibility": "private"}
    for event in (chat.question.submit, chat.send.click):
        event(
            validate, inputs, None, api_visibility="private", concurrency_limit=None, show_progress="hidden"
        ).success(ask_turn, inputs, outputs, api_visibility="private", concurrency_id="ask", show_progress="hidden"
                  ).success(**append).then(
            None, js=AFTER_ANSWER_JS
        )
    chat.examples.load_input_event.then(
        ask_turn, inputs, outputs, api_visibility="private", concurrency_id="ask", show_progress="hidden"
    ).success(**append).then(None, js=AFTER_ANSWER_JS)


def wire_viewer_and_reset(page: Page, index: str | Path) -> None:
    """A citation click opens its source in the viewer; «Nouvelle conversation» empties the session (the
    chat has no clear icon of its own: it would repeat that button, in a corner of the first question)."""

    def open_source(selection: str, turns: list) -> str:
        return show_source(selection, turns, index=index)

    chat, turns, viewer = page.chat.chat, page.turns, page.side.viewer
    page.cite_go.click(open_source, [page.cite_sel, turns], [viewer], api_visibility="private", concurrency_limit=None,
                       show_progress="hidden")
    page.side.clear.click(lambda: ([], [], VIEWER_PLACEHOLDER), None, [chat, turns, viewer], api_visibility="private",
                          show_progress="hidden")


def add_api_routes(index: str | Path, corpus: str | Path) -> None:
    """The public API: /retrieve, /ask and /status (their signatures and descriptions are the API's docs)."""

    def retrieve(question: str, k: int = 5) -> list[dict]:
        return retrieve_passages(question, k, index=index)

    def ask(question: str, history: list | None = None, k: int = DEFAULT_K) -> dict:
        return ask_answer(question, history, k, index=index)

    def status() -> dict:
        return index_status(index, corpus)

    gr.api(
        retrieve,
        api_name="retrieve",
        concurrency_id="ask",  # chat and API share the two search slots: two CPU cores in all
        api_description=typeset("Les k passages du rapport qui répondent le mieux à la question (meilleur d'abord), "
        "avec document, section, position en caractères et phrase réponse."),
    )
    gr.api(
        ask,
        api_name="ask",
        concurrency_id="ask",
        api_description=typeset("La réponse à la question, comme « qa ask --json » : issue (answer : réponse, "
        "possible : réponse à vérifier, none : pas de réponse), confiance estimée, phrase citée mot pour mot "
        "et passages avec leur pertinence. history : les questions précédentes (textes) ou les messages de "
        "la conversation, pour les questions de suivi ; k : nombre de passages (3 par défaut)."),
    )
    gr.api(
        status,
        api_name="status",
        concurrency_limit=None,  # reads the manifest and hashes files: no search slot needed
        api_description=typeset("L'état de l'index : à jour ou périmé (documents ajoutés, modifiés, supprimés "
        "depuis la construction, modèle changé), nombre de documents et de passages."),
    )
