"""HTML rendering: answers, citation cards, the source viewer and the corpus summary; pure functions of
what an `Answer` carries, no Gradio, no I/O.

Every text from the report or the user goes through `esc`; the app's own wording through `typeset`
(French spacing: a narrow no-break space before ? ! : ; and inside « »).
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass

from qa import Answer, IndexStatus, Passage, Sentence
from qa.terminal import clean
from qa.wording import NNBSP, RELEVANCE_LABELS, format_date, guillemets, percent, typeset

NO_SECTION = "(sans titre de section)"
NEAR_PASSAGES = "Passages les plus proches (sans réponse certaine)"
VIEWER_PLACEHOLDER = typeset(
    '<div class="src-empty">Cliquez sur « Voir dans le document » sous une citation pour afficher '
    "ici le texte complet du rapport, passage surligné.</div>"
)
COPY_LABEL = "Copier la citation"
RELEVANCE = {key: (label, {"high": 3, "medium": 2, "low": 1}.get(key, 0)) for key, label in RELEVANCE_LABELS.items()}
UNCALIBRATED_HELP = (
    "Pertinence non calibrée : le modèle de l'index n'a pas de fichier de calibration, l'assistant ne peut "
    "pas estimer la probabilité que ce passage contienne la réponse"
)
CONFIDENCE_HELP = "Probabilité estimée que la phrase citée réponde à la question"
UNCALIBRATED_CONFIDENCE_HELP = (
    "Le modèle de l'index n'a pas de fichier de calibration : l'assistant applique une règle par défaut, "
    "sans probabilité estimée, et ne donne jamais de réponse ferme"
)


def esc(text: object) -> str:
    """Any text made inert (`qa.terminal.clean`: a right-to-left override would show a passage, or the citation
    copied from it, in another order than its words), then HTML-escaped with quotes, for content and
    attributes alike. Newlines stay (a passage keeps its lines)."""
    return html.escape(clean(text, newlines=True), quote=True)


@dataclass(frozen=True)
class Citation:
    """Where one citation is, in document offsets, for the source viewer, and a digest of its passage (not
    its text: a session keeps up to 100 turns of citations). Only the answer's quoted sentence (`quote`) is
    highlighted as an answer; any other passage's sentence is tinted neutrally."""

    doc: str
    title: str
    start: int
    end: int
    sentence_start: int
    sentence_end: int
    digest: str = ""  # of the passage as cited: the viewer checks the document still has it at these offsets
    page: int | None = None
    quote: bool = False
    rank: int = 0  # the citation's number in its answer, [rank], named in the viewer's header
    section: str = ""

    @classmethod
    def of(cls, p: Passage, *, quote: bool = False) -> Citation:
        return cls(p.doc, p.title, p.start, p.end, p.sentence.start, p.sentence.end, passage_digest(p.text), p.page,
                   quote, p.rank, p.section)

    def matches(self, document: str) -> bool:
        """True when `document` still holds the cited passage at the cited offsets."""
        return passage_digest(document[self.start : self.end]) == self.digest


def passage_digest(text: str) -> str:
    """16 bytes of BLAKE2b of a passage: what a session keeps instead of its text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def quoted_rank(answer: Answer) -> int | None:
    """The rank of the passage holding the quoted sentence; None for an abstention."""
    return None if answer.outcome == "none" or answer.passage is None else answer.passage.rank


def citations(answer: Answer) -> dict[int, Citation]:
    """The answer's passages as source-viewer citations by rank; only the quoted one counts as a quote."""
    rank = quoted_rank(answer)
    return {p.rank: Citation.of(p, quote=p.rank == rank) for p in answer.passages}


def _relevance_badge(p: Passage, value: float | None, key: str | None,
                     thresholds: tuple[float, float] | None) -> str:
    label, filled = RELEVANCE[key]
    bars = "".join(f'<span class="rel-bar{" on" if i < filled else ""}"></span>' for i in range(3))
    if key is None or value is None or thresholds is None:
        detail = f"{UNCALIBRATED_HELP}. Similarité {p.dense_score:.2f}, score de classement {p.score:.3f}."
    else:
        high, medium = thresholds
        detail = (
            f"Probabilité estimée que le passage contienne la réponse : {percent(value)} "
            f"(élevée à partir de {percent(high)}, moyenne à partir de {percent(medium)})."
        )
    return f'<span class="rel rel-{key or "none"}" title="{esc(typeset(detail))}">{bars} {esc(label)}</span>'


def source_name(p: Passage) -> str:
    """«source 2 : Titre, p. 4», in a button's accessible name: read aloud, an answer's buttons are not nine
    «Copier la citation»."""
    page = f", p.{NNBSP}{p.page}" if p.page is not None else ""
    return f"source {p.rank}{NNBSP}: {p.title}{page}"


def named_button(css: str, value: str, label: str, more: str, title: str = "") -> str:
    """A button named by its visible `label`, then `more` in a visually hidden span (the chat's sanitiser drops
    aria-label and aria-labelledby): a voice command that says the label still matches."""
    tip = f' title="{esc(title)}"' if title else ""
    return (f'<button class="{css}" value="{esc(value)}"{tip}>{esc(label)}'
            f'<span class="qa-sr-only"> {esc(more)}</span></button>')


def cite_button(turn: int, p: Passage, *, number: bool = False) -> str:
    """A source-viewer request ("<turn>:<rank>", sent by the page's click listener): «Voir dans le document» on
    a card, or with `number` the «[2]» after the quoted sentence."""
    if number:
        return named_button("cite-btn cite-num", f"{turn}:{p.rank}", f"[{p.rank}]", f"voir la {source_name(p)}",
                            f"Voir la source {p.rank} dans le document")
    return named_button("cite-btn", f"{turn}:{p.rank}", "Voir dans le document", f"la {source_name(p)}")


def copy_button(p: Passage, sentence: Sentence | None = None, *, answer: bool = False) -> str:
    """«Copier la citation»: the page puts the button's value on the clipboard, a citation ready to paste into
    an article: «« sentence » — Title, section, p. N (document, caractères a–b)», the sentence's own span."""
    sentence = sentence or p.sentence
    where = ", ".join(part for part in (p.title, p.section, f"p.{NNBSP}{p.page}" if p.page is not None else "")
                      if part)
    text = f"{guillemets(sentence.text)} — {where} ({p.doc}, caractères {sentence.start}–{sentence.end})"
    more = f"de la réponse, {source_name(p)}" if answer else f"de la {source_name(p)}"
    return named_button("copy-btn", text, COPY_LABEL, more)


def render_card(p: Passage, turn: int, relevance: float | None = None, level: str | None = None,
                thresholds: tuple[float, float] | None = None, *, quote: Sentence | None = None) -> str:
    """One citation card: number, title, section, span, relevance (`relevance`: the calibrated probability
    that the passage holds the answer), and the passage with one sentence marked: `quote`, the answer's
    quoted sentence, in a plain (yellow) <mark>, else the closest sentence in a neutral one."""
    sentence = quote if quote is not None else p.sentence
    s, e = sentence.start - p.start, sentence.end - p.start
    text = esc(p.text)
    if 0 <= s < e <= len(p.text):
        tag = "<mark>" if quote is not None else '<mark class="near">'
        text = f"{esc(p.text[:s])}{tag}{esc(p.text[s:e])}</mark>{esc(p.text[e:])}"
    span = f"caractères {p.start}–{p.end}"
    span = f"page {p.page}, {span}" if p.page is not None else span
    return (
        f'<div class="card">'
        f'<div class="card-head"><span class="card-num">[{p.rank}]</span> '
        f'<span class="card-title">{esc(p.title)}</span></div>'
        f'<div class="card-section">{esc(p.section or NO_SECTION)}</div>'
        f'<div class="card-meta"><span class="card-doc">{esc(p.doc)}</span> · '
        f'<span class="card-span">{esc(span)}</span> · '
        f"{_relevance_badge(p, relevance, level, thresholds)}</div>"
        f'<div class="card-text">{text}</div>'
        f'<div class="card-actions">{cite_button(turn, p)} '
        f"{copy_button(p, quote)}</div>"
        f"</div>"
    )


def render_answer(answer: Answer, turn: int) -> str:
    """The assistant's message: the outcome, the quoted sentence and its [n], then citation cards.

    «Réponse possible — à vérifier» quotes in a hedged block (dashed amber, not the confident blue), so the
    reader checks it against its passage. An abstention offers the closest passages, none marked as an answer.
    """
    rank = quoted_rank(answer)
    cards = "".join(
        render_card(p, turn, relevance, level, answer.relevance_thresholds,
                    quote=answer.sentence if p.rank == rank else None)
        for p, relevance, level in zip(answer.passages, answer.relevance, answer.relevance_levels, strict=True)
    )
    parts = ['<div class="qa-answer">']
    if answer.follow_up:
        parts.append(f'<div class="followup">Question comprise avec la précédente{NNBSP}: '
                     f"{esc(guillemets(answer.query))}</div>")
    if rank is None or answer.sentence is None:
        parts.append(f'<div class="noanswer">{esc(typeset(answer.message))}</div>')
        if cards:
            parts.append(f'<div class="sources-title near">{esc(NEAR_PASSAGES)}</div>{cards}')
    else:
        css = "reponse" if answer.outcome == "answer" else "reponse reponse-possible"
        calibrated = answer.confidence is not None
        help_text = CONFIDENCE_HELP if calibrated else UNCALIBRATED_CONFIDENCE_HELP
        confidence = f"confiance {percent(answer.confidence)}" if calibrated else "confiance non calibrée"
        parts.append(
            f'<div class="{css}"><div class="reponse-head"><span class="reponse-label">{esc(answer.label)}</span> '
            f'<span class="confiance" title="{esc(typeset(help_text))}">{esc(confidence)}</span></div>'
            f'<blockquote class="reponse-text">{esc(guillemets(answer.sentence.text))} '
            f"{cite_button(turn, answer.passage, number=True)}</blockquote>"
            f'<div class="reponse-actions">{copy_button(answer.passage, answer.sentence, answer=True)}</div></div>'
            f'<div class="sources-title">Sources</div>{cards}'
        )
    parts.append("</div>")
    return "".join(parts)


def render_user(question: str) -> str:
    """The user's question for the chat: escaped, so it shows as text, never as markup."""
    return esc(question)


def render_turn(messages: list[dict[str, str]]) -> str:
    """One turn of the log from `ui.handlers.respond`'s two messages (escaped HTML already), appended as it is."""
    question, answer = (m["content"] for m in messages)
    return f'<article class="qa-turn"><div class="qa-user">{question}</div><div class="qa-bot">{answer}</div></article>'


def viewer_notice(message: str) -> str:
    """A refusal shown in the viewer, in place of a document (a citation gone since the index was rebuilt)."""
    return f'<div class="src-empty" role="alert">{esc(message)}</div>'


def with_headings(text: str, headings: frozenset[str]) -> str:
    """`text` escaped, each line that is one of the document's headings (a Markdown line without its #s) in a
    heading element, so the viewer shows sections as sections."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if body.strip() and body.strip().lstrip("#").strip() in headings:
            out.append(f'<span class="src-h" role="heading" aria-level="3">{esc(body)}</span>{esc(line[len(body):])}')
        else:
            out.append(esc(line))
    return "".join(out)


def render_source(text: str, c: Citation, headings: frozenset[str] = frozenset()) -> str:
    """The viewer: a header (which citation, document, section, page, and the way back), then the whole
    document escaped, the passage in <mark id="hl">, its sentence marked inside as the answer (hl-sentence)
    when the citation is the quote, else neutrally (hl-near)."""
    if not (0 <= c.start <= c.sentence_start <= c.sentence_end <= c.end <= len(text)):
        raise ValueError(f"citation offsets {c.start}–{c.end} do not fit the document ({len(text)} characters)")
    page = f"page {c.page}, " if c.page is not None else ""
    number = f"Citation [{c.rank}] — " if c.rank else ""
    sentence_css = "hl-sentence" if c.quote else "hl-near"
    return (
        f'<div class="src"><div class="src-head"><div class="src-top">'
        f'<div class="src-title">{esc(number)}{esc(c.title)}</div>'
        '<button class="src-close" aria-label="Fermer le document et revenir à la citation" '
        'title="Revenir à la citation (Échap)">Fermer</button></div>'
        f'<div class="src-section">{esc(c.section or NO_SECTION)}</div>'
        f'<div class="src-meta">{esc(c.doc)} · {page}caractères {c.start}–{c.end}</div></div>'
        f'<div class="src-body" tabindex="0" role="region" aria-label="{esc(f"Texte du document {c.title}")}">'
        f"{with_headings(text[: c.start], headings)}"
        f'<mark id="hl" class="hl-passage">{esc(text[c.start : c.sentence_start])}'
        f'<mark class="{sentence_css}">{esc(text[c.sentence_start : c.sentence_end])}</mark>'
        f"{esc(text[c.sentence_end : c.end])}</mark>"
        f"{with_headings(text[c.end :], headings)}</div></div>"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n > 1 else ''}"


def render_summary(status: IndexStatus) -> str:
    """The corpus line (documents, passages, model, build date) and, if stale, a visible warning."""
    titles = [d.title for d in status.documents]
    shown = ", ".join(titles[:5]) + (f" et {len(titles) - 5} autres" if len(titles) > 5 else "")
    line = (f"{_plural(len(titles), 'document')} ({shown}) · {_plural(status.passages, 'passage')} · "
            f"modèle {status.model} · index construit le {format_date(status.created)}")
    # titles and the model's name come from files: `esc` makes them inert, so no bidi override reorders the line
    out = f'<div class="summary"><span class="summary-label">Corpus</span> {esc(line)}</div>'
    fresh = status.freshness
    if fresh.stale:
        details = [f"{len(docs)} {label}" for docs, label in (
            (fresh.added, "ajouté(s)"), (fresh.changed, "modifié(s)"), (fresh.removed, "supprimé(s)")) if docs]
        if fresh.model_changed:
            details.append("modèle changé")
        if fresh.settings_changed:
            details.append("réglages d'indexation changés")
        warning = typeset(
            f"⚠ Index périmé ({', '.join(details)}) : les réponses portent sur l'index tel qu'il a été "
            "construit. Relancez « qa index build » ou redémarrez « qa serve »."
        )
        out += f'<div class="stale">{esc(warning)}</div>'
    return out
