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
The manifest records every other file's size and sha256 (`files`, checked by `qa.index.integrity`)
and its own sha256 (`manifest_sha256`, over the rest of it): no byte of a build goes unchecked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from qa.chunking import IndexedPassage, chunking_params
from qa.errors import IndexCorruptError, IndexNotFoundError, IndexVersionError
from qa.files import fsync_file, fsync_tree, locked, text_sha256, write_json
from qa.french import ANALYZER_PARAMS

log = logging.getLogger(__name__)
CURRENT = "CURRENT"
# Of the files in a build; another version is rebuilt (2: vectors.npy, dense; 3: every file's checksum).
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
SEAL = "manifest_sha256"  # the manifest's own checksum, a key of it
# What every build holds besides its manifest (bm25/: a folder of files).
BUILD_FILES = ("passages.jsonl", "dense.faiss", "bm25", "sentences.npy", "vectors.npy", "documents.jsonl")
_BUILD_NAME = re.compile(r"build-[0-9A-Za-z-]+")  # what `publish` names a build (no separator, no dot)
_SHA256 = re.compile(r"[0-9a-f]{64}")
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
    """The live build folder of the index at `root`: IndexNotFoundError without one, IndexCorruptError
    (naming CURRENT) when CURRENT holds anything but a build's name."""
    pointer = root / CURRENT
    try:
        raw = pointer.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise IndexNotFoundError(f"No index at {root}: run `qa index build` first.", folder=str(root)) from None
    except OSError as exc:
        raise IndexCorruptError(f"{pointer} cannot be read ({exc}): rebuild the index with `qa index build`.",
                                file=CURRENT) from exc
    name = _build_name(raw)
    if not name:
        raise IndexCorruptError(f"{pointer} is damaged (it names no build): rebuild the index with `qa index build`.",
                                file=CURRENT)
    path = root / name
    if not path.is_dir():
        raise IndexNotFoundError(f"Index at {root} points to a missing build {name!r}: run `qa index build`.",
                                 folder=str(root))
    return path


def live_name(root: Path) -> str:
    """The name CURRENT holds, or "" when it is missing, unreadable or damaged."""
    try:
        return _build_name((root / CURRENT).read_bytes())
    except OSError:
        return ""


def _build_name(raw: bytes) -> str:
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return ""
    return name if _BUILD_NAME.fullmatch(name) else ""


@contextlib.contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Hold the index folder's lock: a second build waits instead of interleaving."""
    with locked(root / ".lock"):
        yield


def new_build_dir(root: Path) -> Path:
    """A fresh temporary folder inside `root`; leftovers of killed builds are removed first."""
    for leftover in [*root.glob(".tmp-*"), *root.glob(".damaged-*")]:
        log.warning("Removing leftover of an interrupted build: %s", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    return tmp


def publish(root: Path, tmp: Path) -> Path:
    """Make the finished build at `tmp` the live one, atomically; keep the previous one, drop older ones."""
    previous = live_name(root)  # "" when CURRENT is damaged: no build is kept as the previous one
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


def discard_live(root: Path) -> None:
    """Take a damaged live build out of the index at `root` (the build lock held): CURRENT is removed
    and the build it names deleted, so it is never served, reused nor kept as the previous build.
    Readers then find no index until the next build is published."""
    name = live_name(root)
    pointer = root / CURRENT
    if pointer.is_dir() and not pointer.is_symlink():  # not even a file
        shutil.rmtree(pointer)
    else:
        pointer.unlink(missing_ok=True)
    fsync_file(root)
    if name and (root / name).is_dir():
        log.warning("Removing the damaged build %s", root / name)
        trash = root / f".damaged-{name}"
        os.rename(root / name, trash)  # out of sight at once, then deleted (or by the next build)
        shutil.rmtree(trash, ignore_errors=True)


def seal(manifest: dict[str, Any]) -> str:
    """The manifest's own checksum: sha256 of its canonical JSON, without the seal."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    return text_sha256(json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write a build's manifest with its seal (tests that edit a manifest write it back through here)."""
    write_json(folder / MANIFEST, {**manifest, SEAL: seal(manifest)})


def read_manifest(build: Path) -> dict[str, Any]:
    """The manifest of a build, checked: its seal, this version's format, a table of every file.
    IndexCorruptError naming manifest.json, or IndexVersionError for another version's index."""
    try:
        manifest = json.loads((build / MANIFEST).read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:  # missing, unreadable, not UTF-8, not JSON
        raise _bad_manifest(build, f"unreadable: {exc}") from exc
    if not isinstance(manifest, dict):
        raise _bad_manifest(build, "not a JSON object")
    if SEAL in manifest and manifest[SEAL] != seal(manifest):
        raise _bad_manifest(build, "its checksum differs")
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexVersionError(f"Index at {build} has format {manifest.get('format')!r}; this version of qa "
                                f"reads format {FORMAT_VERSION}: rebuild it with `qa index build`.")
    if SEAL not in manifest:
        raise _bad_manifest(build, "no checksum")
    if not _valid_files(manifest.get("files")):
        raise _bad_manifest(build, "no valid table of files")
    return manifest


def _bad_manifest(build: Path, what: str) -> IndexCorruptError:
    return IndexCorruptError(f"{MANIFEST} of the index at {build} is damaged ({what}): "
                             "rebuild it with `qa index build`.", file=MANIFEST)


def _valid_files(files: object) -> bool:
    """A table {relative path: {"size": int, "sha256": hex}} naming every file of BUILD_FILES."""
    if not isinstance(files, dict):
        return False
    for name, entry in files.items():
        parts = name.split("/")
        if "" in parts or "." in parts or ".." in parts or "\\" in name or name == MANIFEST:
            return False
        if not (isinstance(entry, dict) and type(entry.get("size")) is int and entry["size"] >= 0
                and isinstance(entry.get("sha256"), str) and _SHA256.fullmatch(entry["sha256"])):
            return False
    return all(any(n == name or n.startswith(name + "/") for n in files) for name in BUILD_FILES)


def live_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of the live build at `root` (IndexNotFoundError or IndexCorruptError if none)."""
    return read_manifest(current_build(Path(root)))
