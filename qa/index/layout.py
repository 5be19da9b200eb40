"""The index on disk: the folder's layout, the files of a build and their rows, the settings a build
must share with this version of qa, and the atomic switch from one build to the next.

Layout of an index folder `index/`:
    CURRENT            name of the live build (replaced with `os.replace`, so readers see the
                       old build or the new one, never half of one)
    build-<stamp>/     a complete build: manifest.json, passages.jsonl, documents.jsonl, ... (the live
                       one and the one before it, which readers may still be opening)
    .tmp-<id>/         a build in progress; left over only if a build was killed, removed by the next
    .lock              held while building, so two builds never interleave

A build holds manifest.json (corpus, model, settings, each document's hash), passages.jsonl,
documents.jsonl, dense.faiss, vectors.npy, sentences.npy and bm25/ (`writer` writes, `loader` reads).
The manifest records every other file's size and sha256 (`record`) and its own (`manifest_sha256`):
no byte of a build goes unchecked. The loader hashes the next files in a background thread while it
parses the previous ones (`checking`); status and the next build check them all (`problems`). A hash
is computed once per process per version of a file (`qa.files.file_sha256_cached`), so loading again
costs a `stat` per file; sizes are compared first, so a truncated or deleted file is refused at once.
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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qa.chunking import Passage, chunking_params
from qa.errors import IndexCorruptError, IndexNotFoundError, IndexVersionError
from qa.files import (
    file_identity,
    file_sha256,
    file_sha256_cached,
    fsync_file,
    fsync_tree,
    locked,
    text_sha256,
    write_json,
)
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
    """The bm25s module, with the DEBUG level its import sets on its own logger put back to the default."""
    import bm25s as module  # lazy: a heavy library, loaded on first use

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return module


def passage_row(p: Passage) -> dict[str, Any]:
    """A passage as passages.jsonl holds it."""
    return {"doc": p.doc, "title": p.title, "section": p.section, "start": p.start, "end": p.end,
            "page": p.page, "sentences": [list(s) for s in p.sentences], "text": p.text}


def passage_from_row(r: dict[str, Any]) -> Passage:
    """The passage a passages.jsonl row holds."""
    return Passage(r["doc"], r["title"], r["section"], r["start"], r["end"], r["text"],
                   tuple(tuple(s) for s in r["sentences"]), r.get("page"))


def observe_stages(observer: Callable[[str], None]) -> None:
    """Call `observer(stage)` at each stage a build passes ("embedded", "writing", "renamed"): how a crash
    test pauses a build at an exact point to kill it."""
    _observers.append(observer)


def checkpoint(stage: str) -> None:
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
    name = raw.decode("utf-8", errors="replace").strip()  # a byte that is not UTF-8 fails the match
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
    # The build live until now is kept: a reader that resolved CURRENT a moment ago still finds its files.
    for old in root.glob("build-*"):
        if old.name not in (name, previous):
            shutil.rmtree(old, ignore_errors=True)
    return final


def discard_live(root: Path) -> None:
    """Take a damaged live build out of the index at `root` (the build lock held): CURRENT removed and
    the build deleted, so it is never served, reused nor kept; readers find no index until the next build."""
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
    """The manifest of a build, checked (seal, format, a table of every file): IndexCorruptError naming
    manifest.json, or IndexVersionError for another version's index."""
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


MISSING, SIZE, CHECKSUM, UNREADABLE = "missing", "size differs", "checksum differs", "unreadable"
Files = dict[str, dict[str, Any]]  # the manifest's table: relative path -> {"size": int, "sha256": hex}


def record(folder: Path, *, leave_out: Iterable[str] = ("manifest.json",)) -> Files:
    """The size and sha256 of every file under `folder` (a build being written), by relative path."""
    files: Files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name not in leave_out:
            files[name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return files


def problem(build: Path, name: str, files: Files, *, hash_it: bool = True) -> str:
    """What is wrong with the file `name` of `build` ("" if it is as recorded); `hash_it=False`: sizes only."""
    path = build / name
    try:
        if os.stat(path).st_size != files[name]["size"]:
            return SIZE
        if hash_it and file_sha256_cached(path) != files[name]["sha256"]:
            return CHECKSUM
    except FileNotFoundError:
        return MISSING
    except OSError:
        return UNREADABLE
    return ""


def problems(build: Path, files: Files) -> list[tuple[str, str]]:
    """Every damaged file of a build, with what is wrong with it; [] when all are as recorded."""
    return [(name, found) for name in files if (found := problem(build, name, files))]


def corrupt(build: Path, name: str, what: str) -> IndexCorruptError:
    return IndexCorruptError(f"{name} of the index at {build} is damaged ({what}): rebuild it with `qa index build`.",
                             file=name)


def verify(build: Path, files: Files, *names: str) -> None:
    """Raise IndexCorruptError for the first of `names` (files, or folders of files) that is damaged."""
    for name in _matching(files, names):
        if found := problem(build, name, files):
            raise corrupt(build, name, found)


def snapshot(build: Path, files: Files) -> tuple:
    """Every file's identity (size, times, inode) now: if it differs later, a file was rewritten."""
    def identity(name: str) -> tuple[int, ...] | None:
        try:
            return file_identity(build / name)
        except OSError:
            return None

    return tuple(identity(name) for name in sorted(files))


@contextlib.contextmanager
def checking(build: Path, files: Files, order: Iterable[str]) -> Iterator[Callable[[str], None]]:
    """Hash every file of a build in a background thread, in `order` (files or folders; the others after),
    missing and resized ones refused at once. Yields `ready(name)`: waits until `name` is checked, raises
    IndexCorruptError if damaged. The block ends only once every file is checked."""
    names = _matching(files, [*order, *files])
    for name in names:
        if found := problem(build, name, files, hash_it=False):
            raise corrupt(build, name, found)
    pool = ThreadPoolExecutor(1, thread_name_prefix="qa-index-check")
    futures = {name: pool.submit(problem, build, name, files) for name in names}

    def ready(*wanted: str) -> None:
        for name in _matching(files, wanted):
            if found := futures[name].result():
                raise corrupt(build, name, found)

    try:
        yield ready
        ready(*names)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _matching(files: Files, wanted: Iterable[str]) -> list[str]:
    """The recorded files each of `wanted` names (itself, or the files of that folder), in that order, once."""
    out: dict[str, None] = {}
    for want in wanted:
        for name in files:
            if name == want or name.startswith(want + "/"):
                out.setdefault(name)
    return list(out)
