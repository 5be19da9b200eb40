"""A build's files checked against the size and sha256 its manifest records.

The writer records every file of a build (`record`). The loader checks each file before it parses
it, in a background thread that hashes the next files while the loader parses the previous ones, and
returns only once every file is checked (`checking`); status and the next build check them all
(`problems`). A file's hash is computed once per process per version of the file (path, size,
times, inode: `qa.files.file_sha256_cached`), so loading again, status and the app's /status cost a
`stat` per file once it is verified. Sizes are compared first: a truncated, emptied or deleted file
is refused at once, before any hashing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qa.errors import IndexCorruptError
from qa.files import file_identity, file_sha256, file_sha256_cached

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
    """"" when the file `name` of `build` is the one recorded, else what is wrong with it.
    `hash_it=False`: compare sizes only (a stat)."""
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
    """The error for a damaged file of a build: it names the file and the rebuild command."""
    return IndexCorruptError(f"{name} of the index at {build} is damaged ({what}): rebuild it with `qa index build`.",
                             file=name)


def verify(build: Path, files: Files, *names: str) -> None:
    """Raise IndexCorruptError for the first of `names` (files, or folders of files) that is damaged."""
    for name in _matching(files, names):
        if found := problem(build, name, files):
            raise corrupt(build, name, found)


def snapshot(build: Path, files: Files) -> tuple:
    """Every file's identity (size, times, inode) now: if it differs later, a file was rewritten."""
    identities = []
    for name in sorted(files):
        try:
            identities.append(file_identity(build / name))
        except OSError:
            identities.append(None)
    return tuple(identities)


@contextlib.contextmanager
def checking(build: Path, files: Files, order: Iterable[str]) -> Iterator[Callable[[str], None]]:
    """Check every file of a build, hashing them one by one in a background thread in `order` (files
    or folders; the others after them). Yields `ready(name)`, which waits until `name` is checked and
    raises IndexCorruptError if it is damaged; the block ends only once every file is checked.
    Missing and resized files are refused at once, before any hashing."""
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
