"""Build the index from a corpus folder: incremental by default, atomic always.

Each file is hashed; a document whose bytes, model and chunking settings are unchanged since the
live build keeps its passages and vectors (read back from that build), and only new or changed
documents are read, cut and embedded. Deleted documents drop out. BM25 and the FAISS structure are
rebuilt over everything (seconds), so an incremental build gives the same index as a full one.
A changed model, chunking or reader version, or `full=True`, re-embeds everything, and the summary
says why. Files that cannot be read are skipped and listed; one bad file never stops a build.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa import storage
from qa.chunking import IndexedPassage, chunking_params, indexed_sentences, indexed_text
from qa.documents import iter_corpus_files
from qa.errors import ClusterUnavailableError, CorpusError, InputError
from qa.french import normalize_apostrophes
from qa.freshness import file_hash, stat_record, unchanged
from qa.ingest import read_one, skip_entry, skip_reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSummary:
    """What `build_index` did, for the CLI's last lines and for tests."""

    index: Path
    model: str
    documents: int
    passages: int
    sentences: int
    seconds: float
    skipped: tuple[tuple[str, str], ...] = ()  # (path, French reason)
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()  # documents whose vectors were kept from the previous build
    full_reason: str = ""  # why every document was embedded again ("" for an incremental build)
    embedded_passages: int = 0
    dense: str = "flat"


@dataclass
class _Part:
    """One document's share of a build: its row, passages and vectors (new or reused)."""

    doc: dict[str, Any]  # documents.jsonl row: doc, title, sha256, text, pages
    passages: list[IndexedPassage]
    vectors: np.ndarray | None = None
    sentence_vectors: np.ndarray | None = None


def embedding_input(text: str) -> str:
    """What the encoder sees: apostrophes made alike, as in questions."""
    return normalize_apostrophes(text)


def embedded_texts(passages: list[IndexedPassage]) -> tuple[list[str], list[str], list[str]]:
    """What a build embeds: (passage texts, sentence texts in passage order, the distinct texts of both).

    A one-sentence passage's sentence is the passage itself (a fifth of PIAF's passages), and
    boilerplate repeats under the same header: each distinct text is embedded once, in one call so
    that batches group all of them by token count.
    """
    texts = [embedding_input(indexed_text(p)) for p in passages]
    sentences = [embedding_input(t) for p in passages for t in indexed_sentences(p)]
    return texts, sentences, list(dict.fromkeys(texts + sentences))


def embed_passages(encoder, passages: list[IndexedPassage], *,
                   show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The one way passages become vectors: each passage under its header, and each of its sentences
    under the same header. Returns (passage vectors, sentence vectors in passage order)."""
    from qa import model as models

    texts, sentences, unique = embedded_texts(passages)
    row = {text: i for i, text in enumerate(unique)}
    vectors = models.embed_documents(encoder, unique, show_progress=show_progress)
    return vectors[[row[t] for t in texts]], vectors[[row[t] for t in sentences]]


def build_index(
    corpus: str | Path = "corpus",
    index: str | Path = "index",
    *,
    model: str | None = None,
    full: bool = False,
    dense: str = "auto",
    show_progress: bool = False,
    workers: int | None = None,
    ray_address: str | None = None,
) -> BuildSummary:
    """Index every readable document under `corpus` into `index`, replacing it atomically.

    Re-embeds only new or changed documents unless `full` (or the model or settings changed).
    `dense`: "auto" (exact search up to qa.dense.FLAT_MAX passages, IVF-SQ8 above), "flat" or "ivf".
    `workers` / `ray_address`: read, cut and embed the new files on Ray (a local runtime with that
    many embedding actors, or an existing cluster); needs the `cluster` extra. Same passages, vectors
    within float noise; the index is still assembled and published by this process.
    Raises `CorpusError` when no document is readable.

    Example:
        >>> build_index("corpus", "index").passages
        9
    """
    from qa import dense as dense_index
    from qa import model as models

    dense_index.plan(0, dense)  # a bad kind fails before any work
    models.precision_setting()  # so does a bad QA_DOCUMENT_PRECISION (and here, not inside a Ray actor)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}",
                         "Le nombre de workers (--workers) doit être un entier positif.")
    corpus, root = Path(corpus), Path(index)
    # The lock spans the whole build: a second build waits, then starts from this one's result,
    # so a slow build that read the corpus earlier can never publish over a newer one.
    with storage.build_lock(root):
        if not (workers or ray_address):
            return _build(corpus, root, model=model, full=full, dense=dense, show_progress=show_progress)
        with _distributed().Session(ray_address) as cluster:
            return _build(corpus, root, model=model, full=full, dense=dense, show_progress=show_progress,
                          cluster=cluster, workers=workers or 1)


def _build(corpus: Path, root: Path, *, model: str | None, full: bool, dense: str, show_progress: bool,
           cluster: Any = None, workers: int = 1) -> BuildSummary:
    """One build; `cluster`: a `qa.distributed.Session` to read and embed on Ray, or None."""
    from qa import dense as dense_index
    from qa import model as models
    from qa.index import write_build
    from qa.query_encoder import encode_question

    t0 = time.perf_counter()
    model_id, _ = models.resolve_model(model)
    checksum = models.model_checksum(model)
    previous, manifest, full_reason = _previous(root, model_id, checksum, full)
    previous_docs = manifest.get("documents", {})
    # Files skipped last time and untouched since are skipped again without being read (a scanned
    # 40 MB PDF is not parsed at every build, and a build with nothing new never starts Ray).
    previous_skips = {s["path"]: s for s in manifest.get("skipped", [])} if previous is not None else {}

    parts: list[_Part | None] = []  # in corpus order; None until a new document is read
    skipped: list[dict[str, Any]] = []  # manifest entries: path, reason, sha256 and stat
    reused: list[str] = []
    todo: list[tuple[int, str, Path, dict[str, int]]] = []  # (slot in parts, rel, path, stat) to read
    for path in iter_corpus_files(corpus):
        rel = path.relative_to(corpus).as_posix()
        record = previous_docs.get(rel)
        try:
            stat = stat_record(path)
        except OSError as exc:
            skipped.append(skip_entry(rel, skip_reason(exc), file_hash(path), path))
            continue
        if rel in previous_skips and unchanged(previous_skips[rel], stat):
            skipped.append(previous_skips[rel])
            continue
        # Same size and times: not even read. Else same bytes (touched, not changed): reused too.
        if previous is not None and rel in previous and (unchanged(record, stat) or _same_bytes(record, path, stat)):
            parts.append(_with_stat(previous[rel], stat))
            reused.append(rel)
            continue
        todo.append((len(parts), rel, path, stat))
        parts.append(None)

    fresh: list[_Part] = []
    vectors = sentence_vectors = None
    if todo and cluster is not None:
        from qa import distributed

        cluster.ensure()
        shards = distributed.shard_dir(root)
        try:
            reads, vectors, sentence_vectors = distributed.read_and_embed(
                [path for _, _, path, _ in todo], corpus, shards, model=model, workers=workers, checksum=checksum)
        finally:
            shutil.rmtree(shards, ignore_errors=True)
    else:
        reads = [read_one(path, corpus) for _, _, path, _ in todo]
    for (slot, rel, path, stat), read in zip(todo, reads, strict=True):
        if read.error:
            skipped.append(skip_entry(rel, read.error, read.sha256, path))
            continue
        parts[slot] = _Part({**read.doc, **stat}, read.passages)
        fresh.append(parts[slot])
    parts = [part for part in parts if part is not None]
    if not parts:
        raise CorpusError(f"No readable document in {corpus} (supported: .txt, .md, .pdf, .html, .docx).")
    if not any(p.passages for p in parts):
        raise CorpusError(f"No passage could be read from {corpus}.")

    skipped.sort(key=lambda entry: entry["path"])  # one order whichever way each file was found unusable
    new_passages = [p for part in fresh for p in part.passages]
    if new_passages and vectors is None:
        vectors, sentence_vectors = embed_passages(models.load_model(model), new_passages, show_progress=show_progress)
    if new_passages:
        _distribute(fresh, vectors, sentence_vectors)

    storage.checkpoint("embedded")
    passages = [p for part in parts for p in part.passages]
    dim = next(part.vectors.shape[1] for part in parts if part.vectors is not None)
    all_vectors = np.concatenate([part.vectors for part in parts]) if passages else np.zeros((0, dim), np.float32)
    all_sentences = np.concatenate([part.sentence_vectors for part in parts])
    plan = dense_index.plan(len(passages), dense)
    on_ray = cluster is not None and cluster.active and plan["type"] != "flat"  # IVF filled in parts on Ray
    final = write_build(
        root, corpus, model_id=model_id, checksum=checksum, documents=[part.doc for part in parts],
        passages=passages, vectors=all_vectors, sentence_vectors=all_sentences, skipped=skipped, dense=plan,
        locked=True, dense_parts=max(2, workers) if on_ray else 1,
        pool_map=_distributed().ray_map if on_ray else map,
    )
    if new_passages:
        encode_question(model, "query")  # export the fast question encoder now, not at the first question
    now = {part.doc["doc"]: part.doc["sha256"] for part in parts}
    return BuildSummary(
        index=final,
        model=model_id,
        documents=len(parts),
        passages=len(passages),
        sentences=len(all_sentences),
        seconds=time.perf_counter() - t0,
        skipped=tuple((s["path"], s["reason"]) for s in skipped),
        added=tuple(d for d in now if d not in previous_docs),
        changed=tuple(d for d in now if d in previous_docs and previous_docs[d].get("sha256") != now[d]),
        removed=tuple(d for d in previous_docs if d not in now),
        reused=tuple(reused),
        full_reason=full_reason,
        embedded_passages=len(new_passages),
        dense=plan["type"],
    )


def _distributed():
    """qa.distributed, or a clear error when the cluster extra (Ray) is not installed."""
    try:
        import ray  # noqa: F401 - only on this path
    except ImportError as exc:
        raise ClusterUnavailableError("Distributed builds need Ray: pip install -e '.[cluster]'") from exc
    from qa import distributed

    return distributed


def _same_bytes(record: dict | None, path: Path, stat: dict[str, int]) -> bool:
    """A file whose times changed but whose size and bytes did not (copied back, touched)."""
    return bool(record) and record.get("size") == stat["size"] and file_hash(path) == record.get("sha256")


def _with_stat(part: _Part, stat: dict[str, int]) -> _Part:
    part.doc = {**part.doc, **stat}  # the file's current size and mtime, for the next quick check
    return part


def _distribute(parts: list[_Part], vectors: np.ndarray, sentence_vectors: np.ndarray) -> None:
    """Hand each new document its rows of the vectors embedded in one batch."""
    p = s = 0
    for part in parts:
        n = len(part.passages)
        m = sum(len(x.sentences) for x in part.passages)
        part.vectors, part.sentence_vectors = vectors[p : p + n], sentence_vectors[s : s + m]
        p, s = p + n, s + m


def _previous(root: Path, model_id: str, checksum: str,
              full: bool) -> tuple[dict[str, _Part] | None, dict[str, Any], str]:
    """The live build's reusable documents, its manifest ({} without one), and why nothing is reused.

    Without a live build every document is new, which is not a "full rebuild" worth explaining.
    """
    try:
        build = storage.current_build(root)
        manifest = storage.read_manifest(build)
    except Exception as exc:  # noqa: BLE001 - no index, or one that cannot be read: build from scratch
        if (root / storage.CURRENT).exists():
            return None, {}, f"index précédent illisible ({exc})"
        return None, {}, ""
    if full:
        return None, manifest, "reconstruction complète demandée (--full)"
    if manifest["model"].get("checksum") != checksum or manifest["model"].get("id") != model_id:
        return None, manifest, f"modèle changé ({manifest['model'].get('id')} → {model_id})"
    if manifest.get("chunking") != chunking_params():
        return None, manifest, "réglages de découpage ou de lecture changés"
    try:
        return _read_parts(build), manifest, ""
    except Exception as exc:  # noqa: BLE001 - a damaged build is not reused, never trusted
        log.warning("Previous build %s cannot be reused (%s): embedding everything again.", build, exc)
        return None, manifest, f"index précédent illisible ({exc})"


def _read_parts(build: Path) -> dict[str, _Part]:
    from qa.index import passage_from_row

    rows = storage.read_jsonl(build / "passages.jsonl")
    vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
    sentences = np.load(build / "sentences.npy", mmap_mode="r", allow_pickle=False)
    if len(vectors) != len(rows) or len(sentences) != sum(len(r["sentences"]) for r in rows):
        raise ValueError("vector and passage counts differ")
    parts: dict[str, _Part] = {d["doc"]: _Part(d, []) for d in storage.read_jsonl(build / "documents.jsonl")}
    spans: dict[str, list[int]] = {}
    s = 0
    for i, row in enumerate(rows):
        n = len(row["sentences"])
        span = spans.setdefault(row["doc"], [i, i, s, s])
        span[1], span[3] = i + 1, s + n
        parts[row["doc"]].passages.append(passage_from_row(row))
        s += n
    for doc, (p0, p1, s0, s1) in spans.items():
        parts[doc].vectors = np.array(vectors[p0:p1], dtype=np.float32)
        parts[doc].sentence_vectors = np.array(sentences[s0:s1], dtype=np.float32)
    return {doc: part for doc, part in parts.items() if part.vectors is not None}
