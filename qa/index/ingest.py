"""One corpus file in: read and cut into passages, or skipped with a French reason. Both build paths
(`qa.index.build`, Ray tasks in `qa.index.distributed`) call it, so both give the same documents,
passages and skip reasons; apart from the orchestrator, so a Ray worker imports only what reading needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.chunking import Passage, chunk_document
from qa.documents import Document, Unreadable, content_hash, read_bytes, read_in_worker
from qa.index.status import file_hash, stat_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadResult:
    """One file read and cut into passages, or the French reason it was skipped (plain data: Ray returns it)."""

    sha256: str
    doc: dict[str, Any] | None = None  # documents.jsonl row (without the file's stat)
    passages: list[Passage] | None = None
    error: str = ""


def read_one(path: Path, corpus: Path) -> ReadResult:
    """The one way a file becomes a document row and passages, on both build paths; never raises for
    a bad file (its reason comes back instead), so one bad file never stops a build. The file is read
    in a worker process, under a time budget and a memory cap (`qa.documents.read_in_worker`)."""
    try:
        data = read_bytes(path)
    except (OSError, Unreadable) as exc:
        return ReadResult(file_hash(path), error=skip_reason(exc))  # the hash freshness compares: unchanged stays fresh
    sha = content_hash(data)
    try:
        doc = read_in_worker(path, corpus, data)
    except (ValueError, OSError) as exc:
        return ReadResult(sha, error=skip_reason(exc))
    return ReadResult(sha, document_row(doc), chunk_document(doc))


def document_row(doc: Document) -> dict[str, Any]:
    """The documents.jsonl row of a document: what the source viewer and incremental builds read back."""
    row: dict[str, Any] = {"doc": doc.doc_id, "title": doc.title, "sha256": doc.sha256, "text": doc.text}
    if doc.pages:
        row["pages"] = list(doc.pages)
    return row


def skip_reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ValueError) else f"lecture impossible ({exc.strerror or exc})"


def skip_entry(rel: str, reason: str, sha: str, path: Path | None) -> dict[str, Any]:
    """The manifest entry of a skipped file: its reason, and its hash and stat for freshness checks
    (`path` None: a link or a folder the corpus scan left out, neither hashed nor stat'ed)."""
    log.warning("Skipping %s: %s", rel, reason)
    try:
        stat = stat_record(path) if path is not None else {}
    except OSError:
        stat = {}
    return {"path": rel, "reason": reason, "sha256": sha, **stat}
