// The page's behaviour, given to Gradio as `launch(js=...)` by ui/serving.py: run once when the page has loaded.
// It acts on the app's own elements only (ui/layout.py makes them): the conversation log #chat, the bar under
// it #qa-bar (the way to the newest answer, the wait, a refusal, the spoken announcements), the viewer #viewer.
// The events of ui/layout.py call the window.qa* functions below from their `js`.
(() => {
  if (window.qaReady) return;
  window.qaReady = true;

  const WAIT_MS = 700; // a question still unanswered after this is said to wait (a busy queue)
  const COPIED_MS = 2000; // «Citation copiée» shows this long on the button
  let waiting = null;
  let lastReply = null; // the id of the last reply shown: the same one again means no new reply came
  let opener = null; // the citation button that opened the viewer, where Escape brings the focus back
  let focusViewer = false; // a citation was just opened: the focus goes into the document's text

  const find = (css) => document.querySelector(css);

  // The polite live region says one short sentence (emptied first, so that the same words are said again).
  function announce(text) {
    const region = find('#qa-live');
    if (!region) return;
    region.textContent = '';
    setTimeout(() => { region.textContent = text; }, 150);
  }

  // The wait is over: a reply came, or the event failed before answering (a full queue).
  function done() {
    clearTimeout(waiting);
    const busy = find('#qa-bar .qa-busy');
    if (busy) busy.hidden = true;
  }
  window.qaDone = done;

  // Before a question is sent (the event's js: it passes the event's values on unchanged).
  window.qaWait = function (...values) {
    clearTimeout(waiting);
    waiting = setTimeout(() => {
      const busy = find('#qa-bar .qa-busy');
      if (!busy) return;
      busy.hidden = false;
      announce(busy.textContent);
    }, WAIT_MS);
    return values;
  };

  // The newest question scrolled to the top of the page, its answer and cards below it; returns that answer.
  function newest() {
    const turns = document.querySelectorAll('#chat .qa-turn');
    const turn = turns[turns.length - 1];
    if (!turn) return null;
    turn.scrollIntoView({block: 'start', behavior: 'instant'});
    return turn.querySelector('.qa-answer');
  }

  // What is said of an answer: its outcome, confidence and quoted sentence, or the abstention.
  function spoken(answer) {
    const n = answer.querySelectorAll('.card').length;
    const text = (css) => { const e = answer.querySelector(css); return e ? e.textContent.trim() : ''; };
    const quote = answer.querySelector('.reponse-text');
    if (!quote) {
      return text('.noanswer') + ' ' + n + (n > 1 ? ' passages proches suivent.' : ' passage proche suit.');
    }
    const words = quote.cloneNode(true);
    words.querySelectorAll('button').forEach((b) => b.remove());
    return text('.reponse-label') + ', ' + text('.confiance') + '\u202f: ' + words.textContent.trim() + ' '
      + n + (n > 1 ? ' sources suivent.' : ' source suit.');
  }

  // After a question: `reply` is {id, turn, keep} (the turn's HTML; the log keeps the last `keep` turns) or
  // {id, refusal} (a French sentence). The focus stays in the question box, ready for a follow-up.
  window.qaReply = function (reply) {
    done();
    if (!reply || reply.id === lastReply) return; // no new reply: the event failed, Gradio says why
    lastReply = reply.id;
    const notice = find('#qa-bar .qa-notice');
    notice.textContent = '';
    if (reply.refusal) {
      setTimeout(() => { notice.textContent = reply.refusal; }, 50); // an alert: said again if repeated
      return;
    }
    const log = find('#chat .qa-log');
    log.insertAdjacentHTML('beforeend', reply.turn);
    while (log.children.length > reply.keep) log.firstElementChild.remove();
    find('#qa-bar .qa-skip').hidden = false;
    const answer = newest();
    if (answer) announce(spoken(answer));
  };

  function viewerOpen(open) {
    const flag = find('#qa-bar .qa-viewer-flag');
    if (flag) flag.toggleAttribute('data-open', open);
  }

  function closeViewer() {
    viewerOpen(false);
    if (opener && opener.isConnected) opener.focus();
  }

  // «Nouvelle conversation»: the log emptied (the session's turns are emptied by the event itself).
  window.qaClear = function () {
    done();
    find('#chat .qa-log').replaceChildren();
    find('#qa-bar .qa-skip').hidden = true;
    find('#qa-bar .qa-notice').textContent = '';
    viewerOpen(false);
    return [];
  };

  // After the viewer shows a document: the passage brought into view and, when a citation was just
  // opened, the focus moved into the document's text.
  window.qaShowPassage = function (element) {
    const mark = element.querySelector('#hl');
    if (mark) mark.scrollIntoView({block: 'center', behavior: 'instant'});
    const body = element.querySelector('.src-body');
    if (body && focusViewer) {
      focusViewer = false;
      body.focus({preventScroll: true});
    }
  };

  function copy(button) {
    const label = button.firstChild; // the visible words; the hidden span after them says which citation
    if (!button.dataset.words) button.dataset.words = label.data; // kept once: a second click restores them too
    const words = button.dataset.words;
    const copied = () => {
      label.data = 'Citation copiée';
      setTimeout(() => { label.data = words; }, COPIED_MS);
      announce('Citation copiée.');
    };
    const fallback = () => {
      const area = document.createElement('textarea');
      area.value = button.value;
      document.body.appendChild(area);
      area.select();
      document.execCommand('copy');
      area.remove();
      copied();
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(button.value).then(copied, fallback);
    else fallback();
  }

  // A click in the conversation (its js_on_load passes Gradio's `trigger`): «Copier la citation» puts the
  // citation on the clipboard; a citation ("<turn>:<rank>") asks the server for its document.
  window.qaChatClick = function (event, trigger) {
    if (!event.target.closest) return;
    const copyButton = event.target.closest('button.copy-btn');
    if (copyButton) {
      event.preventDefault();
      copy(copyButton);
      return;
    }
    const cite = event.target.closest('button.cite-btn');
    if (!cite || !cite.value) return;
    event.preventDefault();
    opener = cite;
    focusViewer = true;
    viewerOpen(true); // on a phone the viewer is a drawer, opened at once
    trigger('click', {ref: cite.value});
  };

  // «Aller à la dernière réponse»: the focus to the newest answer, whose citations then follow by Tab.
  function toAnswer() {
    const answer = newest();
    if (!answer) return;
    answer.setAttribute('tabindex', '-1');
    answer.focus({preventScroll: true});
  }

  document.addEventListener('click', (event) => {
    if (!event.target.closest) return;
    if (event.target.closest('#qa-bar button.qa-skip')) {
      event.preventDefault();
      toAnswer();
    } else if (event.target.closest('#viewer button.src-close')) {
      event.preventDefault();
      closeViewer();
    }
  });

  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || !event.target.closest) return;
    const flag = find('#qa-bar .qa-viewer-flag');
    if (event.target.closest('#viewer') || (flag && flag.hasAttribute('data-open'))) closeViewer();
  });
})();
