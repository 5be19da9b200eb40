"""The page's look and behaviour: the Gradio theme, the CSS (`ui.style`), the <head> script (citation
clicks, «Copier la citation», the source viewer opened and closed, the short announcement of each answer,
the way from the question box to the newest answer, a wait said in French, Gradio's own words in French)
and the viewer's JS (Gradio 6 takes theme, CSS and head at launch)."""

from __future__ import annotations

import json

import gradio as gr

from qa.wording import typeset
from ui.messages import PAGE_TOASTS, TOAST_TITLES
from ui.style import CSS, HEAD_CSS

__all__ = ["AFTER_ANSWER_JS", "CSS", "HEAD", "SKIP_AND_WAIT", "THEME", "VIEWER_JS", "append_turn_js"]

# Soft's greys and blue-500 read at 2.4-3.7:1 on its light backgrounds; these read at 4.5:1 or more.
THEME = gr.themes.Soft(
    primary_hue="blue", font=["system-ui", "Segoe UI", "Roboto", "sans-serif"], font_mono=["ui-monospace", "monospace"]
).set(
    body_text_color_subdued="*neutral_600",
    block_info_text_color="*neutral_600",
    block_label_text_color="*primary_800",
    block_title_text_color="*primary_800",
    button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800",
    input_placeholder_color="*neutral_500",
)

# Gradio's own English, whatever the browser's language, put right as it appears (Gradio 6.31 writes
# these in its page script, not through its translations): the page's lang, the footer's «Use via API»
# and its name (the stray «·» after it is hidden by HEAD_CSS); the slider's «number input for …» and
# «range slider for …»; «user's message: …» and «bot's message: <the answer's HTML>» on each chat
# message (dropped: a message is read from its text); a toast's «Error» title, its «Close» button and
# the English texts of `ui.messages.PAGE_TOASTS` (a full queue's). A toast's header is a button (it
# folds the messages) holding the close button, which axe calls nested controls a screen reader cannot
# tell apart: it becomes plain text. «Scroll down» is never shown (CSS: the chat never scrolls inside a
# box), so it is out of the accessibility tree.
_FRENCH = {"titles": TOAST_TITLES, "toasts": {english: typeset(french) for english, french in PAGE_TOASTS.items()}}
_FRENCH_JSON = json.dumps(_FRENCH).replace("<", "\\u003c")  # no text can close the script element it sits in
GRADIO_WORDS_JS = f"<script>window.qaFrench = {_FRENCH_JSON};</script>" + """
<script>
(function () {
  const titles = window.qaFrench.titles;
  const toasts = window.qaFrench.toasts;
  function name(element, value) {
    if (element && element.getAttribute('aria-label') !== value) element.setAttribute('aria-label', value);
  }
  window.qaGradioWords = function () {
    document.querySelectorAll('input[aria-label^="number input for "], input[aria-label^="range slider for "]')
      .forEach(function (input) { name(input, input.getAttribute('aria-label').replace(/^.*? for /, '')); });
    document.querySelectorAll('#chat [data-testid="user"][aria-label], #chat [data-testid="bot"][aria-label]')
      .forEach(function (message) { message.removeAttribute('aria-label'); });
    document.querySelectorAll('[data-testid="toast-body"]').forEach(function (toast) {
      const type = Object.keys(titles).find(function (t) { return toast.classList.contains(t); }) || 'info';
      const title = toast.querySelector('.toast-title');
      if (title && title.firstChild && title.firstChild.nodeType === 3 && title.firstChild.data !== titles[type]) {
        title.firstChild.data = titles[type];
      }
      const head = toast.querySelector('.toast-header[role="button"]');
      if (head) { head.removeAttribute('role'); head.removeAttribute('tabindex'); }
      name(toast.querySelector('.toast-close'), 'Fermer le message');
      toast.querySelectorAll('[data-testid="toast-text"]').forEach(function (text) {
        const french = toasts[text.textContent.trim()];
        if (french) text.textContent = french;
      });
    });
  };
})();
</script>
"""

# Buttons inside chat messages, whose HTML is sanitised (no onclick, no data-*), are handled by one
# document-level listener:
# - a citation (button.cite-btn, value "<turn>:<rank>"): copied into the hidden textbox #cite_sel, then
#   the hidden button #cite_go clicked (its Python handler renders the document; the short delay lets
#   the value reach Gradio first). The viewer then takes the focus; on a phone it opens as a drawer.
# - «Fermer» in the viewer (or Escape): the drawer closes and the focus goes back to the citation.
# - «Copier la citation» (button.copy-btn): its value goes on the clipboard.
# The polite live region #qa-live says each answer in one short sentence (`qaAnnounce`); Gradio's
# chat log is made silent, or a screen reader would read the whole answer and its cards at once.
# After an answer the focus stays in the question box, ready for a follow-up; «Aller à la dernière
# réponse» (button.qa-skip, just before the box: Shift+Tab from it) moves it to the newest answer, whose
# citations then follow by Tab. A question still unanswered after 0.7 s (a busy queue) is said in
# French, in sight under the conversation and to a screen reader, until its answer or a toast comes.
# Gradio's own English, whatever the browser's language (`GRADIO_WORDS_JS`).
HEAD = f"<style>{HEAD_CSS}</style>" + GRADIO_WORDS_JS + """
<script>
(function () {
  let waiting = null;
  let toasts = 0;  // toasts on the page: a new one ends the wait it answers
  let opener = null;
  function live() {
    let region = document.getElementById('qa-live');
    if (!region) {
      region = document.createElement('div');
      region.id = 'qa-live';
      region.className = 'qa-sr-only';
      region.setAttribute('role', 'status');
      region.setAttribute('aria-live', 'polite');
      document.body.appendChild(region);
    }
    return region;
  }
  window.qaAnnounce = function (text) {
    const region = live();
    region.textContent = '';
    setTimeout(function () { region.textContent = text; }, 150);
  };
  function closeViewer() {
    document.body.classList.remove('qa-viewer-open');
    if (opener && opener.isConnected) opener.focus();
  }
  function copy(btn) {
    const text = btn.value;
    const label = btn.firstChild;  // the visible words; the hidden span after them says which citation
    // ui.render.COPY_LABEL, kept on the first click and restored after each acknowledgement (a second
    // click within two seconds must not keep «Citation copiée» for good)
    if (!btn.dataset.words) btn.dataset.words = label.data;
    const words = btn.dataset.words;
    const done = function () {
      label.data = 'Citation copi\\u00e9e';
      setTimeout(function () { label.data = words; }, 2000);
      window.qaAnnounce('Citation copi\\u00e9e.');
    };
    const fallback = function () {
      const area = document.createElement('textarea');
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand('copy');
      area.remove();
      done();
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  }
  // The newest question scrolled to the top of the page, its answer and cards below it; returns that
  // answer (after each answer, `AFTER_ANSWER_JS`, and on «Aller à la dernière réponse»).
  window.qaNewest = function () {
    const users = document.querySelectorAll('#chat [data-testid="user"]');
    const answers = document.querySelectorAll('#chat .qa-answer');
    const answer = answers[answers.length - 1] || null;
    const top = users.length ? users[users.length - 1] : answer;
    if (top) top.scrollIntoView({block: 'start', behavior: 'instant'});
    return answer;
  };
  function toAnswer() {
    const answer = window.qaNewest();
    if (!answer) return;
    answer.setAttribute('tabindex', '-1');
    answer.focus({preventScroll: true});
  }
  function wait() {
    const before = document.querySelectorAll('#chat .qa-answer').length;
    clearTimeout(waiting);
    waiting = setTimeout(function () {
      const busy = document.querySelector('#qa-bar .qa-busy');
      if (document.querySelectorAll('#chat .qa-answer').length > before || !busy) return;
      busy.hidden = false;
      window.qaAnnounce(busy.textContent);
    }, 700);
  }
  window.qaDone = function () {
    clearTimeout(waiting);
    const busy = document.querySelector('#qa-bar .qa-busy');
    if (busy && !busy.hidden) busy.hidden = true;
  };
  document.addEventListener('click', function (event) {
    const target = event.target.closest ? event.target : null;
    if (!target) return;
    if (target.closest('#send, .gallery-item')) wait();
    if (target.closest('button.qa-skip')) { event.preventDefault(); toAnswer(); return; }
    const copyBtn = target.closest('button.copy-btn');
    if (copyBtn) { event.preventDefault(); event.stopPropagation(); copy(copyBtn); return; }
    if (target.closest('button.src-close')) { event.preventDefault(); closeViewer(); return; }
    const btn = target.closest('button.cite-btn');
    if (!btn || !btn.value) return;
    event.preventDefault();
    event.stopPropagation();
    const box = document.querySelector('#cite_sel textarea, #cite_sel input');
    const go = document.querySelector('button#cite_go, #cite_go button');
    if (!box || !go) return;
    opener = btn;
    window.qaFocusViewer = true;
    document.body.classList.add('qa-viewer-open');
    box.value = btn.value;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(function () { go.click(); }, 50);
  }, true);
  document.addEventListener('keydown', function (event) {
    if (!event.target.closest) return;
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.target.closest('#question')) wait();
    if (event.key !== 'Escape') return;
    if (event.target.closest('#viewer') || document.body.classList.contains('qa-viewer-open')) closeViewer();
  });
  function quiet() {
    live();
    if (document.documentElement.lang !== 'fr') document.documentElement.lang = 'fr';
    const footer = document.querySelector('footer');
    if (footer && footer.getAttribute('aria-label') !== 'Pied de page') {
      footer.setAttribute('aria-label', 'Pied de page');
    }
    const api = document.querySelector('footer button.show-api');
    if (api && api.firstChild && api.firstChild.nodeType === 3 && api.firstChild.data !== 'Utiliser l\u2019API') {
      api.firstChild.data = 'Utiliser l\u2019API';
      api.querySelectorAll('img').forEach(function (img) { img.alt = ''; });
    }
    const log = document.querySelector('#chat [role="log"]');
    if (log && log.getAttribute('aria-live') !== 'off') {
      log.setAttribute('aria-live', 'off');
      log.setAttribute('aria-label', 'Conversation');
    }
    const skip = document.querySelector('#qa-bar .qa-skip');
    const none = !document.querySelector('#chat .qa-answer');
    if (skip && skip.hidden !== none) skip.hidden = none;
    const shown = document.querySelectorAll('[data-testid="toast-text"]').length;  // one body holds a type's toasts
    if (shown > toasts) window.qaDone();
    toasts = shown;
    window.qaGradioWords();
  }
  new MutationObserver(quiet).observe(document.documentElement,
    {childList: true, subtree: true, attributes: true, attributeFilter: ['aria-label']});
})();
</script>
"""

# Between the conversation and the question box (`ui.layout`): the way to the newest answer, shown when
# there is one (the <head> script), and the wait, said when a question takes long.
SKIP_AND_WAIT = ('<button type="button" class="qa-skip" hidden>Aller à la dernière réponse</button>'
                 '<p class="qa-busy" hidden>Recherche en cours…</p>')

# Runs in the viewer's gr.HTML: after each new document, bring the highlighted passage into view and,
# when a citation was just opened, move the focus into the document's text.
VIEWER_JS = (
    "watch('value', () => { const m = element.querySelector('#hl'); "
    "if (m) m.scrollIntoView({block: 'center', behavior: 'instant'}); "
    "const body = element.querySelector('.src-body'); "
    "if (body && window.qaFocusViewer) { window.qaFocusViewer = false; body.focus({preventScroll: true}); } });"
)

# After an answer: scroll the page so the new question is at the top (its answer and cards below it),
# and announce the answer in one short sentence: the outcome, the confidence, the quoted sentence.
AFTER_ANSWER_JS = """() => {
  if (!window.qaNewest) return;  // the <head> script (qaDone, qaNewest, qaAnnounce) is not there
  window.qaDone();
  const answer = window.qaNewest();
  if (!answer) return;
  const n = answer.querySelectorAll('.card').length;
  const text = (css) => { const e = answer.querySelector(css); return e ? e.textContent.trim() : ''; };
  const quote = answer.querySelector('.reponse-text');
  let said;
  if (quote) {
    const copy = quote.cloneNode(true);
    copy.querySelectorAll('button').forEach((b) => b.remove());
    said = text('.reponse-label') + ', ' + text('.confiance') + '\\u202f: ' + copy.textContent.trim() + ' '
      + n + (n > 1 ? ' sources suivent.' : ' source suit.');
  } else {
    said = text('.noanswer') + ' ' + n + (n > 1 ? ' passages proches suivent.' : ' passage proche suit.');
  }
  window.qaAnnounce(said);
}"""


def append_turn_js(max_messages: int) -> str:
    """After an answer: append the turn's two messages (sent alone, in a hidden chatbot) to the chat,
    keeping the last `max_messages`: each turn sends its own HTML, never the whole conversation again."""
    return f"(chat, turn) => [(chat || []).concat(turn || []).slice(-{max_messages})]"
