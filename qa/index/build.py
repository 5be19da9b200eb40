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

from qa.chunking import Passage
from qa.documents import scan_corpus
from qa.errors import (
    ClusterUnavailableError,
    CorpusError,
    IndexCorruptError,
    IndexNotFoundError,
    IndexVersionError,
    InputError,
)
from qa.index import dense as dense_index
from qa.index import layout
from qa.index.ingest import ReadResult, read_one, skip_entry, skip_reason
from qa.index.loader import checked_build, read_stored
from qa.index.status import file_hash, stat_record, unchanged
from qa.index.writer import write_build
from qa.model import (
    embed_passages,
    load_model,
    model_checksum,
    precision_setting,
    prepare_question_encoder,
    resolve_model,
)
from qa.terminal import stage

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One document's share of a build: its row, passages and vectors (new or reused)."""

    doc: dict[str, Any]  # documents.jsonl row: doc, title, sha256, text, pages
    passages: list[Passage]
    vectors: np.ndarray | None = None
    sentence_vectors: np.ndarray | None = None


@dataclass
class Scan:
    """The corpus against the previous build: what is reused, skipped, and still to read."""

    parts: list[Part | None]  # in corpus order; None until a new document is read
    skipped: list[dict[str, Any]]  # manifest entries: path, reason, sha256 and stat
    reused: list[str]
    todo: list[tuple[int, str, Path, dict[str, int]]]  # (slot in parts, rel, path, stat) to read


def scan_corpus_against(corpus: Path, previous: dict[str, Part] | None, manifest: dict[str, Any]) -> Scan:
    """Walk the corpus: reuse what the previous build holds unchanged, list the rest to read."""
    previous_docs = manifest.get("documents", {})
    # Files skipped last time and untouched since are skipped again without being read (a scanned
    # 40 MB PDF is not parsed at every build, and a build with nothing new never starts Ray).
    previous_skips = {s["path"]: s for s in manifest.get("skipped", [])}
    scan = Scan([], [], [], [])
    listing = scan_corpus(corpus)
    # Links not followed and folders that cannot be read: listed, never read (no hash, no stat).
    scan.skipped += [skip_entry(path.relative_to(corpus).as_posix(), reason, "", None)
                     for path, reason in listing.skipped]
    for path in listing.files:
        rel = path.relative_to(corpus).as_posix()
        record = previous_docs.get(rel)
        try:
            stat = stat_record(path)
        except OSError as exc:
            scan.skipped.append(skip_entry(rel, skip_reason(exc), file_hash(path), path))
            continue
        if rel in previous_skips and unchanged(previous_skips[rel], stat):
            scan.skipped.append(previous_skips[rel])
            continue
        # Same size and times: not even read. Else same bytes (touched, not changed): reused too.
        if previous is not None and rel in previous and (unchanged(record, stat) or same_bytes(record, path, stat)):
            scan.parts.append(with_stat(previous[rel], stat))
            scan.reused.append(rel)
            continue
        scan.todo.append((len(scan.parts), rel, path, stat))
        scan.parts.append(None)
    return scan


def same_bytes(record: dict | None, path: Path, stat: dict[str, int]) -> bool:
    """A file whose times changed but whose size and bytes did not (copied back, touched)."""
    return bool(record) and record.get("size") == stat["size"] and file_hash(path) == record.get("sha256")


def with_stat(part: Part, stat: dict[str, int]) -> Part:
    part.doc = {**part.doc, **stat}  # the file's current size and mtime, for the next quick check
    return part


def previous_build(root: Path, model_id: str, checksum: str,
              full: bool) -> tuple[dict[str, Part] | None, dict[str, Any], str]:
    """The live build's reusable documents, its manifest ({} without one), and why nothing is reused.

    Without a live build every document is new, which is not a "full rebuild" worth explaining.
    """
    try:
        build, manifest = checked_build(root)  # every file hashed (once per process per version of it)
    except IndexNotFoundError:
        if (root / layout.CURRENT).exists():
            return None, {}, "index précédent introuvable (CURRENT désigne une construction absente)"
        return None, {}, ""
    except IndexVersionError:  # not damaged: kept as the previous build until the next one
        return None, {}, "index construit par une autre version de qa"
    except IndexCorruptError as exc:  # CURRENT, the manifest or a file: never reused, kept nor served again
        layout.discard_live(root)
        return None, {}, f"index précédent endommagé ({exc.file or layout.MANIFEST}), écarté"
    if full:
        return None, manifest, "reconstruction complète demandée (--full)"
    if manifest["model"].get("checksum") != checksum or manifest["model"].get("id") != model_id:
        return None, manifest, f"modèle changé ({manifest['model'].get('id')} → {model_id})"
    if manifest.get("chunking") != layout.settings()["chunking"]:
        return None, manifest, "réglages de découpage ou de lecture changés"
    try:
        stored = read_stored(build)
        return {doc: Part(*stored[doc]) for doc in stored}, manifest, ""
    except Exception as exc:  # noqa: BLE001 - a damaged build is not reused, never trusted
        log.warning("Previous build %s cannot be reused (%s): embedding everything again.", build, exc)
        return None, manifest, f"index précédent illisible ({exc})"


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
    `dense`: "auto" (exact search up to qa.index.dense.FLAT_MAX passages, IVF-SQ8 above), "flat" or "ivf".
    `workers` / `ray_address`: read, cut and embed the new files on Ray (a local runtime with that
    many embedding actors, or an existing cluster); needs the `cluster` extra. Same passages, vectors
    within float noise; the index is still assembled and published by this process.
    Raises `CorpusError` when no document is readable.

    Example:
        >>> build_index("corpus", "index").passages
        9
    """
    dense_index.plan(0, dense)  # a bad kind fails before any work
    precision_setting()  # so does a bad QA_DOCUMENT_PRECISION (and here, not inside a Ray actor)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}",
                         "Le nombre de workers (--workers) doit être un entier positif.")
    corpus, root = Path(corpus), Path(index)
    # The lock spans the whole build: a second build waits, then starts from this one's result,
    # so a slow build that read the corpus earlier can never publish over a newer one.
    with layout.build_lock(root):
        if not (workers or ray_address):
            return _build(corpus, root, model=model, full=full, dense=dense, show_progress=show_progress)
        with _distributed().Session(ray_address) as cluster:
            return _build(corpus, root, model=model, full=full, dense=dense, show_progress=show_progress,
                          cluster=cluster, workers=workers or 1)


def _build(corpus: Path, root: Path, *, model: str | None, full: bool, dense: str, show_progress: bool,
           cluster: Any = None, workers: int = 1) -> BuildSummary:
    """One build; `cluster`: a `qa.index.distributed.Session` to read and embed on Ray, or None."""
    t0 = time.perf_counter()
    model_id, _ = resolve_model(model)
    checksum = model_checksum(model)
    previous, manifest, full_reason = previous_build(root, model_id, checksum, full)
    previous_docs = manifest.get("documents", {})
    scan = scan_corpus_against(corpus, previous, manifest if previous is not None else {})
    if scan.todo:  # made (once) before the document model loads: the two peaks of memory do not add up
        prepare_question_encoder(model)
    stage(f"Lecture de {len(scan.todo)} fichier(s) nouveau(x) ou modifié(s)"
          + (f", {len(scan.reused)} inchangé(s) repris de l'index précédent" if scan.reused else "") + "…")
    reads, vectors, sentence_vectors = _read(scan.todo, corpus, root, model, checksum, cluster, workers)
    fresh = _take_reads(scan, reads)
    parts = [part for part in scan.parts if part is not None]
    if not parts:
        raise CorpusError(f"No readable document in {corpus} (supported: .txt, .md, .pdf, .html, .docx).")
    if not any(p.passages for p in parts):
        raise CorpusError(f"No passage could be read from {corpus}.")

    scan.skipped.sort(key=lambda entry: entry["path"])  # one order whichever way each file was found unusable
    new_passages = [p for part in fresh for p in part.passages]
    if new_passages and vectors is None:
        vectors, sentence_vectors = embed_passages(load_model(model), new_passages, show_progress=show_progress)
    if new_passages:
        _distribute(fresh, vectors, sentence_vectors)

    layout.checkpoint("embedded")
    stage("Écriture de l'index…")
    passages = [p for part in parts for p in part.passages]
    all_sentences = np.concatenate([part.sentence_vectors for part in parts])
    plan = dense_index.plan(len(passages), dense)
    on_ray = cluster is not None and cluster.active and plan["type"] != "flat"  # IVF filled in parts on Ray
    final = write_build(
        root, corpus, model_id=model_id, checksum=checksum, documents=[part.doc for part in parts],
        passages=passages, vectors=_all_vectors(parts), sentence_vectors=all_sentences, skipped=scan.skipped,
        dense=plan, locked=True, dense_parts=max(2, workers) if on_ray else 1,
        pool_map=_distributed().ray_map if on_ray else map,
    )
    now = {part.doc["doc"]: part.doc["sha256"] for part in parts}
    return BuildSummary(
        index=final,
        model=model_id,
        documents=len(parts),
        passages=len(passages),
        sentences=len(all_sentences),
        seconds=time.perf_counter() - t0,
        skipped=tuple((s["path"], s["reason"]) for s in scan.skipped),
        added=tuple(d for d in now if d not in previous_docs),
        changed=tuple(d for d in now if d in previous_docs and previous_docs[d].get("sha256") != now[d]),
        removed=tuple(d for d in previous_docs if d not in now),
        reused=tuple(scan.reused),
        full_reason=full_reason,
        embedded_passages=len(new_passages),
        dense=plan["type"],
    )


def _read(todo: list, corpus: Path, root: Path, model: str | None, checksum: str, cluster: Any,
          workers: int) -> tuple[list[ReadResult], np.ndarray | None, np.ndarray | None]:
    """Read and cut the files to read: here, or on Ray (which embeds them too: vectors not None)."""
    if not (todo and cluster is not None):
        return [read_one(path, corpus) for _, _, path, _ in todo], None, None
    distributed = _distributed()
    cluster.ensure()
    shards = distributed.shard_dir(root)
    try:
        return distributed.read_and_embed(
            [path for _, _, path, _ in todo], corpus, shards, model=model, workers=workers, checksum=checksum)
    finally:
        shutil.rmtree(shards, ignore_errors=True)


def _take_reads(scan: Scan, reads: list[ReadResult]) -> list[Part]:
    """Put each file read in its slot, or in the skipped list with its reason; returns the new parts."""
    fresh: list[Part] = []
    for (slot, rel, path, stat), read in zip(scan.todo, reads, strict=True):
        if read.error:
            scan.skipped.append(skip_entry(rel, read.error, read.sha256, path))
            continue
        scan.parts[slot] = Part({**read.doc, **stat}, read.passages)
        fresh.append(scan.parts[slot])
    return fresh


def _all_vectors(parts: list[Part]) -> np.ndarray:
    dim = next(part.vectors.shape[1] for part in parts if part.vectors is not None)
    passages = sum(len(part.passages) for part in parts)
    return np.concatenate([part.vectors for part in parts]) if passages else np.zeros((0, dim), np.float32)


def _distributed():
    """qa.index.distributed, or a clear error when the cluster extra (Ray) is not installed."""
    try:
        import ray  # noqa: F401 - lazy: the cluster extra is optional
    except ImportError as exc:
        raise ClusterUnavailableError("Distributed builds need Ray: pip install -e '.[cluster]'") from exc
    from qa.index import distributed  # lazy: imports Ray's data path, only for distributed builds

    return distributed


def _distribute(parts: list[Part], vectors: np.ndarray, sentence_vectors: np.ndarray) -> None:
    """Hand each new document its rows of the vectors embedded in one batch."""
    p = s = 0
    for part in parts:
        n = len(part.passages)
        m = sum(len(x.sentences) for x in part.passages)
        part.vectors, part.sentence_vectors = vectors[p : p + n], sentence_vectors[s : s + m]
        p, s = p + n, s + m
