"""What the previous build offers a new one: its documents, reused when their files are unchanged.

A document whose bytes, model and chunking settings are unchanged since the live build keeps its
passages and vectors (read back from that build once every file of it matches its checksum); a
damaged build is taken out and never reused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.chunking import IndexedPassage
from qa.documents import scan_corpus
from qa.errors import IndexCorruptError, IndexNotFoundError, IndexVersionError
from qa.index import layout
from qa.index.freshness import file_hash, stat_record, unchanged
from qa.index.ingest import skip_entry, skip_reason
from qa.index.loader import checked_build, read_stored

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One document's share of a build: its row, passages and vectors (new or reused)."""

    doc: dict[str, Any]  # documents.jsonl row: doc, title, sha256, text, pages
    passages: list[IndexedPassage]
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
