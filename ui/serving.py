"""Serving: `serve` (`qa serve`) checks the index, rebuilding it on first run or when stale, loads the
model, then launches the app on 127.0.0.1 with the app's settings (`launch`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

import qa
from qa.index import built_corpus, load_index
from ui.assets import CSS, HEAD, THEME
from ui.edge import Edge
from ui.guards import analytics_off
from ui.layout import build_app

# Sessions whose state Gradio keeps, least recently used dropped first. A session costs ~45 KB (Gradio's
# copy of the page's config) plus its chat's turns, ~1.5 KB each with 3 passages (at most 100 turns):
# 500 sessions of 10 turns hold ~30 MB. Gradio's default, 10,000, would let ~450 MB of configs pile up.
SESSIONS = 500


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, *, prevent_thread_lock: bool = False) -> None:
    """Launch with the app's settings: local only unless asked, no share, no analytics, the HTTP edge
    (`ui.edge.Edge`: only the routes the app needs, bodies capped, French answers), SESSIONS sessions kept."""
    analytics_off()
    demo.analytics_enabled = False  # a Blocks made before analytics_off() took Gradio's default (on)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=prevent_thread_lock,
        theme=THEME,
        css=CSS,
        head=HEAD,
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


def ensure_index(index: str | Path, corpus: str | Path | None = None) -> Path:
    """Build the index if it is missing, damaged, of another version or stale, saying so in French;
    return its corpus. A damaged build is never reused: the rebuild embeds everything again.

    With no `corpus`, the one the index was built from is used (else `corpus/`), so serving an
    index built from another folder never rebuilds it from the wrong one; likewise the rebuild uses
    the model the index was built with (`qa index build --model …`), not the default.

    The build runs in a child process (`qa index build`, which says each of its steps on stderr), so
    the document model (torch, ~1 GB) and the first run's ONNX export go away with it: the server
    keeps only what questions need. Raises IndexBuildFailed when it fails (it has said why).
    """
    corpus = Path(corpus) if corpus is not None else built_corpus(index) or Path("corpus")
    model = built_model(index)
    try:
        if not qa.check_freshness(index, corpus).stale:
            load_index(index)  # checks every file of the build against its checksum
            return corpus
        state = "absent ou périmé"  # stale: the corpus, the model or the settings changed
    except qa.IndexNotFoundError:
        state = "absent ou périmé"
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


def built_model(index: str | Path) -> str | None:
    """The model the live build was made with, or None (the default) when there is no readable build."""
    try:
        return qa.index_status(index, check_model=False).model
    except (qa.QAError, OSError):
        return None


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    corpus: str | Path | None = None,
    index: str | Path = "index",
    *,
    prevent_thread_lock: bool = False,
) -> gr.Blocks:
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
