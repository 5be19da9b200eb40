"""A fast question encoder: the sentence-transformers model exported once to ONNX, run by onnxruntime.

The exported graph holds the whole sentence-transformers pipeline of the model (transformer, mean
pooling over the attention mask, L2 normalisation), so `QueryEncoder.encode` returns the same vector
as `SentenceTransformer.encode_query` (cosine >= 0.9999, checked on every export) in about a third of
the time on a small CPU, without importing torch. By default the weights are 8-bit
(`qa.onnx_quantize`: cosine >= 0.999 to float32, checked when made, and a quarter faster again).

The export lives in a cache folder, never inside the (checksummed) model directory:
`cache_root()/onnx/<model dir name>-<hash of its path>/` holds `model.onnx` (float32),
`model-q8.onnx` (8-bit weights) and `export.json`, which records the sha256 of the model's weights:
a changed model is exported again. Files are written atomically (temporary file + os.replace) under a file lock.

Importing this module is instant: torch, onnx and onnxruntime are imported only when needed. Anything
that prevents the fast path raises `QueryEncoderUnavailable`. `encode_question`, what search calls,
chooses once per model: 8-bit, else float32, else torch (`qa.model.embed_query`), with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime
    from tokenizers import Tokenizer

from qa.onnx_export import (  # noqa: F401 - FP32_FILE ... source_sha256 are part of this module's face
    DEFAULT_MAX_LENGTH,
    FP32_FILE,
    Q8_FILE,
    RECORD,
    QueryEncoderUnavailable,
    _read_record,
    ensure_onnx,
    onnx_cache_dir,
    source_sha256,
)

logger = logging.getLogger(__name__)

DEFAULT_QUANTIZED = True  # 8-bit weights: PIAF retrieve p50 9.3 vs 11.4 ms, same R@1/R@5/MRR (README, Performance)
# Spinning intra-op threads save ~1.7 ms per question on an idle 2-core CPU (4.6 vs 6.3 ms with 8-bit
# weights, benchmarks/query_encoder.py) but double the time when another process holds a core, and
# burn CPU the retrieval step needs next.
ALLOW_SPINNING = False
ST_CONFIG = "config_sentence_transformers.json"


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
        from qa.model import resolve_model

        model_id, location = resolve_model(name)
        with _choice_lock:
            if model_id not in _question_encoders:
                _question_encoders[model_id] = _onnx_encoder(model_id, location)
            _question_encoder_ids[name] = model_id
    encoder = _question_encoders[model_id]
    if encoder is None:
        from qa.model import embed_query, load_model

        return embed_query(load_model(name), text)
    return encoder.encode(text)  # type: ignore[attr-defined]


def _onnx_encoder(model_id: str, location: str) -> object | None:
    """The ONNX query encoder of a model (exported once into the cache), or None: fall back to torch."""
    from qa import model as models
    from qa.errors import ModelUnavailableError

    choice = os.environ.get("QA_QUERY_ENCODER", "").strip().lower()
    if choice not in QUERY_ENCODERS:
        logger.warning("QA_QUERY_ENCODER=%r is not one of %s; using the default.", choice, ", ".join(QUERY_ENCODERS))
        choice = ""
    if choice == "torch":
        return None
    try:
        directory = Path(location) if Path(location).is_dir() else Path(models._hub_snapshot(location))
        prompt = query_prompt(directory) or (models.E5_PROMPTS["query"] if models._is_e5(model_id) else "")
    except (QueryEncoderUnavailable, ModelUnavailableError) as exc:
        logger.warning("Fast ONNX question encoder unavailable (%s); using torch.", exc)
        return None
    from qa.onnx_quantize import QuantizationFailed, QuantizationRefused

    for quantized in (True, False) if choice != "fp32" else (False,):
        try:
            return load_query_encoder(directory, prompt=prompt, quantized=quantized)
        except QuantizationFailed as exc:  # the float32 export is there: use it
            level = logging.INFO if isinstance(exc, QuantizationRefused) else logging.WARNING  # known, recorded
            logger.log(level, "8-bit ONNX question encoder unavailable (%s); using ONNX float32.", exc)
        except QueryEncoderUnavailable as exc:  # no export at all: trying float32 again would redo it
            logger.warning("Fast ONNX question encoder unavailable (%s); using torch.", exc)
            return None
    return None


class QueryEncoder:
    """Encodes questions with an onnxruntime session; thread-safe (the session and tokenizer are never mutated)."""

    def __init__(
        self, session: onnxruntime.InferenceSession, tokenizer: Tokenizer, prompt: str, *, path: Path, quantized: bool
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.path = path
        self.quantized = quantized
        self.dimension = int(session.get_outputs()[0].shape[-1])

    def __repr__(self) -> str:
        return f"QueryEncoder({str(self.path)!r}, prompt={self.prompt!r}, quantized={self.quantized})"

    def encode(self, text: str) -> np.ndarray:
        """Float32 (dim,) L2-normalised question vector, the query prompt applied (as `encode_query`)."""
        import numpy as np

        if not isinstance(text, str):
            raise TypeError(f"Expected str, got {type(text).__name__}.")
        encoding = self.tokenizer.encode(self.prompt + text)  # not encode_batch: no thread pool for one text
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        (vectors,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        return vectors[0]

    def encode_batch(self, texts: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
        """Float32 (n, dim) L2-normalised question vectors, in the order of `texts`."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("encode_batch takes a list of texts; use encode() for one text.")
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"Expected str, got {type(text).__name__}.")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)  # less padding per batch
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([self.prompt + texts[i] for i in chunk])  # padded to the longest
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            (vectors,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[chunk] = vectors
        return out


def load_query_encoder(
    model_dir: Path | str, *, quantized: bool | None = None, prompt: str | None = None
) -> QueryEncoder:
    """The ONNX query encoder of a sentence-transformers directory, exported once and loaded once per process.

    quantized: use 8-bit weights (None means DEFAULT_QUANTIZED, i.e. yes) or float32.
    prompt: the query prompt; None reads prompts["query"] from the model's
    config_sentence_transformers.json ("" when it has none). Pass it when the torch model's prompts
    were set in code (qa.model adds the e5 prompts when a config lacks them).
    Raises QueryEncoderUnavailable when the fast path cannot be used.
    """
    model_dir = Path(model_dir).expanduser().resolve()
    quantized = DEFAULT_QUANTIZED if quantized is None else bool(quantized)
    key = (str(model_dir), quantized, prompt)
    with _lock:
        if key not in _encoders:
            _encoders[key] = _load(model_dir, quantized, prompt)
        return _encoders[key]


def query_prompt(model_dir: Path) -> str:
    """prompts["query"] of the model's config_sentence_transformers.json, or "" (what encode_query would use)."""
    path = Path(model_dir) / ST_CONFIG
    if not path.is_file():
        return ""
    try:
        prompts = json.loads(path.read_text(encoding="utf-8")).get("prompts") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise QueryEncoderUnavailable(f"Cannot read the prompts of {path}: {exc}") from exc
    return prompts.get("query") or ""


def _load(model_dir: Path, quantized: bool, prompt: str | None) -> QueryEncoder:
    """Export if needed, then build the session and the tokenizer; one re-export if the cached file is unreadable."""
    try:
        import onnxruntime  # noqa: F401 - fail early with a clear message
    except ImportError as exc:
        raise QueryEncoderUnavailable(
            "onnxruntime is not installed (`pip install onnxruntime`); using torch for questions."
        ) from exc
    if prompt is None:
        prompt = query_prompt(model_dir)
    path = ensure_onnx(model_dir, quantized=quantized)
    try:
        session = _session(path)
    except Exception as exc:  # noqa: BLE001 - a damaged cache file: export once more
        logger.warning("Cannot load the cached ONNX model %s (%s); exporting again.", path, exc)
        path = ensure_onnx(model_dir, quantized=quantized, force=True)
        try:
            session = _session(path)
        except Exception as exc2:  # noqa: BLE001
            raise QueryEncoderUnavailable(f"onnxruntime cannot load {path}: {exc2}") from exc2
    record = _read_record(path.parent) or {}
    tokenizer = _tokenizer(model_dir, int(record.get("max_seq_length") or DEFAULT_MAX_LENGTH))
    logger.info("Questions are encoded with ONNX Runtime (%s).", path.name)
    return QueryEncoder(session, tokenizer, prompt, path=path, quantized=quantized)


def _session(path: Path) -> onnxruntime.InferenceSession:
    """A CPU session: at most 2 intra-op threads (not spinning), sequential, every graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    if not ALLOW_SPINNING:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _tokenizer(model_dir: Path, max_length: int) -> Tokenizer:
    """The model's tokenizer.json, truncating to max_length and padding batches to their longest text."""
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise QueryEncoderUnavailable(f"{model_dir} has no tokenizer.json (a fast tokenizer is needed).")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception on a bad file
        raise QueryEncoderUnavailable(f"Cannot read {path}: {exc}") from exc
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=_pad_id(model_dir, tokenizer))
    return tokenizer


def _pad_id(model_dir: Path, tokenizer: Tokenizer) -> int:
    """The padding id (masked out, but position ids of some models depend on it)."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    if isinstance(config.get("pad_token_id"), int):
        return config["pad_token_id"]
    for token in ("<pad>", "[PAD]"):
        if (found := tokenizer.token_to_id(token)) is not None:
            return found
    return 0
