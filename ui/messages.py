"""Gradio's own messages in French, at the app's edge: what Gradio answers before or around the
handlers (its component checks, a full queue, malformed requests, a missing value) is English, or an
error without a message (`{"error": null}`), since the app hides exception texts (`show_error=False`).

`ui.edge` passes every error response through here: an HTTP error's `detail` (a JSON body), and the
error events of the two event streams (`/gradio_api/call/<api>/<id>`: `event: error` then its data;
`/gradio_api/queue/data`: messages `process_completed` with `success: false` and `unexpected_error`).
The handlers' own refusals are French already and pass unchanged. Every French line leaves in French
typography (`qa.wording.typeset`: a narrow no-break space before ? ! : ; and inside « »). Which Gradio
code writes each English text, in Gradio 6.31: `queueing.py` (queue full), `components/number.py` (a
slider's bounds), `components/dropdown.py` (choices), `routes.py` and FastAPI (requests), `blocks.py`
(missing values).
"""

from __future__ import annotations

import json
import logging
import re

from qa.wording import typeset

log = logging.getLogger(__name__)

ERROR_TITLE = "Erreur"
UNEXPLAINED = ("La requête n'a pas pu être traitée : une valeur envoyée n'a pas la forme attendue, ou une "
               "erreur interne est survenue (le détail est dans le journal du serveur).")
QUEUE_FULL = ("Trop de questions en attente ({0} au plus) : le serveur est occupé, réessayez dans quelques "
              "secondes.")

BUSY = "Le serveur est occupé (trop de questions en attente) : réessayez dans quelques secondes."

# The English that Gradio's page script writes into its toasts whatever the server answered (a full
# queue's HTTP 503 always shows the first, its French `detail` unread): the head script (`ui.assets`)
# puts the French in their place.
PAGE_TOASTS = {
    "This application is currently busy. Please try again.": BUSY,
    "Connection errored out.": "La connexion au serveur a échoué : rechargez la page.",
    "Connection to the server was lost. Attempting reconnection...": "Connexion au serveur perdue : reconnexion…",
}
TOAST_TITLES = {"error": "Erreur", "warning": "Avertissement", "info": "Information", "success": "Succès"}

# (Gradio's English text, the French shown instead); the French never repeats a value sent by the client.
KNOWN = [
    (re.compile(r"Queue is full\. Max size is (\d+)\b.*", re.S), QUEUE_FULL),
    (re.compile(r"Queue is stopped\..*", re.S), "Le serveur s'arrête : réessayez dans un moment."),
    (re.compile(r"Server stopped unexpectedly\..*", re.S), "Le serveur s'est arrêté pendant la requête."),
    (re.compile(r"Value .* is less than minimum value (\S+?)\.?$", re.S), "Valeur trop petite : le minimum est {0}."),
    (re.compile(r"Value .* is greater than maximum value (\S+?)\.?$", re.S),
     "Valeur trop grande : le maximum est {0}."),
    (re.compile(r"Value: .* is not in the list of choices.*", re.S),
     "Valeur hors des choix proposés : choisissez parmi les documents de l'index."),
    (re.compile(r"Data incompatible with the messages format.*", re.S), "Messages de conversation mal formés."),
    (re.compile(r"Session hash not found\..*", re.S), "Requête sans identifiant de session (session_hash)."),
    (re.compile(r"Session not found\..*", re.S), "Session inconnue ou expirée : rechargez la page."),
    (re.compile(r"No function index provided\..*", re.S), "Requête sans fonction (fn_index)."),
    (re.compile(r"Could not infer function index for API name.*", re.S), "Point d'entrée de l'API inconnu."),
    (re.compile(r"There was an error parsing the body.*", re.S),
     "Corps de requête illisible : un objet JSON en UTF-8 est attendu."),
]
BY_STATUS = {
    400: "Requête invalide.",
    401: "Authentification requise.",
    403: "Accès refusé.",
    404: "Introuvable.",
    405: "Méthode non autorisée pour cette adresse.",
    413: "Requête trop volumineuse.",
    422: "Corps de requête invalide : attendu un objet JSON de la forme {\"data\": [valeurs]}.",
    429: "Trop de requêtes : réessayez dans quelques secondes.",
    500: "Erreur interne du serveur.",
    503: "Service momentanément indisponible : réessayez dans quelques secondes.",
}
_ERROR_EVENTS = re.compile(rb'event: error|"success":\s*false|"unexpected_error"')


def known(text: object) -> str | None:
    """The French for one of Gradio's English texts, or None when `text` is not one of them."""
    if not isinstance(text, str):
        return None
    for pattern, french in KNOWN:
        match = pattern.match(text.strip())
        if match:
            return french.format(*match.groups())
    return None


def event_error(text: object) -> str:
    """An error event's message in French: Gradio's known texts translated, the handlers' own (French)
    kept, and no message at all (an exception the app does not show) replaced by UNEXPLAINED."""
    if text is None or text == "":
        return typeset(UNEXPLAINED)
    return typeset(known(text) or str(text))


def http_error(status: int, detail: object) -> str:
    """An HTTP error's detail in French: Gradio's and FastAPI's texts are all English, so an unknown
    one is replaced by the status's own French line."""
    french = known(detail)
    if french is None:
        log.debug("HTTP %s replaced by its French line: %r", status, detail)
        french = BY_STATUS.get(status, BY_STATUS[400] if status < 500 else BY_STATUS[500])
    return typeset(french)


def french_error_body(status: int, body: bytes) -> bytes:
    """A JSON error body (`{"detail": …}`) with its detail in French; other bodies unchanged."""
    try:
        value = json.loads(body)
    except ValueError:
        return body
    if not isinstance(value, dict) or "detail" not in value:
        return body
    detail = value["detail"]
    if isinstance(detail, list) and any(isinstance(d, dict) and "__type__" in d for d in detail):
        return body  # a validator's own answer, which gradio_client reads field by field
    return json.dumps({"detail": http_error(status, detail)}).encode()


def _payload(value: object) -> dict:
    """An error payload ({"error", "title", …}) in French."""
    payload = dict(value) if isinstance(value, dict) else {"error": value}
    payload["error"] = event_error(payload.get("error"))
    if payload.get("title") in (None, "", "Error"):
        payload["title"] = ERROR_TITLE
    payload["visible"] = True
    return payload


def _message(value: object, after_error_event: bool) -> object:
    """One event's data in French (unchanged unless it reports an error)."""
    if after_error_event:  # /call stream: `event: error` then the payload, a text, or null
        return _payload(value) if isinstance(value, dict) else event_error(value)
    if isinstance(value, dict) and value.get("msg") == "process_completed" and value.get("success") is False:
        return {**value, "output": _payload(value.get("output"))}
    if isinstance(value, dict) and value.get("msg") == "unexpected_error":
        return {**value, "message": event_error(value.get("message"))}
    return value


def french_events(chunk: bytes) -> bytes:
    """A chunk of a server-sent event stream with its error events in French. Gradio writes each
    event in one chunk; a chunk holding no error is returned as is, without parsing."""
    if not _ERROR_EVENTS.search(chunk):
        return chunk
    lines = chunk.decode("utf-8", errors="replace").split("\n")
    after_error = False
    for i, line in enumerate(lines):
        if line.startswith("event: "):
            after_error = line == "event: error"
        elif line.startswith("data: "):
            try:
                value = json.loads(line[6:])
            except ValueError:
                continue
            french = _message(value, after_error)
            if french is not value:
                lines[i] = "data: " + json.dumps(french)
    return "\n".join(lines).encode("utf-8")


DESCRIPTION = "Questions-réponses sur les rapports : chaque réponse cite le texte exact, avec ses sources."


def french_page(body: bytes) -> bytes:
    """Gradio's HTML page in French from its first byte: `lang="fr"` (Gradio writes "en"; a screen reader
    picks its voice from it before any script runs, the head script's own fix comes later) and the link
    preview's description («Click to try out the app!»). A page of another shape is returned unchanged."""
    text = body.decode("utf-8", errors="surrogateescape")
    if "<head>" not in text:
        return body
    text = text.replace('lang="en"', 'lang="fr"', 1).replace("Click to try out the app!", typeset(DESCRIPTION))
    return text.encode("utf-8", errors="surrogateescape")
