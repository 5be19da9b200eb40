"""The ONNX question encoder's cache folder and runtime: where exports live, their record, and the
session that runs them.

`cache_root()/onnx/<model dir name>-<hash of its path>/` holds `model-q8.onnx` (8-bit weights,
`qa.model.onnx_quantize`), the question tokenizer's `vocab-*.npy` (`qa.model.onnx_tokens`), and
`model.onnx` (float32, `qa.model.onnx_trace`) only while the 8-bit file is made from it, or when it
is the fallback; and `export.json`, which records the checksum of the model's weights, so a changed
model is exported again, and each file's size and sha256, checked once per process per version of
the file (path, size, times, inode), so a damaged or altered file is made again, with a warning,
before it is used. The writers and `qa.model.query_encoder` read the folder through this module. onnxruntime,
tokenizers and numpy are imported inside the functions, for lazy loading.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.files import file_sha256, file_sha256_cached, replace_text, text_sha256
from qa.model.identity import cache_root

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

EXPORT_VERSION = "1"  # bump when the exported graph changes: every cached export is redone
RECORD = "export.json"
FP32_FILE = "model.onnx"
Q8_FILE = "model-q8.onnx"
LEGACY_INT8_FILE = "model-int8.onnx"
DEFAULT_MAX_LENGTH = 512

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
    """Where the exports of `model_dir` live: a folder of the model cache, never the model directory."""
    model_dir = Path(model_dir).expanduser().resolve()
    tag = text_sha256(str(model_dir))[:10]
    return cache_root() / "onnx" / f"{model_dir.name}-{tag}"


def read_record(folder: Path) -> dict[str, Any] | None:
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


def file_entry(folder: Path, name: str) -> dict[str, Any]:
    """What the record keeps of a file it lists: its size and sha256."""
    path = folder / name
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def valid_file(record: dict[str, Any] | None, source_sha: str, name: str, folder: Path, *, quiet: bool = False) -> bool:
    """True when the record is for these weights and `name` on disk is the file it lists: same size,
    then same sha256 (hashed once per process per version of the file). A file that differs from its
    entry is damaged or altered: a warning says it is made again (unless `quiet`)."""
    if record is None or record.get("source_sha256") != source_sha:
        return False
    entry = record["files"].get(name)
    if not isinstance(entry, dict):  # not made, or listed by an earlier version with its size alone
        return False
    path = folder / name
    try:
        problem = ("size" if path.stat().st_size != entry.get("size")
                   else "checksum" if file_sha256_cached(path) != entry.get("sha256") else "")
    except OSError:
        return False
    if problem and not quiet:
        logger.warning("The cached ONNX file %s differs from its record (%s): damaged or altered; making it again.",
                       path, problem)
    return not problem


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc), between the steps of making
    the export: each step's peak then no longer adds up with the previous one's leftovers."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """Replace the folder's record atomically."""
    replace_text(folder / RECORD, json.dumps(record, indent=2) + "\n")


# Spinning intra-op threads save ~1.7 ms per question on an idle 2-core CPU (4.6 vs 6.3 ms with 8-bit
# weights, benchmarks/query_encoder.py) but double the time when another process holds a core, and
# burn CPU the retrieval step needs next.
ALLOW_SPINNING = False
ST_CONFIG = "config_sentence_transformers.json"


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
        import numpy as np  # lazy: `import qa` stays light

        if not isinstance(text, str):
            raise TypeError(f"Expected str, got {type(text).__name__}.")
        encoding = self.tokenizer.encode(self.prompt + text)  # not encode_batch: no thread pool for one text
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        (vectors,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        return vectors[0]

    def encode_batch(self, texts: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
        """Float32 (n, dim) L2-normalised question vectors, in the order of `texts`."""
        import numpy as np  # lazy: `import qa` stays light

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


def open_session(path: Path) -> onnxruntime.InferenceSession:
    """A CPU session: at most 2 intra-op threads (not spinning), sequential, every graph optimisation."""
    import onnxruntime as ort  # lazy: `import qa` stays light

    options = ort.SessionOptions()
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    if not ALLOW_SPINNING:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_tokenizer(model_dir: Path, max_length: int) -> Tokenizer:
    """The model's tokenizer.json, truncating to max_length and padding batches to their longest text."""
    from tokenizers import Tokenizer  # lazy: `import qa` stays light

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
