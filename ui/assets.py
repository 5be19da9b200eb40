"""The page's look and behaviour: the Gradio theme, the CSS (`ui.style`), the <head> script (citation
clicks, «Copier la citation», the source viewer opened and closed, the short announcement of each answer)
and the viewer's JS (Gradio 6 takes theme, CSS and head at launch)."""

from __future__ import annotations

import gradio as gr

from ui.style import CSS, HEAD_CSS

__all__ = ["AFTER_ANSWER_JS", "CSS", "HEAD", "THEME", "VIEWER_JS", "append_turn_js"]

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

# Buttons inside chat messages, whose HTML is sanitised (no onclick, no data-*), are handled by one
# document-level listener:
# - a citation (button.cite-btn, value "<turn>:<rank>"): copied into the hidden textbox #cite_sel, then
#   the hidden button #cite_go clicked (its Python handler renders the document; the short delay lets
#   the value reach Gradio first). The viewer then takes the focus; on a phone it opens as a drawer.
# - «Fermer» in the viewer (or Escape): the drawer closes and the focus goes back to the citation.
# - «Copier la citation» (button.copy-btn): its value goes on the clipboard.
# The polite live region #qa-live says each answer in one short sentence (`qaAnnounce`); Gradio's
# chat log is made silent, or a screen reader would read the whole answer and its cards at once.
# Gradio's own English, whatever the browser's language: the page's lang, the footer's «Use via API»
# and its name (the stray «·» after it is hidden by HEAD_CSS; «Scroll down» by CSS: the chat never
# scrolls inside a box).
HEAD = f"<style>{HEAD_CSS}</style>" + """
<script>
(function () {
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
    const done = function () {
      label.data = 'Citation copi\\u00e9e';
      setTimeout(function () { label.data = 'Copier la citation'; }, 2000);
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
  document.addEventListener('click', function (event) {
    const target = event.target.closest ? event.target : null;
    if (!target) return;
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
    if (event.key !== 'Escape' || !event.target.closest) return;
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
  }
  new MutationObserver(quiet).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>
"""

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
  const users = document.querySelectorAll('#chat [data-testid="user"]');
  const last = users[users.length - 1];
  if (last) last.scrollIntoView({block: 'start', behavior: 'instant'});
  const answers = document.querySelectorAll('#chat .qa-answer');
  const answer = answers[answers.length - 1];
  if (!answer || !window.qaAnnounce) return;
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
