"""The page's look: the Gradio theme, the CSS, the <head> script that turns citation clicks into
source-viewer requests, and the viewer's JS (Gradio 6 takes theme, CSS and head at launch)."""

from __future__ import annotations

import gradio as gr

THEME = gr.themes.Soft(
    primary_hue="blue", font=["system-ui", "Segoe UI", "Roboto", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)

# Citation buttons live inside chat messages, whose HTML is sanitised (no onclick, no data-*), so one
# document-level listener handles them all: it copies the button's value ("<turn>:<rank>") into the
# hidden textbox #cite_sel and clicks the hidden button #cite_go, whose Python handler renders the
# document. The short delay lets the textbox's new value reach Gradio before the click reads it.
HEAD = """
<script>
document.addEventListener('click', function (event) {
  const btn = event.target.closest ? event.target.closest('button.cite-btn') : null;
  if (!btn || !btn.value) return;
  event.preventDefault();
  event.stopPropagation();
  const box = document.querySelector('#cite_sel textarea, #cite_sel input');
  const go = document.querySelector('button#cite_go, #cite_go button');
  if (!box || !go) return;
  box.value = btn.value;
  box.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(function () { go.click(); }, 50);
}, true);
</script>
"""

# Runs in the viewer's gr.HTML: after each new document, bring the highlighted passage into view.
VIEWER_JS = (
    "watch('value', () => { const m = element.querySelector('#hl'); "
    "if (m) m.scrollIntoView({block: 'center', behavior: 'instant'}); });"
)

# After an answer: scroll the chat (not the page) so the new question and its «Réponse» are in view.
SCROLL_TO_LAST_JS = """() => {
  const users = document.querySelectorAll('#chat [data-testid="user"]');
  const last = users[users.length - 1];
  if (!last) return;
  let box = last.parentElement;
  while (box && !(box.scrollHeight > box.clientHeight && getComputedStyle(box).overflowY !== 'visible')) {
    box = box.parentElement;
  }
  if (box) box.scrollTop += last.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
}"""



def append_turn_js(max_messages: int) -> str:
    """After an answer: append the turn's two messages (sent alone, in a hidden chatbot) to the chat,
    keeping the last `max_messages`: each turn sends its own HTML, never the whole conversation again."""
    return f"(chat, turn) => [(chat || []).concat(turn || []).slice(-{max_messages})]"


CSS = """
#controls { align-items: center; }
.app-title h1 { margin-bottom: 0.1em; }
.summary { font-size: 0.92em; color: var(--body-text-color-subdued); }
.summary-label { font-weight: 600; color: var(--body-text-color); margin-right: 0.3em; }
.stale { margin-top: 0.4em; padding: 0.5em 0.8em; border-radius: 6px; background: #fff4e5;
  color: #7a4100; border: 1px solid #f0b35a; font-weight: 600; }
.qa-answer { line-height: 1.5; }
.qa-answer .followup { font-size: 0.85em; color: var(--body-text-color-subdued); margin-bottom: 0.4em; }
.qa-answer .reponse { margin-bottom: 0.6em; }
.qa-answer .reponse-label { font-weight: 700; font-size: 0.8em; text-transform: uppercase;
  letter-spacing: 0.06em; color: #1d4ed8; }
.qa-answer .confiance { font-size: 0.8em; margin-left: 0.4em; color: var(--body-text-color-subdued); }
.qa-answer .reponse-text { margin: 0.2em 0 0 0; padding: 0.3em 0 0.3em 0.8em; border-left: 3px solid #1d4ed8;
  font-size: 1.05em; }
/* «Réponse possible — à vérifier»: hedged, never in the confident blue (amber #92400e on white: 7:1). */
.qa-answer .reponse-possible .reponse-label { color: #92400e; }
.qa-answer .reponse-possible .reponse-text { border-left: 3px dashed #d97706; background: #fffbeb;
  color: #1f2937; border-radius: 0 4px 4px 0; }
.qa-answer .noanswer { font-weight: 600; margin-bottom: 0.6em; }
.qa-answer .sources-title { font-weight: 700; font-size: 0.8em; text-transform: uppercase;
  letter-spacing: 0.06em; margin: 0.5em 0 0.3em; color: var(--body-text-color-subdued); }
.qa-answer .sources-title.near { color: #9a3412; text-transform: none; letter-spacing: normal; font-size: 0.9em; }
.qa-answer .card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.55em 0.75em;
  margin: 0.45em 0; background: var(--background-fill-primary); }
.qa-answer .card-head { font-weight: 600; }
.qa-answer .card-num { color: #1d4ed8; }
.qa-answer .card-section { font-style: italic; font-size: 0.92em; }
.qa-answer .card-meta { font-size: 0.82em; color: var(--body-text-color-subdued); margin: 0.15em 0 0.35em; }
.qa-answer .card-text { font-size: 0.93em; }
/* Yellow is the answer's quoted sentence only; a passage's closest sentence gets a neutral grey tint.
   Text colours are set, not inherited, so both keep their contrast in a dark theme (#1f2937 on #e5e7eb: 12:1). */
.qa-answer mark, .src mark.hl-sentence { background: #fde68a; color: #1f2937; padding: 0 0.1em; border-radius: 2px; }
.qa-answer mark.near, .src mark.hl-near { background: #e5e7eb; color: #1f2937; padding: 0 0.1em; border-radius: 2px; }
.qa-answer .card-actions { margin-top: 0.35em; }
.rel { white-space: nowrap; }
.rel-bar { display: inline-block; width: 0.45em; height: 0.7em; margin-right: 1px; border-radius: 1px;
  background: #d1d5db; vertical-align: baseline; }
.rel-high .rel-bar.on { background: #16a34a; }
.rel-medium .rel-bar.on { background: #ca8a04; }
.rel-low .rel-bar.on { background: #9ca3af; }
.rel-none { font-style: italic; }
button.cite-btn { font-size: 0.82em; padding: 0.1em 0.6em; border-radius: 5px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary);
  color: var(--body-text-color); }
button.cite-btn:hover { border-color: #1d4ed8; color: #1d4ed8; }
button.cite-btn.cite-num { font-size: 0.8em; padding: 0 0.3em; vertical-align: super; border: none;
  background: none; color: #1d4ed8; font-weight: 700; }
#viewer { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.6em 0.8em; }
.src-head { border-bottom: 1px solid var(--border-color-primary); padding-bottom: 0.35em; margin-bottom: 0.5em; }
.src-title { font-weight: 700; }
.src-meta { font-size: 0.82em; color: var(--body-text-color-subdued); }
.src-body { white-space: pre-wrap; line-height: 1.55; font-size: 0.93em; max-height: 62vh; overflow-y: auto; }
.src mark.hl-passage { background: #dbeafe; color: inherit; border-radius: 2px; padding: 0.05em 0; }
.src-empty { color: var(--body-text-color-subdued); font-size: 0.92em; }
"""
