"""The corpus summary under the title: documents, passages, model, build date, and a stale-index warning."""

from __future__ import annotations

import html
from datetime import datetime

from qa.index import IndexStatus
from qa.wording import typeset


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
    out = f'<div class="summary"><span class="summary-label">Corpus</span> {html.escape(line)}</div>'
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
        out += f'<div class="stale">{html.escape(warning)}</div>'
    return out
