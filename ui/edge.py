"""The app's HTTP edge: one ASGI middleware (`Edge`) in front of every Gradio route.

- **Routes that take a body.** Gradio 6 serves ~30 POST routes; the app needs five: `queue/join` (the
  page's events and gradio_client), `call/<api>` for the public API only (/retrieve, /ask, /status),
  `run/predict` only for the page's one unqueued event (an example copied into the question box, named
  by its fn_index), and `cancel` / `reset` (the page stops an event with them). Every other request
  with a body is refused with 403 before any byte of it is read: uploads (`upload`,
  `process_recording`, `stream/<id>`), `component_server`, `login`, `api/<name>` and `run/<queued>`
  (they would skip the queue), `call/v2`, `run-history/connect`, `vibe-*`…; PUT, PATCH and DELETE
  too. GET, HEAD and OPTIONS must come without a body (413).
- **Body cap.** An accepted body is read up to BODY_LIMIT (64 KB): a question, and a 100-turn history
  takes 6 KB as questions, 17 KB as chat messages with their answers; beyond, 413 without reading on.
- **Request shape, in French.** A `call` or `queue/join` body must be JSON with a `data` list holding
  a value for each of the function's inputs (Gradio would answer `{"error": null}` and log an English
  traceback); else 400 with a French `detail`.
- **Answers in French.** Error responses and error events go through `ui.messages`; the edge's own
  refusals too are in French typography (`qa.wording.typeset`). The app's page (GET /) is French from
  its first byte (`ui.messages.french_page`: its lang, its link preview).
- **No memory per API call.** Gradio keeps a session (a copy of the page's config, ~25 KB) for each
  `call` made without a session hash, and an entry in two queue tables, until 10,000 sessions; they
  are dropped once the call's result has been read (`forget_call_session`).
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

from starlette.responses import JSONResponse

from qa.wording import typeset
from ui.messages import french_error_body, french_events, french_page

BODY_LIMIT = 64 * 1024
_CALL_STREAM = re.compile(r"/gradio_api/call/[^/]+/([^/]+)")
REFUSED = "Adresse refusée : l'assistant n'accepte aucun fichier ni aucun envoi sur cette adresse."
TOO_LARGE = (f"Requête trop volumineuse (plus de {BODY_LIMIT // 1024} Ko) : envoyez une question et un historique "
             "plus courts (seules les dernières questions servent au suivi).")
NO_BODY = "Cette adresse ne prend pas de corps de requête."
NOT_JSON = ('Corps de requête illisible : un objet JSON en UTF-8 est attendu, par exemple '
            '{"data": ["Qui a revendiqué les attaques ?", 3]}.')
NO_DATA = 'Corps de requête invalide : attendu un objet JSON avec une liste "data" des valeurs de la fonction.'


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": typeset(message)}, status_code=status, headers={"Connection": "close"})


class Edge:
    """ASGI middleware: the routes, the body cap, the request shape, French answers, no session kept
    per API call (see the module's docstring). `blocks` is the app (its functions name the routes)."""

    def __init__(self, app: Any, blocks: Any, limit: int = BODY_LIMIT) -> None:
        self.app, self.blocks, self.limit = app, blocks, limit
        self.finished: set[str] = set()  # calls read but whose event the queue still holds (retried later)
        fns = list(blocks.fns.values())
        self.public = {fn.api_name: fn for fn in fns if fn.api_visibility == "public" and fn.fn is not None}
        self.unqueued = {fn.api_name: fn for fn in fns if not fn.queue and fn.fn is not None}

    def body_route(self, path: str) -> str | None:
        """What a POST to `path` is ("call", "run", "join", "cancel", "reset"), or None: refused."""
        if path in ("/gradio_api/queue/join", "/gradio_api/cancel", "/gradio_api/reset"):
            return path.rsplit("/", 1)[1]
        if path.startswith("/gradio_api/call/") and path.removeprefix("/gradio_api/call/") in self.public:
            return "call"
        if path.removeprefix("/gradio_api/run/") in ("predict", *self.unqueued):
            return "run"  # the page posts its unqueued events to run/predict, naming them by fn_index
        return None

    def function(self, kind: str, path: str, value: dict) -> Any:
        """The function a `call`, `run` or `queue/join` body names (None: none the route accepts)."""
        name = path.rsplit("/", 1)[1]
        index = value.get("fn_index")
        if isinstance(index, int) and not isinstance(index, bool):
            fn = self.blocks.fns.get(index)
        else:
            fn = self.public.get(name) if kind == "call" else self.unqueued.get(name)
        if fn is None or fn.fn is None or (kind == "run" and fn.queue) or (kind == "call" and fn.api_name != name):
            return None
        return fn

    def request_problem(self, kind: str, path: str, body: bytes) -> str | None:
        """Why a body cannot be processed, in French; None when it can: JSON in UTF-8, and for `call`,
        `run` and `queue/join` a `data` list with a value for each input of a function the route accepts."""
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return NOT_JSON
        if not isinstance(value, dict):
            return NOT_JSON
        if kind in ("cancel", "reset"):
            return None
        if not isinstance(value.get("data"), list):
            return NO_DATA
        fn = self.function(kind, path, value)
        if fn is None:
            return "Fonction inconnue ou non accessible par cette adresse."
        wanted, got = len(fn.inputs), len(value["data"])
        if got < wanted:
            return f"/{fn.api_name} attend {wanted} valeur(s) ({', '.join(_input_names(fn))}) ; {got} reçue(s)."
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(scope.get("root_path") or "").rstrip("/") or "/"
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        declared = int(length) if length.isdigit() else self.limit + 1
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            if declared or b"transfer-encoding" in headers:
                await _refuse(413, NO_BODY)(scope, receive, send)
                return
            await self.app(scope, receive, FrenchSend(send, page=path == "/" and scope["method"] == "GET"))
            if match := _CALL_STREAM.fullmatch(path):  # a call's result read: its session is no longer needed
                self.finished.add(match[1])
                self.finished = {s for s in self.finished if not forget_call_session(self.blocks, s)}
            return
        kind = self.body_route(path) if scope["method"] == "POST" else None
        if kind is None:
            await _refuse(403, REFUSED)(scope, receive, send)
            return
        body = None if declared > self.limit else await read_body(receive, self.limit)
        if body is None:
            await _refuse(413, TOO_LARGE)(scope, receive, send)
            return
        problem = self.request_problem(kind, path, body)
        if problem:
            await _refuse(400, problem)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), FrenchSend(send))


async def read_body(receive: Any, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes `limit` bytes (the rest is never read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client left: the app sees an empty body, then the disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Any) -> Any:
    """A `receive` that gives the app the body already read, then the client's own messages."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _input_names(fn: Any) -> list[str]:
    """The function's parameter names, one per input (the API's names: question, history, k)."""
    try:
        names = list(inspect.signature(fn.fn).parameters)[: len(fn.inputs)]
    except (TypeError, ValueError):
        names = []
    return names if len(names) == len(fn.inputs) else [type(c).__name__ for c in fn.inputs]


class FrenchSend:
    """A `send` that writes answers in French: a JSON error body is held, translated and sent with its
    new length, and so is the app's page (`page`: `ui.messages.french_page`); an event stream is
    translated chunk by chunk; anything else passes as is."""

    def __init__(self, send: Any, *, page: bool = False) -> None:
        self.send, self.page, self.mode, self.start, self.held = send, page, None, None, []

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            kind = headers.get(b"content-type", b"")
            if kind.startswith(b"text/event-stream"):
                self.mode = "events"
            elif message["status"] >= 400 and kind.startswith(b"application/json"):
                self.mode, self.start = "error", message
                return
            elif self.page and message["status"] == 200 and kind.startswith(b"text/html"):
                self.mode, self.start = "page", message
                return
            await self.send(message)
            return
        if message["type"] != "http.response.body" or self.mode is None:
            await self.send(message)
            return
        if self.mode == "events":
            await self.send({**message, "body": french_events(message.get("body", b""))})
            return
        self.held.append(message.get("body", b""))
        if not message.get("more_body", False):
            held = b"".join(self.held)
            body = french_page(held) if self.mode == "page" else french_error_body(self.start["status"], held)
            headers = [(k, v) for k, v in self.start.get("headers", []) if k != b"content-length"]
            await self.send({**self.start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await self.send({"type": "http.response.body", "body": body, "more_body": False})


def forget_call_session(blocks: Any, session_hash: str) -> bool:
    """Drop what Gradio still holds for a finished `call` once its result has been read: the session
    (a copy of the page's config) and its entries in the queue's tables. Gradio keys a call made
    without a session hash by its event id. False, and nothing dropped, while the queue still holds
    the event (its stream can end a moment before the queue lets it go)."""
    queue = getattr(blocks, "_queue", None)
    holder = getattr(blocks, "state_holder", None)
    if queue is None or holder is None:
        return True
    if session_hash in queue.event_ids_to_events:
        return False
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)
    if not queue.pending_event_ids_session.get(session_hash, True):
        queue.pending_event_ids_session.pop(session_hash, None)
    waiting = queue.pending_messages_per_session.get(session_hash)
    if waiting is not None and waiting.empty():
        queue.pending_messages_per_session.pop(session_hash, None)
    return True
