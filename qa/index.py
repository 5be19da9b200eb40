"""Build, load and check the index: FAISS vectors + BM25 keywords + passages + manifest.

A build reads the corpus, cuts passages, embeds them (and their sentences, for the answering
sentence), and writes everything into a temporary folder that `storage.publish` switches in
atomically. Loading is cached per process and per build, so the hot path never re-reads files.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from qa import storage
from qa.chunking import IndexedPassage, chunk_document, chunking_params, indexed_sentences, indexed_text
from qa.documents import Document, iter_corpus_files, read_document
from qa.errors import CorpusError, IndexCorruptError
from qa.french import ANALYZER_PARAMS, analyze, normalize_apostrophes
from qa.freshness import Freshness, check_freshness, describe, file_hash

log = logging.getLogger(__name__)
BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene"}


@dataclass(frozen=True)
class BuildSummary:
    """What `build_index` did, for the CLI's last line and for tests."""

    index: Path
    model: str
    documents: int
    passages: int
    sentences: int
    seconds: float
    skipped: tuple[tuple[str, str], ...] = ()


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
    freshness: Freshness = field(default_factory=Freshness)  # against the corpus, when loaded
    sentence_terms: dict[int, list[frozenset[str]]] = field(default_factory=dict, repr=False)  # search's cache
    _documents: dict[str, dict[str, str]] | None = field(default=None, repr=False)

    def documents(self) -> dict[str, dict[str, str]]:
        """The documents' full texts as indexed, by id: read from this build once, on first use."""
        if self._documents is None:
            self._documents = {r["doc"]: r for r in storage.read_jsonl(self.path / "documents.jsonl")}
        return self._documents

    @property
    def model_id(self) -> str:
        return self.manifest["model"]["id"]


def _embedding_input(text: str) -> str:
    return normalize_apostrophes(text)


def build_index(
    corpus: str | Path = "corpus",
    index: str | Path = "index",
    *,
    model: str | None = None,
    show_progress: bool = False,
) -> BuildSummary:
    """Index every readable document under `corpus` into `index`, replacing it atomically.

    Unreadable files are skipped with a warning and listed in the summary; a corpus with no
    readable document raises `CorpusError`.

    Example:
        >>> build_index("corpus", "index").passages
        9
    """
    from qa import model as models

    t0 = time.perf_counter()
    corpus, root = Path(corpus), Path(index)
    docs, skipped = read_corpus(corpus)
    passages = [p for d in docs for p in chunk_document(d)]
    if not passages:
        raise CorpusError(f"No passage could be read from {corpus}: add .txt or .md files.")
    model_id, _ = models.resolve_model(model)
    encoder = models.load_model(model)
    vectors = models.embed_documents(
        encoder, [_embedding_input(indexed_text(p)) for p in passages], show_progress=show_progress
    )
    sentence_texts = [_embedding_input(t) for p in passages for t in indexed_sentences(p)]
    sentence_vectors = models.embed_documents(encoder, sentence_texts, show_progress=show_progress)

    with storage.build_lock(root):
        tmp = storage.new_build_dir(root)
        _write_dense(tmp, vectors)
        _write_bm25(tmp, [indexed_text(p) for p in passages])
        np.save(tmp / "sentences.npy", sentence_vectors, allow_pickle=False)
        storage.write_jsonl(tmp / "passages.jsonl", (_passage_row(p) for p in passages))
        storage.write_jsonl(
            tmp / "documents.jsonl",
            ({"doc": d.doc_id, "title": d.title, "sha256": d.sha256, "text": d.text} for d in docs),
        )
        manifest = _manifest(os.path.relpath(corpus.resolve(), root.resolve()), model_id, models.model_checksum(model), vectors.shape[1], docs, passages, skipped)
        storage.write_json(tmp / "manifest.json", manifest)
        final = storage.publish(root, tmp)
    models.encode_question(model, "query")  # export the fast question encoder now, not at the first question
    return BuildSummary(
        index=final,
        model=model_id,
        documents=len(docs),
        passages=len(passages),
        sentences=len(sentence_texts),
        seconds=time.perf_counter() - t0,
        skipped=tuple((path, reason) for path, reason, _ in skipped),
    )


def read_corpus(corpus: Path) -> tuple[list[Document], list[tuple[str, str, str]]]:
    """Every readable document, and (path, reason, sha256 or "") for each file skipped."""
    docs, skipped = [], []
    for path in iter_corpus_files(corpus):
        try:
            docs.append(read_document(path, corpus))
        except (ValueError, OSError) as exc:
            rel = path.relative_to(corpus).as_posix()
            log.warning("Skipping %s: %s", rel, exc)
            skipped.append((rel, str(exc), file_hash(path)))
    if not docs:
        raise CorpusError(f"No readable document in {corpus} (supported: .txt, .md in UTF-8).")
    return docs, skipped


def _write_dense(folder: Path, vectors: np.ndarray) -> None:
    import faiss

    dense = faiss.IndexFlatIP(vectors.shape[1])
    dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(dense, str(folder / "dense.faiss"))


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


def _passage_row(p: IndexedPassage) -> dict[str, Any]:
    return {
        "doc": p.doc, "title": p.title, "section": p.section, "start": p.start, "end": p.end,
        "page": p.page, "sentences": [list(s) for s in p.sentences], "text": p.text,
    }


def _manifest(corpus, model_id, checksum, dim, docs, passages, skipped) -> dict[str, Any]:
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
        "documents": {d.doc_id: {"title": d.title, "sha256": d.sha256, "passages": per_doc.get(d.doc_id, 0)} for d in docs},
        "counts": {"documents": len(docs), "passages": len(passages), "sentences": sum(len(p.sentences) for p in passages)},
        "skipped": [{"path": p, "reason": r, "sha256": h} for p, r, h in skipped],
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
            if idx.freshness.stale:
                log.warning("Index %s is stale: %s. Rebuild it with `qa index build`.", index, describe(idx.freshness))
            _cache.clear()  # one live build per process is enough; drop the replaced one
            _cache[build] = idx
        return _cache[build]


def _load(build: Path) -> Index:
    import faiss

    bm25s = _bm25s()

    try:
        manifest = storage.read_manifest(build)
        rows = storage.read_jsonl(build / "passages.jsonl")
        passages = [
            IndexedPassage(r["doc"], r["title"], r["section"], r["start"], r["end"], r["text"],
                           tuple(tuple(s) for s in r["sentences"]), r.get("page"))
            for r in rows
        ]
        dense = faiss.read_index(str(build / "dense.faiss"))
        bm25 = bm25s.BM25.load(str(build / "bm25"), show_progress=False)
        sentence_vectors = np.load(build / "sentences.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise IndexCorruptError(f"Index at {build} is unreadable ({exc}): rebuild it with `qa index build`.") from exc
    offsets = np.cumsum([0] + [len(p.sentences) for p in passages])
    counts = manifest.get("counts", {})
    if not (dense.ntotal == len(passages) == counts.get("passages") and len(sentence_vectors) == offsets[-1]):
        raise IndexCorruptError(
            f"Index at {build} is inconsistent ({dense.ntotal} vectors, {len(passages)} passages): "
            "rebuild it with `qa index build`."
        )
    return Index(build, manifest, passages, dense, bm25, sentence_vectors, offsets)


def read_documents(index: str | Path = "index") -> dict[str, dict[str, str]]:
    """The documents' full texts as indexed, by document id (for the source viewer), cached per build."""
    return load_index(index).documents()
