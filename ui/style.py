"""The page's CSS (Gradio 6 takes it at launch, through `ui.assets`): colours chosen for a contrast of
at least 4.5:1, the chat without a box of its own, the source viewer a drawer on a phone."""

from __future__ import annotations

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
.qa-answer .card-actions, .qa-answer .reponse-actions { margin-top: 0.35em; display: flex; flex-wrap: wrap;
  gap: 0.4em; }
.rel { white-space: nowrap; }
.rel-bar { display: inline-block; width: 0.45em; height: 0.7em; margin-right: 1px; border-radius: 1px;
  background: #d1d5db; vertical-align: baseline; }
.rel-high .rel-bar.on { background: #16a34a; }
.rel-medium .rel-bar.on { background: #ca8a04; }
.rel-low .rel-bar.on { background: #9ca3af; }
.rel-none { font-style: italic; }
button.cite-btn, button.copy-btn { position: relative; font-size: 0.82em; padding: 0.1em 0.6em; border-radius: 5px;
  cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary);
  color: var(--body-text-color); }
button.cite-btn:hover, button.copy-btn:hover { border-color: #1d4ed8; color: #1d4ed8; }
button.cite-btn.cite-num { font-size: 0.8em; padding: 0 0.3em; vertical-align: super; border: none;
  background: none; color: #1d4ed8; font-weight: 700; }
#viewer { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.6em 0.8em;
  position: sticky; top: 0.5rem; }
#side { align-self: stretch; }
.src-head { border-bottom: 1px solid var(--border-color-primary); padding-bottom: 0.35em; margin-bottom: 0.5em; }
.src-top { display: flex; align-items: flex-start; justify-content: space-between; gap: 0.5em; }
.src-title { font-weight: 700; }
.src-section { font-style: italic; font-size: 0.92em; }
.src-meta { font-size: 0.82em; color: var(--body-text-color-subdued); }
button.src-close { font-size: 0.85em; padding: 0.15em 0.7em; border-radius: 5px; cursor: pointer; flex: none;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary);
  color: var(--body-text-color); }
.src-body { white-space: pre-wrap; line-height: 1.55; font-size: 0.93em; max-height: calc(100vh - 11em);
  overflow-y: auto; }
.src-body:focus-visible, button.cite-btn:focus-visible, button.copy-btn:focus-visible,
button.src-close:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 2px; }
.src-h { font-weight: 700; font-size: 1.12em; color: var(--body-text-color); }
/* The chat has no box of its own: the page is the one scroll, the newest answer and its cards show whole. */
#chat, #chat .bubble-wrap, #chat [role="log"] { height: auto !important; max-height: none !important;
  overflow: visible !important; }
#chat { min-height: calc(100vh - 20rem); }
#chat .scroll-down-button-container { display: none !important; }
/* Gradio's clear icon, in the corner of the first question: it read as «delete this message» and
   repeated «Nouvelle conversation». */
#chat .icon-button-wrapper { display: none !important; }
/* Read by a screen reader, out of sight; «Aller à la dernière réponse» too until the keyboard reaches it,
   then in the flow (it pushes the question box down, never floats over text). The newest answer shows
   where the focus went. */
.qa-sr-only, #qa-bar .qa-skip:not(:focus) { position: absolute; width: 1px; height: 1px; padding: 0;
  margin: -1px; overflow: hidden; clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0; }
#qa-bar .qa-skip:focus { padding: 0.3em 0.8em; border: 2px solid #1d4ed8; border-radius: 6px; cursor: pointer;
  background: var(--background-fill-primary); color: #1d4ed8; font-weight: 600; outline: 3px solid #1d4ed8;
  outline-offset: 2px; }
#qa-bar .qa-busy { margin: 0; color: var(--body-text-color-subdued); font-size: 0.92em; }
.qa-answer:focus { outline: 3px solid #1d4ed8; outline-offset: 4px; border-radius: 4px; }
.src mark.hl-passage { background: #dbeafe; color: inherit; border-radius: 2px; padding: 0.05em 0; }
.src-empty { color: var(--body-text-color-subdued); font-size: 0.92em; }
"""

# Rules Gradio must not scope to its container (it prefixes every selector of CSS with it): they name
# the <body>, whose class says the viewer is open. The <head> carries them as they are.
HEAD_CSS = """
footer .divider { display: none; }
/* A phone: the viewer is a drawer over the lower part of the screen, opened where the reader is, with
   its close button; the rest of the page keeps its one scroll. */
@media (max-width: 720px) {
  #viewer { display: none !important; }
  body.qa-viewer-open #viewer { display: block !important; position: fixed !important; left: 0; right: 0;
    bottom: 0; top: auto !important; height: 80vh; z-index: 1000; margin: 0; border-radius: 12px 12px 0 0;
    background: var(--background-fill-primary); box-shadow: 0 -6px 24px rgba(0, 0, 0, 0.3); }
  body.qa-viewer-open #viewer .src-body { max-height: calc(80vh - 8.5em); }
  #chat { min-height: 0 !important; }
}
"""
