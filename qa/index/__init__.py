"""Vectors ↔ disk: the index folder, its builds, and loading them.

In pipeline order: `layout` (the folder, a build's files and their checksums), `dense` (FAISS),
`status` (a build against the corpus on disk, and what the faces show), `writer` and `loader`,
`ingest` (one file in), `build` (the orchestrator, with what it reuses of the previous build) and
`distributed` (its Ray path, imported only for it).
"""

from qa.index.build import BuildSummary, build_index
from qa.index.loader import Index, current, load_index
from qa.index.status import DocumentStatus, Freshness, IndexStatus, built_corpus, check_freshness, index_status

__all__ = ["BuildSummary", "DocumentStatus", "Freshness", "Index", "IndexStatus", "build_index",
           "built_corpus", "check_freshness", "current", "index_status", "load_index"]
