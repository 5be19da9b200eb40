"""Vectors ↔ disk: the index folder, its builds, and loading them.

In pipeline order: `layout` (the folder and a build's files), `dense` (FAISS), `freshness` (a build
against the corpus on disk), `writer` and `loader`, `status` (what the faces show), `ingest` (one
file in), `build` (the orchestrator) and `distributed` (its Ray path, imported only for it).
"""

from qa.index.build import BuildSummary, build_index
from qa.index.freshness import Freshness, built_corpus, check_freshness
from qa.index.loader import Index, load_index, read_documents
from qa.index.status import DocumentStatus, IndexStatus, index_status

__all__ = [
    "BuildSummary", "DocumentStatus", "Freshness", "Index", "IndexStatus", "build_index",
    "built_corpus", "check_freshness", "index_status", "load_index", "read_documents",
]
