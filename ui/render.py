"""HTML rendering of answers, citation cards, the source viewer and the corpus summary.

Pure functions: no Gradio, no I/O. Every text that comes from the report or from the user goes
through `esc` (html.escape with quote=True) before it is put in HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from qa.answer import DENSE_WITH_KEYWORDS_MIN, Answer, should_abstain
from qa.search import Passage

NBSP = "\u00a0"
NO_SECTION = "(sans titre de section)"
NEAR_PASSAGES = "Passages les plus proches (sans réponse certaine)"
VIEWER_PLACEHOLDER = (
    '<div class="src-empty">Cliquez sur « Voir dans le document » sous une citation pour afficher '
    "ici le texte complet du rapport, passage surligné.</div>"
)
RELEVANCE = {
    "high": ("pertinence élevée", 3),
    "medium": ("pertinence moyenne", 2),
    "low": ("pertinence faible", 1),
}
RELEVANCE_HELP = (
    "élevée : le passage atteint le seuil de réponse de l'assistant ; moyenne : proche de la question "
    "sans l'atteindre ; faible : éloigné de la question"
)


def esc(text: object) -> str:
    """HTML-escape any text (quotes included), for element content and attribute values alike."""
    return html.escape(str(text), quote=True)


def quoted(text: str) -> str:
    """French quotation marks with non-breaking spaces: « text »."""
    return f"«{NBSP}{text}{NBSP}»"


@dataclass(frozen=True)
class Citation:
    """What the source viewer needs to show one citation: where it is, in document offsets."""

    doc: str
    title: str
    start: int
    end: int
    sentence_start: int
    sentence_end: int
    text: str = ""  # the passage as cited: the viewer checks the document still has it at these offsets
    page: int | None = None

    @classmethod
    def of(cls, p: Passage) -> Citation:
        return cls(p.doc, p.title, p.start, p.end, p.sentence.start, p.sentence.end, p.text, p.page)


def relevance(p: Passage, query: str) -> str:
    """ "high" when the passage clears the engine's own answering bar, "medium" when it is close, else "low".

    The thresholds are the ones `qa.ask` uses to decide whether to answer, so the label says what
    the engine itself concluded about this passage, not a cosmetic rescaling of its score.
    """
    if not should_abstain(p, query):
        return "high"
    return "medium" if p.dense_score >= DENSE_WITH_KEYWORDS_MIN else "low"


def _relevance_badge(p: Passage, query: str) -> str:
    label, filled = RELEVANCE[relevance(p, query)]
    bars = "".join(f'<span class="rel-bar{" on" if i < filled else ""}"></span>' for i in range(3))
    detail = f"{RELEVANCE_HELP}. Similarité {p.dense_score:.2f}, score de classement {p.score:.3f}."
    return f'<span class="rel rel-{relevance(p, query)}" title="{esc(detail)}">{bars} {esc(label)}</span>'


def span_label(p: Passage) -> str:
    """«caractères 72–512», after the page when the format has pages («page 3, caractères …»)."""
    text = f"caractères {p.start}–{p.end}"
    return f"page {p.page}, {text}" if p.page is not None else text


def highlighted_passage(p: Passage) -> str:
    """The passage text escaped, with its answering sentence in <mark> (once), when the offsets fit."""
    s, e = p.sentence.start - p.start, p.sentence.end - p.start
    if not (0 <= s < e <= len(p.text)):
        return esc(p.text)
    return f"{esc(p.text[:s])}<mark>{esc(p.text[s:e])}</mark>{esc(p.text[e:])}"


def cite_button(turn: int, rank: int, label: str, css: str = "cite-btn") -> str:
    """A button the page's click listener turns into a source-viewer request ("<turn>:<rank>")."""
    return (
        f'<button class="{css}" value="{turn}:{rank}" title="Afficher ce passage dans le document complet">'
        f"{esc(label)}</button>"
    )


def render_card(p: Passage, turn: int, query: str) -> str:
    """One citation card: number, title, section, span, relevance, passage with its sentence marked."""
    section = p.section or NO_SECTION
    return (
        f'<div class="card">'
        f'<div class="card-head"><span class="card-num">[{p.rank}]</span> '
        f'<span class="card-title">{esc(p.title)}</span></div>'
        f'<div class="card-section">{esc(section)}</div>'
        f'<div class="card-meta"><span class="card-doc">{esc(p.doc)}</span> · '
        f'<span class="card-span">{esc(span_label(p))}</span> · '
        f"{_relevance_badge(p, query)}</div>"
        f'<div class="card-text">{highlighted_passage(p)}</div>'
        f'<div class="card-actions">{cite_button(turn, p.rank, "Voir dans le document")}</div>'
        f"</div>"
    )


def render_answer(answer: Answer, turn: int) -> str:
    """The assistant's message: «Réponse» with the quoted sentence and its [n], then citation cards."""
    cards = "".join(render_card(p, turn, answer.query) for p in answer.passages)
    parts = ['<div class="qa-answer">']
    if answer.follow_up:
        parts.append(f'<div class="followup">Question comprise avec la précédente : {esc(quoted(answer.query))}</div>')
    if answer.abstained or answer.sentence is None or answer.passage is None:
        parts.append(f'<div class="noanswer">{esc(answer.message)}</div>')
        if cards:
            parts.append(f'<div class="sources-title near">{esc(NEAR_PASSAGES)}</div>{cards}')
    else:
        rank = answer.passage.rank
        parts.append(
            f'<div class="reponse"><div class="reponse-label">Réponse</div>'
            f'<blockquote class="reponse-text">{esc(quoted(answer.sentence.text))} '
            f"{cite_button(turn, rank, f'[{rank}]', 'cite-btn cite-num')}</blockquote></div>"
            f'<div class="sources-title">Sources</div>{cards}'
        )
    parts.append("</div>")
    return "".join(parts)


def render_user(question: str) -> str:
    """The user's question for the chat: escaped, so it shows as text, never as markup."""
    return esc(question)


def render_source(text: str, c: Citation) -> str:
    """The whole document, escaped, with the passage in <mark id="hl"> and its sentence marked inside."""
    if not (0 <= c.start <= c.sentence_start <= c.sentence_end <= c.end <= len(text)):
        raise ValueError(f"citation offsets {c.start}–{c.end} do not fit the document ({len(text)} characters)")
    body = (
        f"{esc(text[: c.start])}"
        f'<mark id="hl" class="hl-passage">{esc(text[c.start : c.sentence_start])}'
        f'<mark class="hl-sentence">{esc(text[c.sentence_start : c.sentence_end])}</mark>'
        f"{esc(text[c.sentence_end : c.end])}</mark>"
        f"{esc(text[c.end :])}"
    )
    return (
        f'<div class="src">'
        f'<div class="src-head"><div class="src-title">{esc(c.title)}</div>'
        f'<div class="src-meta">{esc(c.doc)} · {"page " + str(c.page) + ", " if c.page is not None else ""}'
        f'caractères {c.start}–{c.end}</div></div>'
        f'<div class="src-body">{body}</div></div>'
    )


def format_date(iso: str) -> str:
    """'2026-11-24T08:58:48+00:00' → '24/11/2026 à 08:58 UTC' (the ISO text itself when unparsable)."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    zone = " UTC" if moment.utcoffset() is not None and not moment.utcoffset() else ""
    return f"{moment:%d/%m/%Y} à {moment:%H:%M}{zone}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n > 1 else ''}"


def render_summary(manifest: Mapping, stale: Mapping[str, tuple[str, ...] | bool] | None = None) -> str:
    """The corpus line (documents, passages, model, build date) and, if stale, a visible warning.

    `stale` maps "added"/"changed"/"removed" to document ids and "model_changed" to a bool.
    """
    counts = manifest.get("counts", {})
    titles = [info.get("title", doc) for doc, info in manifest.get("documents", {}).items()]
    shown = ", ".join(titles[:5]) + (f" et {len(titles) - 5} autres" if len(titles) > 5 else "")
    line = (
        f"{_plural(counts.get('documents', 0), 'document')} ({shown}) · "
        f"{_plural(counts.get('passages', 0), 'passage')} · "
        f"modèle {manifest.get('model', {}).get('id', '?')} · "
        f"index construit le {format_date(manifest.get('created', '?'))}"
    )
    out = f'<div class="summary"><span class="summary-label">Corpus</span> {esc(line)}</div>'
    if stale and any(stale.values()):
        details = [
            f"{len(stale.get(key, ()))} {label}"
            for key, label in (("added", "ajouté(s)"), ("changed", "modifié(s)"), ("removed", "supprimé(s)"))
            if stale.get(key)
        ]
        if stale.get("model_changed"):
            details.append("modèle changé")
        if stale.get("settings_changed"):
            details.append("réglages d'indexation changés")
        out += (
            f'<div class="stale">⚠ Index périmé ({esc(", ".join(details))}) : les réponses portent sur '
            f"l'index tel qu'il a été construit. Relancez « qa index build » ou redémarrez « qa serve ».</div>"
        )
    return out
