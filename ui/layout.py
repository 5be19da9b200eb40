"""The page: `build_app` lays out the gr.Blocks, one function per part of the page, and wires its
events and API routes to the handlers of `ui.handlers`.

The page, top to bottom: the title and the corpus summary; the chat (the conversation log, the bar under
it, the question box, the examples) beside the side panel (number of passages, new conversation, document
filter, source viewer). The page's script (`ui/static/app.js`) appends each turn to the log and says it.

The conversation is the app's own HTML (gr.HTML), not gr.Chatbot, and refusals are said in the bar under
it, not in Gradio's toasts: Gradio names each chat message «user's message: …» / «bot's message: <the
answer's HTML>», and its toast a close button «Close» inside a button, in English whatever the browser's
language; a screen reader would read them all. The number of passages is a gr.Number for the same reason
(a gr.Slider names its fields «number input for …» and «range slider for …»).
"""

from __future__ import annotations

import html
import itertools
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr

import qa
from qa import MAX_QUESTION_CHARS, IndexStatus
from qa.terminal import clean
from qa.wording import typeset
from ui.guards import analytics_off
from ui.handlers import (
    DEFAULT_K,
    MAX_TURNS,
    ask_answer,
    index_status,
    respond,
    retrieve_passages,
    show_source,
    summary,
)
from ui.render import VIEWER_PLACEHOLDER, render_turn, viewer_notice

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

# The conversation log (the page's script appends each turn to .qa-log) and what shows while it is empty.
CHAT = ('<div class="qa-empty"><p><strong>Posez une question sur le rapport.</strong></p>'
        "<p>Chaque réponse cite le texte exact, avec ses sources.</p></div>"
        '<section class="qa-log" aria-label="Conversation"></section>')
# Between the conversation and the question box: the way to the newest answer (shown once there is one),
# the wait (said when a question takes long), a refusal (an alert), the polite live region that says each
# answer in one sentence, and the flag that opens the viewer as a drawer on a phone (`ui/static/app.css`).
BAR = (
    '<button type="button" class="qa-skip" hidden>Aller à la dernière réponse</button>'
    '<p class="qa-busy" hidden>Recherche en cours…</p>'
    '<p class="qa-notice" role="alert"></p>'
    '<div id="qa-live" class="qa-sr-only" role="status" aria-live="polite"></div>'
    '<span class="qa-viewer-flag" hidden></span>'
)
# The events' own JavaScript: calls into the page's script (`ui/static/app.js`), which may not be there yet.
WAIT_JS = "(...values) => window.qaWait ? window.qaWait(...values) : values"
REPLY_JS = "(reply) => { if (window.qaReply) window.qaReply(reply); }"
DONE_JS = "() => { if (window.qaDone) window.qaDone(); }"
CHAT_CLICK_JS = "element.addEventListener('click', (e) => window.qaChatClick && window.qaChatClick(e, trigger));"
VIEWER_JS = "watch('value', () => { if (window.qaShowPassage) window.qaShowPassage(element); });"
CLEAR_JS = "() => window.qaClear ? window.qaClear() : []"

_replies = itertools.count()  # each reply's id: the page tells a new reply from the last one shown


class ChatPanel(NamedTuple):
    """The left column: the conversation log, the question box and its button, the example questions, and
    the hidden reply that carries each turn's HTML, or its refusal, to the page's script."""

    chat: gr.HTML
    question: gr.Textbox
    send: gr.Button
    examples: gr.Examples
    reply: gr.JSON


class SidePanel(NamedTuple):
    """The right column: the number of passages, «Nouvelle conversation», the document filter, the viewer."""

    k: gr.Number
    clear: gr.Button
    docs: gr.Dropdown
    viewer: gr.HTML


class Page(NamedTuple):
    """Every component an event reads or writes: the summary, the session's turns, both panels."""

    summary: gr.HTML
    turns: gr.State
    chat: ChatPanel
    side: SidePanel


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
    with gr.Row(equal_height=False, elem_id="qa-main"):
        chat = chat_panel()
        side = side_panel(doc_choices)
    return Page(summary_box, turns, chat, side)


def header(index: str | Path, corpus: str | Path) -> gr.HTML:
    """The title, what the assistant does, and the corpus summary (returned: it is refreshed at page load)."""
    gr.Markdown(
        f"# {TITLE}\n"
        + typeset("Posez une question en français : l'assistant cite les passages du rapport qui y répondent, "
                  "mot pour mot, sans rien inventer."),
        elem_classes="app-title",
    )
    return gr.HTML(summary(index, corpus), elem_id="summary", js_on_load=None)


def chat_panel() -> ChatPanel:
    """The left column: the conversation log, the bar under it, the question box, the examples."""
    with gr.Column(scale=3, min_width=420):
        chat = gr.HTML(CHAT, elem_id="chat", js_on_load=CHAT_CLICK_JS, apply_default_css=False)
        gr.HTML(BAR, elem_id="qa-bar", js_on_load=None)
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
        examples = gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="Exemples de questions",
                               elem_id="examples")
        reply = gr.JSON(visible=False)
    return ChatPanel(chat, question, send, examples, reply)


def side_panel(doc_choices: list[tuple[str, str]]) -> SidePanel:
    """The right column: the controls, the document filter (shown only for two documents or more), the viewer.
    The number of passages has no bounds of Gradio's own: the handlers refuse one outside 1 to MAX_UI_K in
    French, where Gradio would in English."""
    with gr.Column(scale=2, min_width=320, elem_id="side"):
        with gr.Row(equal_height=False, elem_id="controls"):
            k = gr.Number(DEFAULT_K, label="Nombre de passages", precision=0, step=1, scale=3, min_width=150)
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


def refusal(exc: gr.Error) -> str:
    """A handler's French refusal as plain text (a gr.Error's message is HTML: its entities are decoded)."""
    return html.unescape(str(exc.message))


def wire_chat(page: Page, index: str | Path) -> None:
    """A question (Enter, «Envoyer» or an example) is answered in a search slot, or refused in French; the
    page's script appends the turn to the log (only that turn crosses the network) and says it, or says the
    refusal. No Gradio progress over the question box: it writes «processing» in English over the text; a
    long wait is said in French under the conversation."""

    def ask_turn(question: str, turns: list, k: float, docs: list) -> tuple[Any, dict, Any]:
        try:
            box, messages, turns = respond(question, turns, k, docs, index=index)
        except gr.Error as exc:  # the question stays in its box, the session as it was
            return gr.skip(), {"id": next(_replies), "refusal": refusal(exc)}, gr.skip()
        return box, {"id": next(_replies), "turn": render_turn(messages), "keep": MAX_TURNS}, turns

    chat, side = page.chat, page.side
    inputs, outputs = [chat.question, page.turns, side.k, side.docs], [chat.question, chat.reply, page.turns]
    for event in (chat.question.submit, chat.send.click, chat.examples.load_input_event.then):
        ask_on(event, ask_turn, inputs, outputs, chat.reply)


def ask_on(event: Any, fn: Any, inputs: list, outputs: list, reply: gr.JSON) -> None:
    """One way of asking (`event`: a listener such as `send.click`): the wait starts as the question
    leaves, `fn` answers in a search slot, then the page's script shows `reply`; an event refused before
    it ran (a full queue: Gradio's own toast says so) ends the wait too."""
    asked = event(fn, inputs, outputs, js=WAIT_JS, api_visibility="private", concurrency_id="ask",
                  show_progress="hidden")
    asked.then(None, [reply], None, js=REPLY_JS)
    asked.failure(None, js=DONE_JS)


def wire_viewer_and_reset(page: Page, index: str | Path) -> None:
    """A citation clicked in the log (the page's script sends its "<turn>:<rank>") opens its source in the
    viewer; «Nouvelle conversation» empties the session and the log."""

    def open_source(turns: list, event: gr.EventData) -> str:
        try:
            reference = getattr(event, "ref", None)
        except TypeError:  # event data that is not an object: no citation named
            reference = None
        try:
            return show_source(reference, turns, index=index)
        except gr.Error as exc:
            return viewer_notice(refusal(exc))

    turns, viewer = page.turns, page.side.viewer
    page.chat.chat.click(open_source, [turns], [viewer], api_visibility="private", concurrency_limit=None,
                         show_progress="hidden")
    page.side.clear.click(lambda: ([], VIEWER_PLACEHOLDER), None, [turns, viewer], js=CLEAR_JS,
                          api_visibility="private", show_progress="hidden")


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
