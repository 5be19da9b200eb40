"""Write, load and check an index build: FAISS vectors + BM25 keywords + passages + manifest.

`qa.build` decides what to embed; `write_build` writes every file of a build into a temporary folder
that `storage.publish` switches in atomically. Loading is cached per process and per build, so the
hot path never re-reads files; sentence vectors are memory-mapped (only candidates' rows are read).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from qa import storage
from qa.build import BuildSummary, build_index  # noqa: F401 - re-exported: qa.index is where users look
from qa.chunking import IndexedPassage, chunking_params, indexed_text
from qa.errors import IndexCorruptError, IndexModelMismatchError
from qa.french import ANALYZER_PARAMS, analyze
from qa.freshness import STAT_KEYS, Freshness, check_freshness, describe

log = logging.getLogger(__name__)
BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene"}


@dataclass
class Index:
    """A loaded build: everything `retrieve` needs, in memory."""

    path: Path
    manifest: dict[str, Any]
    passages: list[IndexedPassage]
    dense: Any  # faiss.Index
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
            self._documents = {r["doc"]: r for r in storage.read_jsonl(self.path / "documents.jsonl")}
        return self._documents

    @property
    def model_id(self) -> str:
        return self.manifest["model"]["id"]


def write_build(
    root: Path,
    corpus: Path,
    *,
    model_id: str,
    checksum: str,
    documents: list[dict[str, Any]],
    passages: list[IndexedPassage],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    skipped: list[dict[str, Any]],
    dense: dict[str, Any],
    locked: bool = False,
    dense_parts: int = 1,
    pool_map: Callable = map,
) -> Path:
    """Write a complete build into a temporary folder and publish it atomically; returns the live build.

    Every file of the build is written here, whoever computed the vectors (a plain or an incremental
    build, a benchmark), so a build's layout has one definition. `locked`: the caller already holds
    the index's build lock (qa.build holds it for the whole build). `dense_parts`, `pool_map`: an
    IVF index filled in parts, on Ray for a distributed build (`qa.dense.build`).
    """
    if len(vectors) != len(passages) or len(sentence_vectors) != sum(len(p.sentences) for p in passages):
        raise ValueError("vectors do not match passages")
    with contextlib.nullcontext() if locked else storage.build_lock(root):
        tmp = storage.new_build_dir(root)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        _write_dense(tmp, vectors, dense, dense_parts, pool_map)
        storage.checkpoint("writing")  # a half-written temporary folder
        np.save(tmp / "vectors.npy", vectors, allow_pickle=False)  # for reuse by the next incremental build
        _write_bm25(tmp, [indexed_text(p) for p in passages])
        np.save(tmp / "sentences.npy", np.ascontiguousarray(sentence_vectors, dtype=np.float32), allow_pickle=False)
        storage.write_jsonl(tmp / "passages.jsonl", (passage_row(p) for p in passages))
        storage.write_jsonl(tmp / "documents.jsonl", documents)
        corpus_rel = os.path.relpath(Path(corpus).resolve(), root.resolve())
        manifest = _manifest(corpus_rel, model_id, checksum, vectors.shape[1], documents, passages, skipped, dense)
        storage.write_json(tmp / "manifest.json", manifest)
        return storage.publish(root, tmp)


def _write_dense(folder: Path, vectors: np.ndarray, params: dict[str, Any], parts: int, pool_map: Callable) -> None:
    import faiss

    from qa import dense

    faiss.write_index(dense.build(vectors, params, parts=parts, pool_map=pool_map), str(folder / "dense.faiss"))


def _bm25s():
    """bm25s, with the DEBUG level its import sets on its own logger put back to the default."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


def _write_bm25(folder: Path, texts: list[str]) -> None:
    bm25s = _bm25s()
    bm25 = bm25s.BM25(**BM25_PARAMS)
    bm25.index([analyze(t) for t in texts], show_progress=False)
    bm25.save(str(folder / "bm25"), show_progress=False)


def passage_row(p: IndexedPassage) -> dict[str, Any]:
    return {
        "doc": p.doc, "title": p.title, "section": p.section, "start": p.start, "end": p.end,
        "page": p.page, "sentences": [list(s) for s in p.sentences], "text": p.text,
    }


def passage_from_row(r: dict[str, Any]) -> IndexedPassage:
    return IndexedPassage(r["doc"], r["title"], r["section"], r["start"], r["end"], r["text"],
                          tuple(tuple(s) for s in r["sentences"]), r.get("page"))


def _manifest(corpus, model_id, checksum, dim, docs, passages, skipped, dense) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    per_doc: dict[str, int] = {}
    for p in passages:
        per_doc[p.doc] = per_doc.get(p.doc, 0) + 1
    return {
        "format": storage.FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": corpus,  # relative to the index folder, so both can move together
        "model": {"id": model_id, "checksum": checksum, "dimension": int(dim)},
        "chunking": chunking_params(),
        "analyzer": ANALYZER_PARAMS,
        "bm25": BM25_PARAMS,
        "dense": dense,
        "documents": {d["doc"]: {"title": d["title"], "sha256": d["sha256"], "passages": per_doc.get(d["doc"], 0),
                                 **{k: d[k] for k in STAT_KEYS if k in d}}
                      for d in docs},
        "counts": {"documents": len(docs), "passages": len(passages), "sentences": sum(len(p.sentences) for p in passages)},
        "skipped": list(skipped),
        "versions": {n: v(n) for n in ("qa", "sentence-transformers", "faiss-cpu", "bm25s", "PyStemmer", "torch")},
    }


_cache: dict[Path, Index] = {}
_cache_lock = threading.Lock()


def load_index(index: str | Path = "index") -> Index:
    """The live build at `index`, loaded once per process (reloaded after a rebuild)."""
    with _cache_lock:  # CURRENT is read under the lock: a concurrent rebuild cannot interleave
        build = storage.current_build(Path(index)).resolve()
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
    import faiss

    from qa import dense as dense_index

    bm25s = _bm25s()

    try:
        manifest = storage.read_manifest(build)
        rows = storage.read_jsonl(build / "passages.jsonl")
        passages = [passage_from_row(r) for r in rows]
        dense = faiss.read_index(str(build / "dense.faiss"))
        dense_index.configure(dense, manifest.get("dense", {}))
        bm25 = bm25s.BM25.load(str(build / "bm25"), mmap=True, show_progress=False)  # pages read on demand
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
    import mmap

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
