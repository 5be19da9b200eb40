"""Export a sentence-transformers model to ONNX once, into a cache folder, and check the export.

The exported graph holds the model's whole pipeline (transformer, mean pooling over the attention
mask, L2 normalisation). It lives in `cache_root()/onnx/<model dir name>-<hash of its path>/`, never
in the (checksummed) model directory: `model.onnx` (float32), `model-q8.onnx` (8-bit weights, made
and checked by qa.onnx_quantize: what questions use by default), and `export.json`,
which records the sha256 of the model's weights, so a changed model is exported again. Files are
written atomically (temporary file + os.replace) under a file lock. Every export is checked against
torch before it is kept. `qa.query_encoder` runs it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EXPORT_VERSION = "1"  # bump when the exported graph changes: every cached export is redone
RECORD = "export.json"
FP32_FILE = "model.onnx"
Q8_FILE = "model-q8.onnx"
LEGACY_INT8_FILE = "model-int8.onnx"
OPSET = 17
DEFAULT_MAX_LENGTH = 512
EXPORT_MIN_COSINE = 0.9999  # an export whose vectors stray further from torch's is refused
WEIGHT_SUFFIXES = (".safetensors", ".bin")
CONVERSION_RECORD = "qa-conversion.json"  # written by qa.convert, whose model.safetensors hash it holds

# Texts checked at export time: torch and ONNX must tokenise them identically and agree on the vectors.
PROBES = (
    "Quel groupe armé est à l'origine des attaques ?",
    "Qu’est-ce qui manque entre les pays voisins du Sahel ?",
    "Œuvre naïve — «guillemets» l’apostrophe, 3 000 km² à 45 °C",
    "",
    "Les forces armées maliennes ont indiqué que les assaillants ont ciblé sept localités. " * 40,  # > 512 tokens
)


class QueryEncoderUnavailable(Exception):
    """The ONNX query encoder cannot be used (onnxruntime missing, export failed, unsupported model)."""


def onnx_cache_dir(model_dir: Path | str) -> Path:
    """Where the exports of `model_dir` live: a folder of qa.bundled.cache_root(), never the model directory."""
    from qa.bundled import cache_root

    model_dir = Path(model_dir).expanduser().resolve()
    tag = hashlib.sha256(str(model_dir).encode("utf-8")).hexdigest()[:10]
    return cache_root() / "onnx" / f"{model_dir.name}-{tag}"


def ensure_onnx(model_dir: Path | str, *, quantized: bool = False, force: bool = False) -> Path:
    """Path of the cached ONNX model of `model_dir`, exporting (and quantising) it first if needed.

    force: make the requested file again (the float32 export, or only the 8-bit file).
    Raises QueryEncoderUnavailable; qa.onnx_quantize.QuantizationFailed when only the 8-bit file
    cannot be had (QuantizationRefused, remembered in the record, when its vectors strayed).
    """
    model_dir = Path(model_dir).expanduser().resolve()
    if not (model_dir / "config.json").is_file():
        raise QueryEncoderUnavailable(f"{model_dir} is not a local transformers model directory (no config.json).")
    source_sha = source_sha256(model_dir)
    folder = onnx_cache_dir(model_dir)
    if not force and _usable(_read_record(folder), source_sha, quantized, folder):
        return folder / (Q8_FILE if quantized else FP32_FILE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _export_locked(model_dir, folder, source_sha, quantized=quantized, force=force)
    except OSError as exc:  # a read-only or full cache
        raise QueryEncoderUnavailable(f"Cannot write the ONNX export into {folder}: {exc}") from exc


def _usable(record: dict[str, Any] | None, source_sha: str, quantized: bool, folder: Path) -> bool:
    """True when the requested file is in the cache for these weights (8-bit: and for these settings)."""
    if not quantized:
        return _valid_file(record, source_sha, FP32_FILE, folder)
    if record is None or record.get("source_sha256") != source_sha:
        return False
    from qa.onnx_quantize import recorded_usable

    return recorded_usable(record) and _valid_file(record, source_sha, Q8_FILE, folder)  # a refusal raises first


def _export_locked(model_dir: Path, folder: Path, source_sha: str, *, quantized: bool, force: bool) -> Path:
    """ensure_onnx's slow path, under the folder's file lock."""
    with _file_lock(folder / ".lock"):
        record = _read_record(folder)  # another process may have exported while we waited
        if (force and not quantized) or not _valid_file(record, source_sha, FP32_FILE, folder):
            if record is not None:
                logger.info("The ONNX export in %s is stale or unwanted; exporting %s again.", folder, model_dir)
            logger.info("Exporting %s to ONNX in %s (once; about 10 s).", model_dir, folder)
            info = _export_into(model_dir, folder / FP32_FILE)
            record = {  # a fresh record: nothing said about an earlier export survives
                "export_version": EXPORT_VERSION,
                "source": str(model_dir),
                "source_sha256": source_sha,
                **info,
                "files": {FP32_FILE: (folder / FP32_FILE).stat().st_size},
            }
            _write_record(folder, record)
        (folder / LEGACY_INT8_FILE).unlink(missing_ok=True)  # dynamic int8, written by earlier versions
        if quantized and (force or not _usable(record, source_sha, True, folder)):
            from qa.onnx_quantize import quantize_into_record

            quantize_into_record(model_dir, folder, record)
    return folder / (Q8_FILE if quantized else FP32_FILE)


def export_onnx(model_dir: Path | str, out_path: Path | str) -> None:
    """Export the sentence-transformers model at `model_dir` to one ONNX file, checked against torch.

    Inputs input_ids and attention_mask (int64, dynamic batch and sequence axes); output
    sentence_embedding (float32, batch x dim): mean pooling and L2 normalisation are in the graph.
    Written atomically. Raises QueryEncoderUnavailable.
    """
    _export_into(Path(model_dir).expanduser().resolve(), Path(out_path))


def source_sha256(model_dir: Path) -> str:
    """sha256 of the model's weights: from qa.convert's record for the bundled model, else hashed (once per process)."""
    record = model_dir / CONVERSION_RECORD
    if record.is_file():  # the bundled model: hashed at conversion and verified by qa.bundled
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return str(json.loads(record.read_text(encoding="utf-8"))["files"]["model.safetensors"])
    files = sorted(
        p for p in model_dir.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise QueryEncoderUnavailable(f"No weight file (*.safetensors, *.bin) found in {model_dir}.")
    lines = "".join(f"{p.relative_to(model_dir).as_posix()} {_file_sha256_cached(p)}\n" for p in files)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _export_into(model_dir: Path, out_path: Path) -> dict[str, Any]:
    """Export, check against torch, install atomically; returns what the record keeps (max_seq_length, ...)."""
    try:
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise QueryEncoderUnavailable(f"Exporting to ONNX needs torch and sentence-transformers: {exc}") from exc
    try:
        import onnx  # noqa: F401 - torch.onnx.export needs it
    except ImportError as exc:
        raise QueryEncoderUnavailable("Exporting to ONNX needs the onnx package (`pip install onnx`).") from exc
    try:
        model = SentenceTransformer(
            str(model_dir), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
        )
    except Exception as exc:  # noqa: BLE001
        raise QueryEncoderUnavailable(f"Cannot load {model_dir} for the ONNX export: {exc}") from exc
    module = _pooled_module(model, torch)
    max_length = int(model.max_seq_length or DEFAULT_MAX_LENGTH)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_sibling(out_path) as tmp:
        dummy_ids = torch.tensor([[0, 5, 6, 7, 2], [0, 5, 6, 2, 1]], dtype=torch.int64)  # padded: traces the mask path
        dummy_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.int64)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # TracerWarnings and the legacy-exporter notice
                torch.onnx.export(
                    module,
                    (dummy_ids, dummy_mask),
                    str(tmp),
                    input_names=["input_ids", "attention_mask"],
                    output_names=["sentence_embedding"],
                    dynamic_axes={
                        "input_ids": {0: "batch", 1: "sequence"},
                        "attention_mask": {0: "batch", 1: "sequence"},
                        "sentence_embedding": {0: "batch"},
                    },
                    opset_version=OPSET,
                    do_constant_folding=True,
                    dynamo=False,  # the TorchScript exporter: needs onnx only, not onnxscript
                )
        except Exception as exc:  # noqa: BLE001 - any exporter failure means "no ONNX model"
            raise QueryEncoderUnavailable(f"Exporting {model_dir} to ONNX failed: {exc}") from exc
        worst = _check_export(tmp, model, model_dir, max_length, np)
        os.replace(tmp, out_path)
    logger.info("Exported %s to %s (min cosine to torch %.6f).", model_dir, out_path, worst)
    return {
        "max_seq_length": max_length,
        "opset": OPSET,
        "torch": torch.__version__,
        "min_cosine_to_torch": round(worst, 7),
    }


def _pooled_module(model: Any, torch: Any) -> Any:
    """transformer -> mean pooling -> L2 normalisation as one nn.Module; other pipelines are refused."""
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(model)
    kinds = [type(m).__name__ for m in modules]
    if len(modules) not in (2, 3) or not isinstance(modules[0], Transformer) or not isinstance(modules[1], Pooling):
        raise QueryEncoderUnavailable(f"Unsupported sentence-transformers pipeline for ONNX: {kinds}.")
    if len(modules) == 3 and not isinstance(modules[2], Normalize):
        raise QueryEncoderUnavailable(f"Unsupported sentence-transformers pipeline for ONNX: {kinds}.")
    pooling = modules[1]
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None:  # older sentence-transformers: boolean flags
        mode = "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else "other"
    if mode != "mean" or not getattr(pooling, "include_prompt", True):
        raise QueryEncoderUnavailable(f"Only mean pooling over all tokens is exported (pooling {mode!r}).")
    transformer = modules[0].auto_model.eval()

    class MeanPooledNormalized(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            tokens = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            # Normalisation is applied even without a Normalize module: embed_query asks for it.
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return MeanPooledNormalized(transformer).eval()


def _check_export(path: Path, model: Any, model_dir: Path, max_length: int, np: Any) -> float:
    """Tokenise the probes both ways and compare vectors; returns the worst cosine, raises if too low."""
    from qa.query_encoder import QueryEncoder, _session, _tokenizer, query_prompt

    try:
        session = _session(path)
    except ImportError as exc:
        raise QueryEncoderUnavailable("onnxruntime is not installed (`pip install onnxruntime`).") from exc
    except Exception as exc:  # noqa: BLE001
        raise QueryEncoderUnavailable(f"onnxruntime cannot load the fresh export of {model_dir}: {exc}") from exc
    tokenizer = _tokenizer(model_dir, max_length)
    prompt = query_prompt(model_dir)
    texts = [prompt + t for t in PROBES]
    theirs = model.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    ours = [e.ids for e in tokenizer.encode_batch(texts)]
    for text, a, b in zip(texts, theirs, ours, strict=True):
        if list(a) != b[: len(a)] or any(i != tokenizer.padding["pad_id"] for i in b[len(a) :]):
            raise QueryEncoderUnavailable(
                f"tokenizer.json of {model_dir} does not tokenise like sentence-transformers (text {text[:40]!r})."
            )
    reference = model.encode(  # prompt="": the prompt is already in the texts, and no default prompt applies
        texts, prompt="", convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    encoder = QueryEncoder(session, tokenizer, "", path=path, quantized=False)
    vectors = np.concatenate([encoder.encode_batch(texts), encoder.encode_batch(texts[:1])])  # batched and alone
    cosines = np.sum(vectors * np.concatenate([reference, reference[:1]]), axis=1)
    worst = float(cosines.min())
    if not worst >= EXPORT_MIN_COSINE:
        raise QueryEncoderUnavailable(f"The ONNX export of {model_dir} strays from torch (cosine {worst:.6f}).")
    return worst


# ------------------------------------------------------------------------------ the cache record and files


def _read_record(folder: Path) -> dict[str, Any] | None:
    """export.json of the folder when it belongs to this EXPORT_VERSION, else None."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("export_version") != EXPORT_VERSION:
        return None
    if not isinstance(record.get("files"), dict):
        return None
    return record


def _valid_file(record: dict[str, Any] | None, source_sha: str, name: str, folder: Path) -> bool:
    """True when the record is for these weights and lists `name` with the size it has on disk."""
    if record is None or record.get("source_sha256") != source_sha:
        return False
    try:
        return record["files"].get(name) == (folder / name).stat().st_size
    except OSError:
        return False


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    with _temporary_sibling(folder / RECORD) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, folder / RECORD)


@contextlib.contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    """A fresh temporary path next to `path` (same filesystem, so os.replace is atomic), removed if left over."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock so concurrent first runs export once (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic replaces alone keep every file whole
        yield
        return
    with open(path, "a+b") as handle:  # closing the file releases the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Hex sha256 of a file, once per process per version of it (size and mtime in the key)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _file_sha256_cached(path: Path) -> str:
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)
