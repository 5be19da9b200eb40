"""The corpus summary under the title: documents, passages, model, build date, and a stale-index warning."""

from __future__ import annotations

from qa.index import IndexStatus
from qa.wording import format_date, typeset
from ui.render import esc


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
