"""The index on disk: the folder's layout, the files of a build and their rows, the settings a build
must share with this version of qa, and the atomic switch from one build to the next.

Layout of an index folder `index/`:
    CURRENT            name of the live build (replaced with `os.replace`, so readers see the
                       old build or the new one, never half of one)
    build-<stamp>/     a complete build: manifest.json, passages.jsonl, documents.jsonl, ... (the live
                       one and the one before it, which readers may still be opening)
    .tmp-<id>/         a build in progress; left over only if a build was killed, removed by the next
    .lock              held while building, so two builds never interleave

A build holds manifest.json (what it was built from: corpus, model, settings, each document's hash),
passages.jsonl (one `passage_row` per passage), documents.jsonl (each document's text), dense.faiss,
vectors.npy, sentences.npy and bm25/. `qa.index.writer` writes them, `qa.index.loader` reads them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from qa.chunking import IndexedPassage, chunking_params
from qa.errors import IndexNotFoundError
from qa.files import fsync_file, fsync_tree, locked
from qa.french import ANALYZER_PARAMS

log = logging.getLogger(__name__)
CURRENT = "CURRENT"
FORMAT_VERSION = 2  # of the files in a build; another version must be rebuilt (2: vectors.npy, dense)
BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene"}
_observers: list[Callable[[str], None]] = []


def settings() -> dict[str, Any]:
    """What a build records and must share with this version of qa to be reused as it is: the
    chunking (a change re-embeds), the keyword analyser and BM25's parameters (a change rebuilds BM25)."""
    return {"chunking": chunking_params(), "analyzer": ANALYZER_PARAMS, "bm25": BM25_PARAMS}


def bm25s():
    """The bm25s module (imported lazily: `import qa` stays light), with the DEBUG level its import
    sets on its own logger put back to the default."""
    import bm25s as module  # lazy: a heavy library, loaded on first use

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return module


def passage_row(p: IndexedPassage) -> dict[str, Any]:
    """A passage as passages.jsonl holds it."""
    return {
        "doc": p.doc, "title": p.title, "section": p.section, "start": p.start, "end": p.end,
        "page": p.page, "sentences": [list(s) for s in p.sentences], "text": p.text,
    }


def passage_from_row(r: dict[str, Any]) -> IndexedPassage:
    """The passage a passages.jsonl row holds."""
    return IndexedPassage(r["doc"], r["title"], r["section"], r["start"], r["end"], r["text"],
                          tuple(tuple(s) for s in r["sentences"]), r.get("page"))


def observe_stages(observer: Callable[[str], None]) -> None:
    """Call `observer(stage)` at each stage a build passes ("embedded", "writing", "renamed"): how a
    crash test pauses a build at an exact point to kill it. Nothing observes in production."""
    _observers.append(observer)


def checkpoint(stage: str) -> None:
    """A build reached `stage`: tell the observers, if any."""
    for observer in _observers:
        observer(stage)


def current_build(root: Path) -> Path:
    """The live build folder of the index at `root`."""
    try:
        name = (root / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexNotFoundError(f"No index at {root}: run `qa index build` first.") from None
    path = root / name
    if not name.startswith("build-") or not path.is_dir():
        raise IndexNotFoundError(f"Index at {root} points to a missing build {name!r}: run `qa index build`.")
    return path


@contextlib.contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Hold the index folder's lock: a second build waits instead of interleaving."""
    with locked(root / ".lock"):
        yield


def new_build_dir(root: Path) -> Path:
    """A fresh temporary folder inside `root`; leftovers of killed builds are removed first."""
    for leftover in root.glob(".tmp-*"):
        log.warning("Removing leftover of an interrupted build: %s", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    return tmp


def publish(root: Path, tmp: Path) -> Path:
    """Make the finished build at `tmp` the live one, atomically; keep the previous one, drop older ones."""
    try:
        previous = (root / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        previous = ""
    name = time.strftime("build-%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
    final = root / name
    fsync_tree(tmp)
    os.rename(tmp, final)
    checkpoint("renamed")  # the new build is complete on disk but not yet live
    pointer = root / f".{CURRENT}.{uuid.uuid4().hex[:6]}"
    pointer.write_text(name + "\n", encoding="utf-8")
    fsync_file(pointer)
    os.replace(pointer, root / CURRENT)
    fsync_file(root)
    # The build that was live until now is kept, so a reader that resolved CURRENT a moment ago still
    # finds every file; older ones go.
    keep = {name, previous} if previous else {name}
    for old in root.glob("build-*"):
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_manifest(build: Path) -> dict[str, Any]:
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"index format {manifest.get('format')!r}, expected {FORMAT_VERSION}")
    return manifest


def live_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of the live build at `root` (IndexNotFoundError, OSError or ValueError if none)."""
    return read_manifest(current_build(Path(root)))
