"""French typography and labels that every face writes (CLI, app, API): quotes, probabilities and
relevance levels defined once, so `qa ask` and the chat say the same thing in the same way."""

from __future__ import annotations

import re
from datetime import datetime

NBSP = "\u00a0"
NNBSP = "\u202f"  # French typography: a narrow no-break space before % (and before ; ! ?)

RELEVANCE_LABELS = {
    "high": "pertinence élevée",
    "medium": "pertinence moyenne",
    "low": "pertinence faible",
    None: "pertinence non calibrée",  # the model has no calibration file
}


def quoted(text: str) -> str:
    """French quotation marks with non-breaking spaces: « text »."""
    return f"«{NBSP}{text}{NBSP}»"


def percent(p: float) -> str:
    """A probability in French style: «87 %» (narrow no-break space). A rounded «0 %» or «100 %»
    would claim a certainty the model does not have, so the extremes read «< 1 %» and «> 99 %»."""
    value = round(100 * p)
    if value < 1 and p > 0:
        return f"<{NBSP}1{NNBSP}%"
    if value > 99 and p < 1:
        return f">{NBSP}99{NNBSP}%"
    return f"{value}{NNBSP}%"


_BEFORE = "?!:;»"  # a narrow no-break space goes before these, and after «
_ENTITY = re.compile(r"&#?\w+;")  # an escaped character (&amp;, &#x27;): its ; is not punctuation


def guillemets(text: str) -> str:
    """French quotation marks with narrow no-break spaces, as the app writes them: « text »."""
    return f"«{NNBSP}{text}{NNBSP}»"


def typeset(text: str) -> str:
    """A sentence the app writes, in French typography: the space before ? ! : ; and » (plain, no-break,
    or none) becomes a narrow no-break space, and so does the one after «. For the app's own wording
    only: never for a quote of the report or a question, which are shown as written. HTML entities
    (`&amp;`) are left whole."""
    out: list[str] = []
    entity_ends = {m.end() - 1 for m in _ENTITY.finditer(text)}
    for i, char in enumerate(text):
        if i in entity_ends:
            pass
        elif char in _BEFORE and i and (text[i - 1].isalnum() or text[i - 1] in ")…"):
            if char != ":" or not (i + 1 < len(text) and text[i + 1].isalnum()):  # 10:30, http://
                out.append(NNBSP)
        elif char in " " + NBSP and i + 1 < len(text) and text[i + 1] in _BEFORE:
            if text[i + 1] != ":" or i + 2 >= len(text) or not text[i + 2].isalnum():
                char = NNBSP
        elif char in " " + NBSP and i and text[i - 1] == "«":
            char = NNBSP
        out.append(char)
        if char == "«" and i + 1 < len(text) and text[i + 1] not in " " + NBSP + NNBSP:
            out.append(NNBSP)
    return "".join(out)


def format_date(iso: str) -> str:
    """'2026-11-24T08:58:48+00:00' → '24/11/2026 à 08:58 UTC' (the ISO text itself when unparsable): how
    the CLI (`qa index status`) and the app write an index's build date."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    zone = " UTC" if moment.utcoffset() is not None and not moment.utcoffset() else ""
    return f"{moment:%d/%m/%Y} à {moment:%H:%M}{zone}"
