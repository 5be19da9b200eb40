"""Files on disk, one way each: the file hash, the lock, atomic replacement, JSON and JSONL. Every part
of qa that hashes a file (documents, freshness, the model's weights), locks a folder (index builds, the
model conversion, the ONNX export) or replaces a file whole goes through here."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed (a 2 GB file is hashed, never loaded)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_sha256_cached(path: Path) -> str:
    """`file_sha256`, computed once per process per version of the file: its path, size, times and
    inode (a file rewritten, replaced or touched is hashed again; ctime cannot be set back by hand)."""
    return _sha256_of_version(str(path), *file_identity(path))


def file_identity(path: Path) -> tuple[int, ...]:
    """What tells one version of a file from another without reading it: size, modification and
    status-change times, device and inode. Raises OSError."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino


@functools.lru_cache(maxsize=256)  # an index build has ~12 files; two builds, the model and its exports fit
def _sha256_of_version(path: str, *identity: int) -> str:
    return file_sha256(path)


def text_sha256(text: str) -> str:
    """Hex sha256 of a text's UTF-8 bytes (a cache folder's tag, a checksum of several checksums)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` for the block: concurrent builds, conversions and exports
    wait instead of interleaving. The lock goes with the process: one killed mid-way never leaves it held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


@contextlib.contextmanager
def temporary_sibling(path: Path) -> Iterator[Path]:
    """A fresh temporary path next to `path` (so `os.replace` onto `path` is atomic), removed at the end."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def replace_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: readers see the old file or the new one, never half."""
    with temporary_sibling(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        fsync_file(tmp)
        os.replace(tmp, path)


def write_json(path: Path, data: object) -> None:  # JSON and JSONL: UTF-8, non-ASCII letters as they are
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def fsync_file(path: Path) -> None:
    """Flush a file (or a folder's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root`, before a rename makes it live."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            fsync_file(Path(dirpath) / f)
        fsync_file(Path(dirpath))
