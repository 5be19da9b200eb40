"""The index folder on disk: builds written aside, then switched in with one atomic rename.

Layout of an index folder `index/`:
    CURRENT            name of the live build (replaced with `os.replace`, so readers see the
                       old build or the new one, never half of one)
    build-<stamp>/     a complete build: manifest.json, passages.jsonl, documents.jsonl, ... (the live
                       one and the one before it, which readers may still be opening)
    .tmp-<id>/         a build in progress; left over only if a build was killed, removed by the next
    .lock              held while building, so two builds never interleave
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from qa.errors import IndexNotFoundError

log = logging.getLogger(__name__)
CURRENT = "CURRENT"
FORMAT_VERSION = 2  # of the files in a build; another version must be rebuilt (2: vectors.npy, dense)


def checkpoint(stage: str) -> None:
    """Crash-test hook: when QA_TEST_PAUSE_AT names this stage of a build, touch the file
    QA_TEST_PAUSE_FILE and wait, so a test can SIGKILL the build exactly there. No-op otherwise."""
    if os.environ.get("QA_TEST_PAUSE_AT") == stage:
        Path(os.environ["QA_TEST_PAUSE_FILE"]).write_text(stage, encoding="utf-8")
        time.sleep(600)


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
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    _fsync_tree(tmp)
    os.rename(tmp, final)
    checkpoint("renamed")  # the new build is complete on disk but not yet live
    pointer = root / f".{CURRENT}.{uuid.uuid4().hex[:6]}"
    pointer.write_text(name + "\n", encoding="utf-8")
    _fsync_file(pointer)
    os.replace(pointer, root / CURRENT)
    _fsync_dir(root)
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


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            _fsync_file(Path(dirpath) / f)
        _fsync_dir(Path(dirpath))
