"""Load and check a build: FAISS vectors, BM25 keywords, passages and manifest, and read a build's
documents back for the next incremental build.

Loading is cached per process and per build, so the hot path never re-reads files; sentence vectors
are memory-mapped (only candidates' rows are read).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.chunking import IndexedPassage
from qa.errors import IndexCorruptError, IndexModelMismatchError
from qa.files import read_jsonl
from qa.index import dense as dense_index
from qa.index import layout
from qa.index.freshness import Freshness, check_freshness, describe
from qa.index.layout import bm25s, passage_from_row

log = logging.getLogger(__name__)


@dataclass
class Index:
    """A loaded build: everything `retrieve` needs, in memory."""

    path: Path
    manifest: dict[str, Any]
    passages: list[IndexedPassage]
    faiss: Any  # faiss.Index: the passage vectors, exact (flat) or approximate (IVF)
    bm25: Any  # bm25s.BM25
    sentence_vectors: np.ndarray
    sentence_offsets: np.ndarray  # passage i owns sentence_vectors[off[i]:off[i+1]]
    flat_vectors: np.ndarray | None = field(default=None, repr=False)  # a view of a flat index's vectors
    freshness: Freshness = field(default_factory=Freshness)  # against the corpus, when loaded
    sentence_terms: dict[int, list[frozenset[str]]] = field(default_factory=dict, repr=False)  # search's cache
    _documents: dict[str, dict[str, str]] | None = field(default=None, repr=False)
    _passage_docs: tuple[list[str], np.ndarray] | None = field(default=None, repr=False)
    _passage_vectors: np.ndarray | None = field(default=None, repr=False)

    def passage_docs(self) -> tuple[list[str], np.ndarray]:
        """Document ids, and each passage's position in that list: a document filter is one np.isin."""
        if self._passage_docs is None:
            names = list(dict.fromkeys(p.doc for p in self.passages))
            code = {name: i for i, name in enumerate(names)}
            self._passage_docs = (names, np.array([code[p.doc] for p in self.passages], dtype=np.int32))
        return self._passage_docs

    def passage_vectors(self) -> np.ndarray:
        """All passage vectors, memory-mapped from the build (exact scores where the FAISS index is
        approximate, e.g. inside a document filter), read on first use."""
        if self._passage_vectors is None:
            self._passage_vectors = _mapped(self.path / "vectors.npy")
        return self._passage_vectors

    def documents(self) -> dict[str, dict[str, str]]:
        """The documents' full texts as indexed, by id: read from this build once, on first use."""
        if self._documents is None:
            self._documents = {r["doc"]: r for r in read_jsonl(self.path / "documents.jsonl")}
        return self._documents

    def document_ids(self) -> tuple[str, ...]:
        """Every document of the build (a document filter names only these)."""
        return tuple(self.manifest["documents"])

    @property
    def model_id(self) -> str:
        return self.manifest["model"]["id"]


_cache: dict[Path, Index] = {}
_cache_lock = threading.Lock()


def load_index(index: str | Path = "index") -> Index:
    """The live build at `index`, loaded once per process (reloaded after a rebuild)."""
    with _cache_lock:  # CURRENT is read under the lock: a concurrent rebuild cannot interleave
        build = layout.current_build(Path(index)).resolve()
        if build not in _cache:
            idx = _load(build)
            idx.freshness = check_freshness(index, manifest=idx.manifest)
            if idx.freshness.model_changed:  # question vectors would not match the passages': refuse
                raise IndexModelMismatchError(
                    f"Index at {build} was built with model {idx.model_id!r} checksum "
                    f"{idx.manifest['model']['checksum'][:12]}…, which differs from the installed weights: "
                    "rebuild it with `qa index build`."
                )
            if idx.freshness.stale:
                log.warning("Index %s is stale: %s. Rebuild it with `qa index build`.", index, describe(idx.freshness))
            _cache.clear()  # one live build per process is enough; drop the replaced one
            _cache[build] = idx
        return _cache[build]


def _load(build: Path) -> Index:
    import faiss  # lazy: `import qa` stays light

    try:
        manifest = layout.read_manifest(build)
        rows = read_jsonl(build / "passages.jsonl")
        passages = [passage_from_row(r) for r in rows]
        dense = faiss.read_index(str(build / "dense.faiss"))
        dense_index.configure(dense, manifest.get("dense", {}))
        bm25 = bm25s().BM25.load(str(build / "bm25"), mmap=True, show_progress=False)  # pages read on demand
        sentence_vectors = _mapped(build / "sentences.npy")
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise IndexCorruptError(f"Index at {build} is unreadable ({exc}): rebuild it with `qa index build`.") from exc
    offsets = np.cumsum([0] + [len(p.sentences) for p in passages])
    counts = manifest.get("counts", {})
    dim = manifest.get("model", {}).get("dimension")
    if dense.d != dim or sentence_vectors.ndim != 2 or sentence_vectors.shape[1] != dim:
        raise IndexCorruptError(
            f"Index at {build} holds {dense.d}-dimension vectors but its manifest names a {dim}-dimension "
            "model: rebuild it with `qa index build`."
        )
    if not (dense.ntotal == len(passages) == counts.get("passages") and len(sentence_vectors) == offsets[-1]):
        raise IndexCorruptError(
            f"Index at {build} is inconsistent ({dense.ntotal} vectors, {len(passages)} passages): "
            "rebuild it with `qa index build`."
        )
    flat = None
    if isinstance(dense, faiss.IndexFlat):  # zero-copy: the index owns the memory and lives as long as Index
        flat = faiss.rev_swig_ptr(dense.get_xb(), dense.ntotal * dense.d).reshape(dense.ntotal, dense.d)
    return Index(build, manifest, passages, dense, bm25, sentence_vectors, offsets, flat_vectors=flat)


def _mapped(path: Path) -> np.ndarray:
    """A memory-mapped array the kernel is told is read at random (candidates' rows only), so
    read-ahead does not pull the whole file into memory."""
    import mmap  # lazy: only loading maps files

    array = np.load(path, mmap_mode="r", allow_pickle=False)
    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_RANDOM"):
        try:
            handle.madvise(mmap.MADV_RANDOM)
        except (OSError, ValueError):
            pass
    return array


def read_documents(index: str | Path = "index") -> dict[str, dict[str, str]]:
    """The documents' full texts as indexed, by document id (for the source viewer), cached per build."""
    return load_index(index).documents()


def read_stored(build: Path) -> dict[str, tuple[dict[str, Any], list[IndexedPassage], np.ndarray, np.ndarray]]:
    """Each document of a build as the next incremental build reuses it: (its documents.jsonl row, its
    passages, their vectors, their sentence vectors), by document id. Raises ValueError when the
    build's files disagree (a damaged build is never reused)."""
    rows = read_jsonl(build / "passages.jsonl")
    vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
    sentences = np.load(build / "sentences.npy", mmap_mode="r", allow_pickle=False)
    if len(vectors) != len(rows) or len(sentences) != sum(len(r["sentences"]) for r in rows):
        raise ValueError("vector and passage counts differ")
    docs = {d["doc"]: d for d in read_jsonl(build / "documents.jsonl")}
    passages: dict[str, list[IndexedPassage]] = {doc: [] for doc in docs}
    spans: dict[str, list[int]] = {}  # doc -> [first passage, end, first sentence, end]
    s = 0
    for i, row in enumerate(rows):
        n = len(row["sentences"])
        span = spans.setdefault(row["doc"], [i, i, s, s])
        span[1], span[3] = i + 1, s + n
        passages[row["doc"]].append(passage_from_row(row))
        s += n
    return {doc: (docs[doc], passages[doc], np.array(vectors[p0:p1], dtype=np.float32),
                  np.array(sentences[s0:s1], dtype=np.float32))
            for doc, (p0, p1, s0, s1) in spans.items()}
