"""Write a build: every file of it into a temporary folder, then published atomically. `qa.index.build`
decides what to embed; whoever computed the vectors (a plain or an incremental build, a benchmark),
`write_build` writes them, so a build's files have one definition."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from qa.chunking import Passage, indexed_text
from qa.files import write_jsonl
from qa.french import analyze
from qa.index import dense as dense_index
from qa.index import layout
from qa.index.layout import BM25_PARAMS, bm25s, passage_row, settings
from qa.index.status import STAT_KEYS


def write_build(root: Path, corpus: Path, *, model_id: str, checksum: str, documents: list[dict[str, Any]],
                passages: list[Passage], vectors: np.ndarray, sentence_vectors: np.ndarray,
                skipped: list[dict[str, Any]], dense: dict[str, Any], locked: bool = False, dense_parts: int = 1,
                pool_map: Callable = map) -> Path:
    """Write a complete build and publish it; returns the live build. `locked`: the caller already holds
    the index's build lock (qa.index.build holds it for the whole build). `dense_parts`, `pool_map`: an
    IVF index filled in parts, on Ray for a distributed build (`qa.index.dense.build`)."""
    import faiss  # lazy: `import qa` stays light

    if len(vectors) != len(passages) or len(sentence_vectors) != sum(len(p.sentences) for p in passages):
        raise ValueError("vectors do not match passages")
    with contextlib.nullcontext() if locked else layout.build_lock(root):
        tmp = layout.new_build_dir(root)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        faiss.write_index(dense_index.build(vectors, dense, parts=dense_parts, pool_map=pool_map),
                          str(tmp / "dense.faiss"))
        layout.checkpoint("writing")  # a half-written temporary folder
        np.save(tmp / "vectors.npy", vectors, allow_pickle=False)  # for reuse by the next incremental build
        bm25 = bm25s().BM25(**BM25_PARAMS)
        bm25.index([analyze(indexed_text(p)) for p in passages], show_progress=False)
        bm25.save(str(tmp / "bm25"), show_progress=False)
        np.save(tmp / "sentences.npy", np.ascontiguousarray(sentence_vectors, dtype=np.float32), allow_pickle=False)
        write_jsonl(tmp / "passages.jsonl", (passage_row(p) for p in passages))
        write_jsonl(tmp / "documents.jsonl", documents)
        corpus_rel = os.path.relpath(Path(corpus).resolve(), root.resolve())
        manifest = _manifest(corpus_rel, model_id, checksum, vectors.shape[1], documents, passages, skipped, dense)
        manifest["files"] = layout.record(tmp)  # every file's size and sha256, as written
        layout.write_manifest(tmp, manifest)  # sealed with its own sha256
        return layout.publish(root, tmp)


def _manifest(corpus, model_id, checksum, dim, docs, passages, skipped, dense) -> dict[str, Any]:
    def v(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    per_doc = Counter(p.doc for p in passages)
    return {
        "format": layout.FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": corpus,  # relative to the index folder, so both can move together
        "model": {"id": model_id, "checksum": checksum, "dimension": int(dim)},
        **settings(),
        "dense": dense,
        "documents": {d["doc"]: {"title": d["title"], "sha256": d["sha256"], "passages": per_doc.get(d["doc"], 0),
                                 **{k: d[k] for k in STAT_KEYS if k in d}}
                      for d in docs},
        "counts": {"documents": len(docs), "passages": len(passages),
                   "sentences": sum(len(p.sentences) for p in passages)},
        "skipped": list(skipped),
        "versions": {n: v(n) for n in ("qa", "sentence-transformers", "faiss-cpu", "bm25s", "PyStemmer", "torch")},
    }
