"""Load and check a build (FAISS, BM25, passages, manifest), and read its documents back for the next
incremental build. Every file is checked against its manifest's size and sha256 before it is parsed,
and a build is returned only once all are: any damage or read error is an IndexCorruptError naming the
file. `qa.Assistant` keeps the loaded build, so the hot path never re-reads files (`current`: a `stat`
per file tells whether one was rewritten since); sentence vectors are memory-mapped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.chunking import Passage
from qa.errors import IndexCorruptError, IndexModelMismatchError
from qa.files import read_jsonl
from qa.index import dense as dense_index
from qa.index import layout
from qa.index.layout import bm25s, passage_from_row
from qa.index.status import Freshness, check_freshness, describe

log = logging.getLogger(__name__)


@dataclass
class Index:
    """A loaded build: everything `retrieve` needs, in memory."""

    path: Path
    manifest: dict[str, Any]
    passages: list[Passage]
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
    files_seen: tuple = field(default=(), repr=False)  # the files' identities when loaded (layout.snapshot)

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
            self._passage_vectors = _read_checked(self, "vectors.npy", _mapped)
        return self._passage_vectors

    def documents(self) -> dict[str, dict[str, str]]:
        """The documents' full texts as indexed, by id: read from this build once, on first use."""
        if self._documents is None:
            self._documents = _read_checked(self, "documents.jsonl", lambda p: {r["doc"]: r for r in read_jsonl(p)})
        return self._documents

    def document_ids(self) -> tuple[str, ...]:
        """Every document of the build (a document filter names only these)."""
        return tuple(self.manifest["documents"])

    @property
    def model_id(self) -> str:
        return self.manifest["model"]["id"]


LOAD_ORDER = ("passages.jsonl", "dense.faiss", "bm25", "sentences.npy")  # then vectors.npy, documents.jsonl
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, RuntimeError)  # a file as parsed


def load_index(index: str | Path = "index", build: Path | None = None) -> Index:
    """Read and check the live build at `index` (or `build`, one of its builds), and compare it with its
    corpus. Not cached: `qa.Assistant` holds the loaded index and reloads it when a rebuild is published
    or a file of it is rewritten (`current` tells)."""
    build = (build or layout.current_build(Path(index))).resolve()
    idx = _load(build)
    idx.freshness = check_freshness(index, manifest=idx.manifest)
    if idx.freshness.model_changed:  # question vectors would not match the passages': refuse
        raise IndexModelMismatchError(f"Index at {build} was built with model {idx.model_id!r} checksum "
                                      f"{idx.manifest['model']['checksum'][:12]}…, which differs from the installed "
                                      "weights: rebuild it with `qa index build`.")
    if idx.freshness.stale:
        log.warning("Index %s is stale: %s. Rebuild it with `qa index build`.", index, describe(idx.freshness))
    return idx


def current(idx: Index | None, index: str | Path) -> Path | None:
    """The live build of `index` when `idx` is not it any more (a rebuild was published, or a file of
    the build was rewritten since it was loaded: memory-mapped files must be checked again); else None."""
    build = layout.current_build(Path(index)).resolve()
    if idx is None or idx.path != build or layout.snapshot(build, idx.manifest["files"]) != idx.files_seen:
        return build
    return None


def _load(build: Path) -> Index:
    """Read a build, each file checked before it is parsed; IndexCorruptError naming the file otherwise."""
    import faiss  # lazy: `import qa` stays light

    manifest = layout.read_manifest(build)
    files = manifest["files"]
    seen = layout.snapshot(build, files)  # before checking: a file rewritten meanwhile is checked again
    name = ""  # the file being read, named by the error
    try:
        with layout.checking(build, files, LOAD_ORDER) as ready:
            ready(name := "passages.jsonl")
            passages = [passage_from_row(r) for r in read_jsonl(build / name)]
            ready(name := "dense.faiss")
            dense = faiss.read_index(str(build / name))
            dense_index.configure(dense, manifest.get("dense", {}))
            ready(name := "bm25")
            bm25 = bm25s().BM25.load(str(build / name), mmap=True, show_progress=False)  # pages read on demand
            ready(name := "sentences.npy")
            sentence_vectors = _mapped(build / name)
        # Leaving the block waited for the rest (vectors.npy, documents.jsonl): read later, checked now.
    except READ_ERRORS as exc:
        raise IndexCorruptError(f"Index at {build} is unreadable ({name}: {exc}): rebuild it with `qa index build`.",
                                file=name) from exc
    offsets = np.cumsum([0] + [len(p.sentences) for p in passages])
    counts = manifest.get("counts", {})
    dim = manifest.get("model", {}).get("dimension")
    if dense.d != dim or sentence_vectors.ndim != 2 or sentence_vectors.shape[1] != dim:
        raise IndexCorruptError(f"Index at {build} holds {dense.d}-dimension vectors but its manifest names a "
                                f"{dim}-dimension model: rebuild it with `qa index build`.")
    if not (dense.ntotal == len(passages) == counts.get("passages") and len(sentence_vectors) == offsets[-1]):
        raise IndexCorruptError(f"Index at {build} is inconsistent ({dense.ntotal} vectors, {len(passages)} "
                                "passages): rebuild it with `qa index build`.")
    flat = None
    if isinstance(dense, faiss.IndexFlat):  # zero-copy: the index owns the memory and lives as long as Index
        flat = faiss.rev_swig_ptr(dense.get_xb(), dense.ntotal * dense.d).reshape(dense.ntotal, dense.d)
    return Index(build, manifest, passages, dense, bm25, sentence_vectors, offsets, flat_vectors=flat,
                 files_seen=seen)


def _read_checked(idx: Index, name: str, read):
    """A file of a loaded build read on first use, checked again first (a stat, unless it changed)."""
    layout.verify(idx.path, idx.manifest["files"], name)
    try:
        return read(idx.path / name)
    except READ_ERRORS as exc:
        raise IndexCorruptError(f"Index at {idx.path} is unreadable ({name}: {exc}): rebuild it with "
                                "`qa index build`.", file=name) from exc


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


def checked_build(root: Path) -> tuple[Path, dict[str, Any]]:
    """The live build of the index at `root` and its manifest, every file of it checked against its
    checksum: IndexNotFoundError, IndexVersionError, or IndexCorruptError naming the first damaged file."""
    build = layout.current_build(root)
    manifest = layout.read_manifest(build)
    layout.verify(build, manifest["files"], *manifest["files"])
    return build, manifest


def read_stored(build: Path) -> dict[str, tuple[dict[str, Any], list[Passage], np.ndarray, np.ndarray]]:
    """Each document of a build as the next incremental build reuses it: (its documents.jsonl row, its
    passages, their vectors, their sentence vectors), by document id. Raises ValueError when the
    build's files disagree (a damaged build is never reused)."""
    rows = read_jsonl(build / "passages.jsonl")
    vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
    sentences = np.load(build / "sentences.npy", mmap_mode="r", allow_pickle=False)
    if len(vectors) != len(rows) or len(sentences) != sum(len(r["sentences"]) for r in rows):
        raise ValueError("vector and passage counts differ")
    docs = {d["doc"]: d for d in read_jsonl(build / "documents.jsonl")}
    passages: dict[str, list[Passage]] = {doc: [] for doc in docs}
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
