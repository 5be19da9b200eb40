"""The question encoder's files in the cache, made once: the ONNX export, its 8-bit weights, the tokenizer's.

`ensure_onnx` makes what is missing or damaged, under the cache folder's lock: the float32 export
(`qa.model.onnx_trace`, checked against torch), the 8-bit file made from it (`qa.model.onnx_quantize`,
checked against the export, after which the export is deleted: it stays only when 8-bit weights are
refused or fail), and the tokenizer's vocabulary files (`qa.model.onnx_tokens`). The folder and its
record are `qa.model.onnx_store`'s; files are written atomically (temporary file + os.replace).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qa.errors import ModelUnavailableError
from qa.files import locked
from qa.model.bundled import VERIFIED_FILES, verify
from qa.model.identity import weights_checksum
from qa.model.onnx_quantize import quantize_into_record, recorded_usable
from qa.model.onnx_store import (
    EXPORT_VERSION,
    FP32_FILE,
    LEGACY_INT8_FILE,
    Q8_FILE,
    QueryEncoderUnavailable,
    file_entry,
    onnx_cache_dir,
    read_record,
    release_memory,
    valid_file,
    write_record,
)
from qa.model.onnx_tokens import tokens_ready, write_tokens
from qa.model.onnx_trace import export_into
from qa.progress import stage

logger = logging.getLogger(__name__)


def ensure_onnx(model_dir: Path | str, *, quantized: bool = False, force: bool = False) -> Path:
    """Path of the cached ONNX model of `model_dir`, exporting (and quantising) it first if needed.

    force: make the requested file again (the float32 export, or only the 8-bit file).
    Raises QueryEncoderUnavailable; qa.model.onnx_quantize.QuantizationFailed when only the 8-bit file
    cannot be had (QuantizationRefused, remembered in the record, when its vectors strayed).
    """
    model_dir = Path(model_dir).expanduser().resolve()
    if not (model_dir / "config.json").is_file():
        raise QueryEncoderUnavailable(f"{model_dir} is not a local transformers model directory (no config.json).")
    try:
        source_sha = weights_checksum(model_dir)
    except ModelUnavailableError as exc:
        raise QueryEncoderUnavailable(str(exc)) from exc
    folder = onnx_cache_dir(model_dir)
    record = read_record(folder)
    usable = not force and _usable(record, source_sha, quantized, folder)
    if usable and tokens_ready(record, model_dir, folder):
        return folder / (Q8_FILE if quantized else FP32_FILE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _export_locked(model_dir, folder, source_sha, quantized=quantized, force=force)
    except OSError as exc:  # a read-only or full cache
        if usable:  # only the vocabulary files were to be written again: tokenizers reads the questions
            logger.warning("Cannot write the question tokenizer's files into %s (%s); using tokenizers.", folder, exc)
            return folder / (Q8_FILE if quantized else FP32_FILE)
        raise QueryEncoderUnavailable(f"Cannot write the ONNX export into {folder}: {exc}") from exc


def _usable(record: dict[str, Any] | None, source_sha: str, quantized: bool, folder: Path, *,
            quiet: bool = False) -> bool:
    """True when the requested file is in the cache for these weights (8-bit: and for these settings),
    as recorded (its size and sha256)."""
    if not quantized:
        return valid_file(record, source_sha, FP32_FILE, folder, quiet=quiet)
    if record is None or record.get("source_sha256") != source_sha:
        return False
    # A refusal raises first.
    return recorded_usable(record) and valid_file(record, source_sha, Q8_FILE, folder, quiet=quiet)


def _export_locked(model_dir: Path, folder: Path, source_sha: str, *, quantized: bool, force: bool) -> Path:
    """ensure_onnx's slow path, under the folder's file lock."""
    with locked(folder / ".lock"):  # concurrent first runs export once
        record = read_record(folder)  # another process may have exported while we waited
        make_q8 = quantized and (force or not _usable(record, source_sha, True, folder, quiet=True))  # or refused
        needs_fp32 = make_q8 or not quantized  # the 8-bit file is made from the float32 export
        if (force and not quantized) or (needs_fp32 and not valid_file(record, source_sha, FP32_FILE, folder,
                                                                       quiet=True)):
            if record is not None:
                logger.info("The ONNX export in %s is stale or unwanted; exporting %s again.", folder, model_dir)
            logger.info("Exporting %s to ONNX in %s (once; about 20 s).", model_dir, folder)
            stage("Encodeur de questions : export ONNX du modèle (une seule fois, environ 20 s)…")
            verify(model_dir, *VERIFIED_FILES)  # torch reads the weights and tokenizer.json
            info = export_into(model_dir, folder / FP32_FILE)
            release_memory()  # the check's session and torch's leftovers, before the quantiser's peak
            fresh = {  # a fresh record: nothing said about an export of other weights survives
                "export_version": EXPORT_VERSION,
                "source": str(model_dir),
                "source_sha256": source_sha,
                **info,
                "files": {FP32_FILE: file_entry(folder, FP32_FILE)},
            }
            if record is not None and record.get("source_sha256") == source_sha and not force:
                # The float32 export made again for the same weights (it is deleted once the 8-bit file
                # passes): what the record says of the 8-bit file and the vocabulary stays true.
                fresh = {**record, **fresh, "files": {**record.get("files", {}), **fresh["files"]}}
            record = fresh
            write_record(folder, record)
        (folder / LEGACY_INT8_FILE).unlink(missing_ok=True)  # dynamic int8, written by earlier versions
        if make_q8:
            stage("Encodeur de questions : poids 8 bits, vérifiés contre l'export (une seule fois, environ 15 s)…")
            quantize_into_record(model_dir, folder, record)
            # The 8-bit file passed its check against the float32 export: that export is not needed any more
            # (made again if the 8-bit file ever has to be). It stays only when 8-bit is refused or fails.
            record["files"].pop(FP32_FILE, None)
            write_record(folder, record)
            (folder / FP32_FILE).unlink(missing_ok=True)
        if record is not None and not tokens_ready(record, model_dir, folder):
            stage("Encodeur de questions : vocabulaire pour découper les questions (une fois, quelques secondes)…")
            verify(model_dir, "tokenizer.json")
            write_tokens(model_dir, folder, record)
    return folder / (Q8_FILE if quantized else FP32_FILE)
