"""A fast question encoder: the sentence-transformers model exported once to ONNX, run by onnxruntime.

The exported graph holds the whole sentence-transformers pipeline of the model (transformer, mean
pooling over the attention mask, L2 normalisation), so `QueryEncoder.encode` returns the same vector
as `SentenceTransformer.encode_query` (cosine >= 0.9999, checked on every export) in about a third of
the time on a small CPU, without importing torch. By default the weights are 8-bit
(`qa.model.onnx_quantize`: cosine >= 0.999 to float32, checked when made, and a quarter faster again),
and questions are tokenised by `qa.model.unigram` (tokenizers' ids, without its 1.2 s load). The files
live in the cache folder of `qa.model.onnx_store`, made once by `qa.model.onnx_export`.

Importing this module is instant: torch, onnx and onnxruntime are imported only when needed. Anything
that prevents the fast path raises `QueryEncoderUnavailable`. `encode_question`, what search calls,
chooses once per model: 8-bit, else float32, else torch (`qa.model.embedding.embed_query`), with a warning.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import ModelUnavailableError
from qa.model.embedding import embed_query
from qa.model.identity import E5_PROMPTS, is_e5
from qa.model.loading import load_model, model_directory, resolve_model
from qa.model.onnx_export import ensure_onnx
from qa.model.onnx_quantize import QuantizationFailed, QuantizationRefused
from qa.model.onnx_store import (
    DEFAULT_MAX_LENGTH,
    QueryEncoder,
    QueryEncoderUnavailable,
    open_session,
    query_prompt,
    read_record,
)
from qa.model.onnx_tokens import question_tokenizer

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_QUANTIZED = True  # 8-bit weights: PIAF retrieve p50 9.3 vs 11.4 ms, same R@1/R@5/MRR (docs/performance.md)

_lock = threading.Lock()  # one export and one session per model even when threads ask at once
_encoders: dict[tuple[str, bool, str | None], QueryEncoder] = {}


QUERY_ENCODERS = ("", "auto", "q8", "fp32", "torch")  # QA_QUERY_ENCODER values; "", auto and q8 mean the default
_question_encoders: dict[str, object] = {}  # model id -> QueryEncoder, or None when ONNX is not usable
_question_encoder_ids: dict[str | None, str] = {}  # name asked for -> model id, resolved once per process
_choice_lock = threading.Lock()  # one choice per model; apart from _lock, which loading the choice takes


def encode_question(name: str | None, text: str) -> np.ndarray:
    """A question's vector, through ONNX Runtime when it can (~3x faster on a small CPU), else torch.

    ONNX with 8-bit weights by default (cosine >= 0.999 to float32), else ONNX float32 (cosine >= 0.9999
    to torch), else torch; each fidelity is checked when the file is made. QA_QUERY_ENCODER=fp32 skips
    the 8-bit weights, QA_QUERY_ENCODER=torch skips ONNX.
    """
    model_id = _question_encoder_ids.get(name)
    if model_id is None:  # resolving looks for the bundled package and files: ~0.3 ms, once, not per question
        model_id, location = resolve_model(name)
        with _choice_lock:
            if model_id not in _question_encoders:
                _question_encoders[model_id] = _onnx_encoder(model_id, location)
            _question_encoder_ids[name] = model_id
    encoder = _question_encoders[model_id]
    if encoder is None:
        return embed_query(load_model(name), text)
    return encoder.encode(text)  # type: ignore[attr-defined]


def prepare_question_encoder(name: str | None) -> None:
    """Make the question encoder's files (the ONNX export, its 8-bit weights, the tokenizer's files) if they
    are missing, without loading them: a build calls it before it loads the document model, so that the
    export's peak of memory and the embedding's do not add up. A failure is logged, as on first use."""
    _onnx_encoder(*resolve_model(name), load=False)


def _onnx_encoder(model_id: str, location: str, *, load: bool = True) -> object | None:
    """The ONNX query encoder of a model (exported once into the cache), or None: fall back to torch.
    `load=False`: only make its files."""
    choice = os.environ.get("QA_QUERY_ENCODER", "").strip().lower()
    if choice not in QUERY_ENCODERS:
        logger.warning("QA_QUERY_ENCODER=%r is not one of %s; using the default.", choice, ", ".join(QUERY_ENCODERS))
        choice = ""
    if choice == "torch":
        return None
    try:
        directory = model_directory(location)
        prompt = query_prompt(directory) or (E5_PROMPTS["query"] if is_e5(model_id) else "")
    except (QueryEncoderUnavailable, ModelUnavailableError) as exc:
        logger.warning("Fast ONNX question encoder unavailable (%s); using torch.", exc)
        return None
    for quantized in (True, False) if choice != "fp32" else (False,):
        try:
            if not load:
                ensure_onnx(directory, quantized=quantized)
                return None
            return load_query_encoder(directory, prompt=prompt, quantized=quantized)
        except QuantizationFailed as exc:  # the float32 export is there: use it
            level = logging.INFO if isinstance(exc, QuantizationRefused) else logging.WARNING  # known, recorded
            logger.log(level, "8-bit ONNX question encoder unavailable (%s); using ONNX float32.", exc)
        except QueryEncoderUnavailable as exc:  # no export at all: trying float32 again would redo it
            logger.warning("Fast ONNX question encoder unavailable (%s); using torch.", exc)
            return None
    return None


def load_query_encoder(
    model_dir: Path | str, *, quantized: bool | None = None, prompt: str | None = None
) -> QueryEncoder:
    """The ONNX query encoder of a sentence-transformers directory, exported once and loaded once per process.

    quantized: use 8-bit weights (None means DEFAULT_QUANTIZED, i.e. yes) or float32.
    prompt: the query prompt; None reads prompts["query"] from the model's
    config_sentence_transformers.json ("" when it has none). Pass it when the torch model's prompts
    were set in code (qa.model.loading adds the e5 prompts when a config lacks them).
    Raises QueryEncoderUnavailable when the fast path cannot be used.
    """
    model_dir = Path(model_dir).expanduser().resolve()
    quantized = DEFAULT_QUANTIZED if quantized is None else bool(quantized)
    key = (str(model_dir), quantized, prompt)
    with _lock:
        if key not in _encoders:
            _encoders[key] = _load(model_dir, quantized, prompt)
        return _encoders[key]


def _load(model_dir: Path, quantized: bool, prompt: str | None) -> QueryEncoder:
    """Export if needed, then build the session and the tokenizer; one re-export if the cached file is unreadable."""
    try:
        import onnxruntime  # noqa: F401 - lazy, and fails early with a clear message
    except ImportError as exc:
        raise QueryEncoderUnavailable(
            "onnxruntime is not installed (`pip install onnxruntime`); using torch for questions."
        ) from exc
    if prompt is None:
        prompt = query_prompt(model_dir)
    path = ensure_onnx(model_dir, quantized=quantized)
    try:
        session = open_session(path)
    except Exception as exc:  # noqa: BLE001 - a damaged cache file: export once more
        logger.warning("Cannot load the cached ONNX model %s (%s); exporting again.", path, exc)
        path = ensure_onnx(model_dir, quantized=quantized, force=True)
        try:
            session = open_session(path)
        except Exception as exc2:  # noqa: BLE001
            raise QueryEncoderUnavailable(f"onnxruntime cannot load {path}: {exc2}") from exc2
    record = read_record(path.parent) or {}
    max_length = int(record.get("max_seq_length") or DEFAULT_MAX_LENGTH)
    tokenizer = question_tokenizer(model_dir, path.parent, record, max_length)
    logger.info("Questions are encoded with ONNX Runtime (%s).", path.name)
    return QueryEncoder(session, tokenizer, prompt, path=path, quantized=quantized)
