"""Serving: `serve` (`qa serve`) checks (or rebuilds) the index, loads the model, then `launch`es the app on
127.0.0.1 with its theme, CSS and script (`ui/static/`) behind `Edge`, the ASGI middleware before every route."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware
from starlette.responses import JSONResponse

import qa
from qa.wording import typeset
from ui.guards import analytics_off
from ui.layout import build_app

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STATIC = Path(__file__).with_name("static")  # the page's CSS and script, shipped with the package
# Sessions whose state Gradio keeps, least recently used dropped first: ~45 KB each (Gradio's copy of the
# page's config) plus ~1.5 KB a turn with 3 passages, so 500 sessions of 10 turns hold ~30 MB, where Gradio's
# default, 10,000, would pile up ~450 MB of configs. A plain-HTTP `call/<api>` takes one too (gradio_client
# keeps one per client): a burst of 500 pushes the chats' sessions out.
SESSIONS = 500

# Soft's greys and blue-500 read at 2.4-3.7:1 on its light backgrounds; these read at 4.5:1 or more.
THEME = gr.themes.Soft(
    primary_hue="blue", font=["system-ui", "Segoe UI", "Roboto", "sans-serif"], font_mono=["ui-monospace", "monospace"]
).set(
    body_text_color_subdued="*neutral_600",
    block_info_text_color="*neutral_600",
    block_label_text_color="*primary_800",
    block_title_text_color="*primary_800",
    button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800",
    input_placeholder_color="*neutral_500",
)


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, *, prevent_thread_lock: bool = False) -> None:
    """Launch with the app's settings: local only unless asked, no share, no analytics, the page's look and
    script, the HTTP edge (`Edge`), SESSIONS sessions kept."""
    analytics_off()
    demo.analytics_enabled = False  # a Blocks made before analytics_off() took Gradio's default (on)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=prevent_thread_lock,
        theme=THEME,
        css_paths=[STATIC / "app.css"],
        js=(STATIC / "app.js").read_text(encoding="utf-8"),
        footer_links=["api"],
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        run_history=False,
        quiet=True,
        show_error=False,
        state_session_capacity=SESSIONS,
        app_kwargs={"middleware": [Middleware(Edge, blocks=demo)]},
    )


BODY_LIMIT = 64 * 1024  # a question with a 100-turn history takes 6 KB as questions, 17 KB as chat messages
API = "/gradio_api"
REFUSED = typeset("Adresse refusée : l'assistant n'accepte aucun fichier ni aucun envoi sur cette adresse.")
TOO_LARGE = typeset(f"Requête trop volumineuse (plus de {BODY_LIMIT // 1024} Ko) : envoyez une question et un "
                    "historique plus courts (seules les dernières questions servent au suivi).")
NO_BODY = typeset("Cette adresse ne prend pas de corps de requête.")


class Edge:
    """ASGI middleware in front of every route: the routes that take a body, and how much of it.

    Of Gradio 6's ~30 POST routes the app needs `queue/join` (the page's events, gradio_client),
    `call/<api>` for the public API only, `run/predict` and `run/<name>` for the page's unqueued event (an
    example copied into the question box: `api_open=False` refuses a queued one there) and `cancel` /
    `reset` (the page stops an event). Any other request with a body (uploads, `component_server`, `login`,
    `api/<name>`, `call/<private>`, PUT, DELETE…) gets 403 before a byte is read; a body on GET, HEAD or
    OPTIONS, or one past `limit` bytes, 413. The names come from the app's functions (`Blocks.fns`).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], blocks: gr.Blocks,
                 limit: int = BODY_LIMIT) -> None:
        self.app, self.limit = app, limit
        functions = [fn for fn in blocks.fns.values() if fn.fn is not None]
        self.accepted = {f"{API}/queue/join", f"{API}/cancel", f"{API}/reset", f"{API}/run/predict"}
        self.accepted |= {f"{API}/call/{fn.api_name}" for fn in functions if fn.api_visibility == "public"}
        self.accepted |= {f"{API}/run/{fn.api_name}" for fn in functions if not fn.queue}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        declared = int(length) if length.isdigit() else self.limit + 1
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            if declared or b"transfer-encoding" in headers:
                await refuse(413, NO_BODY)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(scope.get("root_path") or "").rstrip("/")
        if scope["method"] != "POST" or path not in self.accepted:
            await refuse(403, REFUSED)(scope, receive, send)
            return
        body = None if declared > self.limit else await read_body(receive, self.limit)
        if body is None:
            await refuse(413, TOO_LARGE)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


def refuse(status: int, message: str) -> JSONResponse:
    """The edge's own refusal, in French; the connection is closed (the rest of a body is never read)."""
    return JSONResponse({"detail": message}, status_code=status, headers={"Connection": "close"})


async def read_body(receive: Receive, limit: int) -> bytes | None:
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


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then the client's own messages."""
    sent = False

    async def replayed() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def ensure_index(index: str | Path, corpus: str | Path | None = None) -> Path:
    """Build the index if it is missing, damaged (never reused: all is embedded again), of another version or
    stale, saying so in French; return its corpus. The rebuild uses the corpus (else `corpus/`) and model the
    index was built with, never the wrong folder or the default model.

    The build runs in a child process (`qa index build`, saying its steps on stderr), so the document model
    (torch, ~1 GB) goes away with it. Raises IndexBuildFailed when it fails (it has said why).
    """
    corpus = Path(corpus) if corpus is not None else qa.built_corpus(index) or Path("corpus")
    try:
        model = qa.index_status(index, check_model=False).model
    except (qa.QAError, OSError):  # no readable build: the default model
        model = None
    state = "absent ou périmé"  # or stale: the corpus, the model or the settings changed
    try:
        if not qa.check_freshness(index, corpus).stale:
            qa.assistant(index).index  # noqa: B018 - loading checks every file of the build against its checksum
            return corpus
    except qa.IndexNotFoundError:
        pass
    except qa.IndexVersionError:
        state = "construit par une autre version de qa"
    except (qa.IndexCorruptError, OSError):
        state = "endommagé ou illisible"
    print(f"Index {state} : reconstruction…", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "qa", "index", "build", "--corpus", str(corpus), "--index", str(index)]
    # The child imports this process's qa (same interpreter, same import path: a source checkout too).
    path = os.pathsep.join([p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([*command, *(["--model", model] if model else [])], env={**os.environ, "PYTHONPATH": path},
                          stdout=2, check=False)  # all its lines (steps, summary) to the server's stderr
    if done.returncode != 0:
        raise IndexBuildFailed(f"qa index build exited with status {done.returncode}", done.returncode)
    return corpus


class IndexBuildFailed(Exception):
    """`qa serve`'s first build failed; the child process has said why, in French, on stderr."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def serve(host: str = "127.0.0.1", port: int = 7860, corpus: str | Path | None = None, index: str | Path = "index",
          *, prevent_thread_lock: bool = False) -> gr.Blocks:
    """`qa serve`: check (or rebuild) the index, load the model, then launch the app."""
    corpus = ensure_index(index, corpus)
    print("Chargement du modèle…", file=sys.stderr, flush=True)
    qa.retrieve("Bonjour", k=1, index=index)  # the first real question then answers at once
    demo = build_app(index, corpus)
    launch(demo, host, port, prevent_thread_lock=True)
    print(f"Assistant prêt : {demo.local_url} (Ctrl+C pour arrêter)", file=sys.stderr, flush=True)
    if not prevent_thread_lock:
        try:
            while demo.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("Arrêt de l'assistant.", file=sys.stderr)
        finally:
            demo.close()
    return demo
