"""Export a sentence-transformers model to ONNX once, into a cache folder, and check the export.

The exported graph holds the model's whole pipeline (transformer, mean pooling over the attention
mask, L2 normalisation). It lives in the cache folder `qa.model.onnx_store` describes, never in the
(checksummed) model directory, next to the 8-bit file `qa.model.onnx_quantize` makes from it (what
questions use by default). Files are written atomically (temporary file + os.replace) under the
folder's lock. Every export is checked against torch before it is kept. `qa.model.query_encoder`
runs it. torch, sentence-transformers and numpy are imported inside the functions, for lazy loading.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from qa.errors import ModelUnavailableError
from qa.files import locked, temporary_sibling
from qa.model.identity import weights_checksum
from qa.model.onnx_quantize import quantize_into_record, recorded_usable
from qa.model.onnx_store import (
    DEFAULT_MAX_LENGTH,
    EXPORT_VERSION,
    FP32_FILE,
    LEGACY_INT8_FILE,
    PROBES,
    Q8_FILE,
    QueryEncoder,
    QueryEncoderUnavailable,
    file_entry,
    load_tokenizer,
    onnx_cache_dir,
    open_session,
    query_prompt,
    read_record,
    valid_file,
    write_record,
)

logger = logging.getLogger(__name__)

OPSET = 17
EXPORT_MIN_COSINE = 0.9999  # an export whose vectors stray further from torch's is refused

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
    if not force and _usable(read_record(folder), source_sha, quantized, folder):
        return folder / (Q8_FILE if quantized else FP32_FILE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _export_locked(model_dir, folder, source_sha, quantized=quantized, force=force)
    except OSError as exc:  # a read-only or full cache
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
        if (force and not quantized) or not valid_file(record, source_sha, FP32_FILE, folder, quiet=True):
            if record is not None:
                logger.info("The ONNX export in %s is stale or unwanted; exporting %s again.", folder, model_dir)
            logger.info("Exporting %s to ONNX in %s (once; about 10 s).", model_dir, folder)
            info = _export_into(model_dir, folder / FP32_FILE)
            record = {  # a fresh record: nothing said about an earlier export survives
                "export_version": EXPORT_VERSION,
                "source": str(model_dir),
                "source_sha256": source_sha,
                **info,
                "files": {FP32_FILE: file_entry(folder, FP32_FILE)},
            }
            write_record(folder, record)
        (folder / LEGACY_INT8_FILE).unlink(missing_ok=True)  # dynamic int8, written by earlier versions
        if quantized and (force or not _usable(record, source_sha, True, folder, quiet=True)):
            quantize_into_record(model_dir, folder, record)
    return folder / (Q8_FILE if quantized else FP32_FILE)


def export_onnx(model_dir: Path | str, out_path: Path | str) -> None:
    """Export the sentence-transformers model at `model_dir` to one ONNX file, checked against torch.

    Inputs input_ids and attention_mask (int64, dynamic batch and sequence axes); output
    sentence_embedding (float32, batch x dim): mean pooling and L2 normalisation are in the graph.
    Written atomically. Raises QueryEncoderUnavailable.
    """
    _export_into(Path(model_dir).expanduser().resolve(), Path(out_path))


def _export_into(model_dir: Path, out_path: Path) -> dict[str, Any]:
    """Export, check against torch, install atomically; returns what the record keeps (max_seq_length, ...)."""
    try:  # lazy: only a first run exports
        import numpy as np  # lazy: a heavy library, loaded on first use
        import torch  # lazy: a heavy library, loaded on first use
        from sentence_transformers import SentenceTransformer  # lazy: a heavy library, loaded on first use
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
    with temporary_sibling(out_path) as tmp:
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
    from sentence_transformers.models import Normalize, Pooling, Transformer  # lazy: only a first run exports

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
    try:
        session = open_session(path)
    except ImportError as exc:
        raise QueryEncoderUnavailable("onnxruntime is not installed (`pip install onnxruntime`).") from exc
    except Exception as exc:  # noqa: BLE001
        raise QueryEncoderUnavailable(f"onnxruntime cannot load the fresh export of {model_dir}: {exc}") from exc
    tokenizer = load_tokenizer(model_dir, max_length)
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
