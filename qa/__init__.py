"""French question answering over reports, with verbatim citations.

The public face: build an index of a folder of reports, then ask it questions through an `Assistant`
(or the `ask` / `retrieve` conveniences over the default one).
Heavy libraries (torch, faiss, sentence-transformers) load on first use, not on import.
"""

from __future__ import annotations

from qa.answer import NO_ANSWER, Answer
from qa.assistant import Assistant, ask, assistant, retrieve
from qa.chunking import Passage, Sentence
from qa.errors import (
    CorpusError,
    IndexCorruptError,
    IndexModelMismatchError,
    IndexNotFoundError,
    IndexVersionError,
    ModelUnavailableError,
    QAError,
    french_message,
)
from qa.index import BuildSummary, Freshness, IndexStatus, build_index, built_corpus, check_freshness, index_status
from qa.search import MAX_K, MAX_QUESTION_CHARS, check_question, is_text

__version__ = "0.1.0"

__all__ = [
    "NO_ANSWER",
    "MAX_K",
    "MAX_QUESTION_CHARS",
    "Answer",
    "Assistant",
    "BuildSummary",
    "CorpusError",
    "Freshness",
    "IndexCorruptError",
    "IndexModelMismatchError",
    "IndexNotFoundError",
    "IndexStatus",
    "IndexVersionError",
    "ModelUnavailableError",
    "Passage",
    "QAError",
    "Sentence",
    "__version__",
    "ask",
    "assistant",
    "build_index",
    "built_corpus",
    "check_question",
    "check_freshness",
    "french_message",
    "index_status",
    "is_text",
    "retrieve",
]
