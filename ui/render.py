"""HTML rendering: answers, citation cards, the source viewer and the corpus summary.

Pure functions of what an `Answer` carries (its relevance levels and the thresholds that name them):
no Gradio, no I/O. Every text that comes from the report or from the user goes
through `esc` before it is put in HTML: made inert (`qa.terminal.clean`: control characters and bidi
overrides shown as visible escapes, so a quote reads as it is written), then html.escape with quote=True;
the app's own wording goes through `typeset` (French spacing: a narrow no-break space before ? ! : ; and
inside « »).
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
    """Any text made inert (a right-to-left override in a document would show a passage, or the
    citation copied from it, in another order than its words) and HTML-escaped, quotes included: for
    element content and attribute values alike. Newlines stay (a passage keeps its lines)."""
    return html.escape(clean(text, newlines=True), quote=True)


@dataclass(frozen=True)
class Citation:
    """What the source viewer needs to show one citation: where it is, in document offsets, and a digest
    of the passage (not its text: a session keeps up to 100 turns of citations).

    `quote` says whether the sentence is the answer's quoted one: only that one is highlighted as
    an answer (yellow); any other passage's closest sentence gets a neutral tint, so the viewer never
    suggests an answer the engine did not give.
    """

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
    """A short digest of a passage (16 bytes of BLAKE2b): a session keeps it instead of the passage's text."""
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


def span_label(p: Passage) -> str:
    """«caractères 72–512», after the page when the format has pages («page 3, caractères …»)."""
    text = f"caractères {p.start}–{p.end}"
    return f"page {p.page}, {text}" if p.page is not None else text


def highlighted_passage(p: Passage, sentence: Sentence | None = None, *, quote: bool = False) -> str:
    """The passage text escaped, with one sentence marked, when the offsets fit.

    `quote`: the sentence is the answer's quoted one, in a plain (yellow) <mark>; otherwise it is
    only the passage's closest sentence, in a neutral <mark class="near">, never read as an answer.
    """
    sentence = sentence or p.sentence
    s, e = sentence.start - p.start, sentence.end - p.start
    if not (0 <= s < e <= len(p.text)):
        return esc(p.text)
    tag = "<mark>" if quote else '<mark class="near">'
    return f"{esc(p.text[:s])}{tag}{esc(p.text[s:e])}</mark>{esc(p.text[e:])}"


def source_name(p: Passage) -> str:
    """«source 2 : Titre, p. 4»: the passage a button acts on, said in its accessible name, so that each
    button of an answer has a name of its own (a list of buttons read aloud is not nine «Copier la citation»)."""
    page = f", p.{NNBSP}{p.page}" if p.page is not None else ""
    return f"source {p.rank}{NNBSP}: {p.title}{page}"


def named_button(css: str, value: str, label: str, more: str, title: str = "") -> str:
    """A button named by its visible `label` followed by `more` words that only a screen reader says:
    a visually hidden span, since the chat's sanitiser drops aria-label and aria-labelledby (it keeps
    class). The name starts with the visible label, so a voice command that says it still matches."""
    tip = f' title="{esc(title)}"' if title else ""
    return (f'<button class="{css}" value="{esc(value)}"{tip}>{esc(label)}'
            f'<span class="qa-sr-only"> {esc(more)}</span></button>')


def cite_button(turn: int, p: Passage, *, number: bool = False) -> str:
    """A button the page's click listener turns into a source-viewer request ("<turn>:<rank>"): on a
    card, «Voir dans le document» (named «… la source 2 : Titre, p. 4»); with `number`, the «[2]» after
    the quoted sentence (named «[2] voir la source 2 : …», its tooltip saying what it does)."""
    if number:
        return named_button("cite-btn cite-num", f"{turn}:{p.rank}", f"[{p.rank}]", f"voir la {source_name(p)}",
                            f"Voir la source {p.rank} dans le document")
    return named_button("cite-btn", f"{turn}:{p.rank}", "Voir dans le document", f"la {source_name(p)}")


def citation_text(p: Passage, sentence: Sentence | None = None) -> str:
    """A citation ready to paste into an article: «« sentence » — Title, section, p. N (document,
    caractères a–b)», the sentence's own span; no page for a format without pages."""
    sentence = sentence or p.sentence
    where = ", ".join(part for part in (p.title, p.section, f"p.{NNBSP}{p.page}" if p.page is not None else "")
                      if part)
    return f"{guillemets(sentence.text)} — {where} ({p.doc}, caractères {sentence.start}–{sentence.end})"


def copy_button(p: Passage, sentence: Sentence | None = None, *, answer: bool = False) -> str:
    """«Copier la citation»: the page's click listener puts the button's value on the clipboard. Its
    name says which one: «… de la réponse, source 1 : …» under the answer, «… de la source 2 : …» on a card."""
    more = f"de la réponse, {source_name(p)}" if answer else f"de la {source_name(p)}"
    return named_button("copy-btn", citation_text(p, sentence), COPY_LABEL, more)


def render_card(
    p: Passage,
    turn: int,
    relevance: float | None = None,
    level: str | None = None,
    thresholds: tuple[float, float] | None = None,
    *,
    quote: Sentence | None = None,
) -> str:
    """One citation card: number, title, section, span, relevance, and the passage with a sentence marked.

    `quote` is the answer's quoted sentence when this passage holds it (marked as the answer); without
    it the passage's closest sentence is marked neutrally. `relevance` is the calibrated probability
    that the passage holds the answer (None: «pertinence non calibrée»).
    """
    section = p.section or NO_SECTION
    text = highlighted_passage(p, quote, quote=True) if quote is not None else highlighted_passage(p)
    return (
        f'<div class="card">'
        f'<div class="card-head"><span class="card-num">[{p.rank}]</span> '
        f'<span class="card-title">{esc(p.title)}</span></div>'
        f'<div class="card-section">{esc(section)}</div>'
        f'<div class="card-meta"><span class="card-doc">{esc(p.doc)}</span> · '
        f'<span class="card-span">{esc(span_label(p))}</span> · '
        f"{_relevance_badge(p, relevance, level, thresholds)}</div>"
        f'<div class="card-text">{text}</div>'
        f'<div class="card-actions">{cite_button(turn, p)} '
        f"{copy_button(p, quote)}</div>"
        f"</div>"
    )


def confidence_text(answer: Answer) -> str:
    """«confiance 87 %», or «confiance non calibrée» when the model has no calibration file."""
    return "confiance non calibrée" if answer.confidence is None else f"confiance {percent(answer.confidence)}"


def render_answer(answer: Answer, turn: int) -> str:
    """The assistant's message: the outcome, the quoted sentence and its [n], then citation cards.

    «Réponse» quotes the sentence plainly; «Réponse possible — à vérifier» quotes it in a hedged
    block (its own class: dashed amber, not the confident blue), so the reader checks it against its
    passage; both show their confidence. An abstention says so and offers the closest passages,
    with nothing highlighted as an answer.
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
        help_text = CONFIDENCE_HELP if answer.confidence is not None else UNCALIBRATED_CONFIDENCE_HELP
        parts.append(
            f'<div class="{css}"><div class="reponse-head"><span class="reponse-label">{esc(answer.label)}</span> '
            f'<span class="confiance" title="{esc(typeset(help_text))}">{esc(confidence_text(answer))}</span></div>'
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
    """One turn of the conversation log from its two chat messages (`ui.handlers.turn_messages`: the question
    and the answer, both made of escaped text already): the page appends it to the log as it is."""
    question, answer = (m["content"] for m in messages)
    return f'<article class="qa-turn"><div class="qa-user">{question}</div><div class="qa-bot">{answer}</div></article>'


def viewer_notice(message: str) -> str:
    """A refusal shown in the viewer, in place of a document (a citation gone since the index was rebuilt)."""
    return f'<div class="src-empty" role="alert">{esc(message)}</div>'


def with_headings(text: str, headings: frozenset[str]) -> str:
    """`text` escaped, each line that is one of the document's headings (a Markdown line without its
    #s) in a heading element, so the viewer shows sections as sections; the text itself is unchanged."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if body.strip() and body.strip().lstrip("#").strip() in headings:
            out.append(f'<span class="src-h" role="heading" aria-level="3">{esc(body)}</span>{esc(line[len(body):])}')
        else:
            out.append(esc(line))
    return "".join(out)


def source_header(c: Citation) -> str:
    """The viewer's header: which citation, of which document, section and page, and the way back."""
    page = f"page {c.page}, " if c.page is not None else ""
    number = f"Citation [{c.rank}] — " if c.rank else ""
    return (
        f'<div class="src-head"><div class="src-top"><div class="src-title">{esc(number)}{esc(c.title)}</div>'
        '<button class="src-close" aria-label="Fermer le document et revenir à la citation" '
        'title="Revenir à la citation (Échap)">Fermer</button></div>'
        f'<div class="src-section">{esc(c.section or NO_SECTION)}</div>'
        f'<div class="src-meta">{esc(c.doc)} · {page}caractères {c.start}–{c.end}</div></div>'
    )


def render_source(text: str, c: Citation, headings: frozenset[str] = frozenset()) -> str:
    """The whole document, escaped, with the passage in <mark id="hl"> and its sentence marked inside:
    as the answer (class hl-sentence) when the citation is the quote, else neutrally (hl-near); the
    lines that are `headings` outside the passage shown as headings."""
    if not (0 <= c.start <= c.sentence_start <= c.sentence_end <= c.end <= len(text)):
        raise ValueError(f"citation offsets {c.start}–{c.end} do not fit the document ({len(text)} characters)")
    sentence_css = "hl-sentence" if c.quote else "hl-near"
    body = (
        f"{with_headings(text[: c.start], headings)}"
        f'<mark id="hl" class="hl-passage">{esc(text[c.start : c.sentence_start])}'
        f'<mark class="{sentence_css}">{esc(text[c.sentence_start : c.sentence_end])}</mark>'
        f"{esc(text[c.sentence_end : c.end])}</mark>"
        f"{with_headings(text[c.end :], headings)}"
    )
    name = f"Texte du document {c.title}"
    return (
        f'<div class="src">{source_header(c)}'
        f'<div class="src-body" tabindex="0" role="region" aria-label="{esc(name)}">{body}</div></div>'
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n > 1 else ''}"


def render_summary(status: IndexStatus) -> str:
    """The corpus line (documents, passages, model, build date) and, if stale, a visible warning."""
    titles = [d.title for d in status.documents]
    shown = ", ".join(titles[:5]) + (f" et {len(titles) - 5} autres" if len(titles) > 5 else "")
    line = (
        f"{_plural(len(status.documents), 'document')} ({shown}) · "
        f"{_plural(status.passages, 'passage')} · "
        f"modèle {status.model} · "
        f"index construit le {format_date(status.created)}"
    )
    # titles and the model's name come from files: `esc` makes them inert, so no bidi override reorders the line
    out = f'<div class="summary"><span class="summary-label">Corpus</span> {esc(line)}</div>'
    fresh = status.freshness
    if fresh.stale:
        details = [
            f"{len(docs)} {label}"
            for docs, label in (
                (fresh.added, "ajouté(s)"), (fresh.changed, "modifié(s)"), (fresh.removed, "supprimé(s)"))
            if docs
        ]
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
