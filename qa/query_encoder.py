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
that prevents the fast path raises `QueryEncoderUnavailable`; callers fall back to torch.
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
