"""The page: `build_app` lays out the gr.Blocks and wires its events and API routes to `ui.handlers`.

Top to bottom: the title and corpus summary; the chat (log, bar, question box, examples) beside the side
panel (number of passages, new conversation, document filter, source viewer). The page's script
(`ui/static/app.js`) appends each turn to the log and says it.

The log is the app's own HTML, not gr.Chatbot, and refusals are said in the bar under it, not in toasts:
Gradio names each chat message «user's message: …» / «bot's message: <the answer's HTML>», and a toast's
close button «Close», in English whatever the browser's language, and a screen reader reads them all. The
number of passages is a gr.Number for the same reason (a gr.Slider names its fields «number input for …»).
"""

from __future__ import annotations

import html
import itertools
from pathlib import Path
from typing import Any

import gradio as gr

import qa
from qa import MAX_QUESTION_CHARS
from qa.terminal import clean
from qa.wording import typeset
from ui.guards import analytics_off
from ui.handlers import DEFAULT_K, MAX_TURNS, ask_answer, index_status, respond, retrieve_passages, show_source, summary
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
# Under the log: the way to the newest answer, the wait, a refusal (an alert), the polite live region that
# says each answer in one sentence, and the flag that opens the viewer as a drawer on a phone (app.css).
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


def build_app(index: str | Path = "index", corpus: str | Path = "corpus") -> gr.Blocks:
    """The chat app over the index at `index` (built from `corpus`). Launch it with `ui.serving.launch`."""
    analytics_off()
    # The filter's labels are inert: a title or file name from the corpus shows its bidi overrides as escapes.
    doc_choices = [(clean(f"{d.title} ({d.doc})"), d.doc) for d in qa.index_status(index, check_model=False).documents]
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {TITLE}\n"
            + typeset("Posez une question en français : l'assistant cite les passages du rapport qui y répondent, "
                      "mot pour mot, sans rien inventer."),
            elem_classes="app-title",
        )
        summary_box = gr.HTML(summary(index, corpus), elem_id="summary", js_on_load=None)
        turns = gr.State([])
        with gr.Row(equal_height=False, elem_id="qa-main"):
            with gr.Column(scale=3, min_width=420):
                chat = gr.HTML(CHAT, elem_id="chat", js_on_load=CHAT_CLICK_JS, apply_default_css=False)
                gr.HTML(BAR, elem_id="qa-bar", js_on_load=None)
                with gr.Row(equal_height=False):
                    question = gr.Textbox(label="Votre question", show_label=False,
                                          placeholder="Posez votre question sur le rapport…",
                                          max_length=MAX_QUESTION_CHARS, lines=1, scale=5, elem_id="question",
                                          autofocus=True)
                    send = gr.Button("Envoyer", variant="primary", scale=1, min_width=110, elem_id="send")
                examples = gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="Exemples de questions",
                                       elem_id="examples")
                reply = gr.JSON(visible=False)  # each turn's HTML, or its refusal, for the page's script
            with gr.Column(scale=2, min_width=320, elem_id="side"):
                with gr.Row(equal_height=False, elem_id="controls"):
                    # No bounds of Gradio's own: the handlers refuse a number out of range in French, Gradio in English.
                    k = gr.Number(DEFAULT_K, label="Nombre de passages", precision=0, step=1, scale=3, min_width=150)
                    clear = gr.Button("Nouvelle conversation", variant="secondary", scale=1, min_width=150, size="md")
                docs = gr.Dropdown(doc_choices, value=[], multiselect=True, label="Documents interrogés (tous si vide)",
                                   visible=len(doc_choices) > 1)
                viewer = gr.HTML(VIEWER_PLACEHOLDER, label="Document source", elem_id="viewer", js_on_load=VIEWER_JS)

        # A question (Enter, «Envoyer» or an example) is answered in a search slot or refused in French; only
        # its turn crosses the network. No Gradio progress: it writes «processing» in English over the question.
        def ask_turn(question: str, state: list, k: float, docs: list) -> tuple[Any, dict, Any]:
            try:
                box, messages, state = respond(question, state, k, docs, index=index)
            except gr.Error as exc:  # the question stays in its box, the session as it was
                return gr.skip(), {"id": next(_replies), "refusal": refusal(exc)}, gr.skip()
            return box, {"id": next(_replies), "turn": render_turn(messages), "keep": MAX_TURNS}, state

        for event in (question.submit, send.click, examples.load_input_event.then):
            ask_on(event, ask_turn, [question, turns, k, docs], [question, reply, turns], reply)

        # A citation clicked in the log (the page's script sends its "<turn>:<rank>") opens its source.
        def open_source(state: list, event: gr.EventData) -> str:
            try:
                reference = getattr(event, "ref", None)
            except TypeError:  # event data that is not an object: no citation named
                reference = None
            try:
                return show_source(reference, state, index=index)
            except gr.Error as exc:
                return viewer_notice(refusal(exc))

        chat.click(open_source, [turns], [viewer], api_visibility="private", concurrency_limit=None,
                   show_progress="hidden")
        clear.click(lambda: ([], VIEWER_PLACEHOLDER), None, [turns, viewer], js=CLEAR_JS, api_visibility="private",
                    show_progress="hidden")
        demo.load(lambda: summary(index, corpus), None, [summary_box], api_visibility="private",
                  show_progress="hidden")
        add_api_routes(index, corpus)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64, api_open=False)  # no route skips the queue
    return demo


def refusal(exc: gr.Error) -> str:
    """A handler's French refusal as plain text (a gr.Error's message is HTML: its entities are decoded)."""
    return html.unescape(str(exc.message))


def ask_on(event: Any, fn: Any, inputs: list, outputs: list, reply: gr.JSON) -> None:
    """One way of asking (`event`: a listener such as `send.click`): the wait starts as the question leaves,
    `fn` answers, the page's script shows `reply`; an event refused before it ran (a full queue, which
    Gradio's own toast says) ends the wait too."""
    asked = event(fn, inputs, outputs, js=WAIT_JS, api_visibility="private", concurrency_id="ask",
                  show_progress="hidden")
    asked.then(None, [reply], None, js=REPLY_JS)
    asked.failure(None, js=DONE_JS)


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
