"""`Assistant`: what a process loads once for one index, and the faces share.

It holds the loaded build (read and checked once, then reused until a rebuild is published or one of
its files is rewritten) and answers through it: `ask`, `retrieve`, `status`, `document`. The question
encoder and the calibration are the index's model's, loaded once per process by `qa.model` and
`qa.confidence`. `qa.ask` and `qa.retrieve` are conveniences over one default assistant per index
folder (`assistant`), so the CLI, the app and the API answer from the same object.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from qa.answer import Answer, answer
from qa.chunking import Passage
from qa.index import Index, IndexStatus, current, load_index
from qa.index import index_status as read_status
from qa.search import Mode, check_k, check_question, search


class Assistant:
    """The engine over one index folder. Thread-safe: the app's workers share one."""

    def __init__(self, index: str | Path = "index") -> None:
        self.path = Path(index)
        self._index: Index | None = None
        self._lock = threading.Lock()  # one load at a time; questions read the loaded index without it

    @property
    def index(self) -> Index:
        """The live build, loaded once and reloaded after a rebuild (IndexNotFoundError without one)."""
        with self._lock:  # CURRENT is read under the lock: a concurrent rebuild cannot interleave
            build = current(self._index, self.path)
            if build is not None:
                self._index = load_index(self.path, build)
            return self._index

    def ask(
        self, question: str, history: Sequence[str | Mapping] | None = (), *, k: int = 3,
        docs: list[str] | None = None,
    ) -> Answer:
        """Answer `question`, resolving a follow-up with the previous user questions.

        Args:
            question: the question in French.
            history: earlier turns, oldest first: user questions as strings, or chat messages
                (`{"role": "user", "content": ...}`); assistant turns are ignored.
            k: how many passages to return, 1 to 50.
            docs: restrict the search to these document ids.

        Example:
            >>> Assistant("index").ask("Qui a revendiqué les attaques ?").sentence.text[:40]
            'Ces attaques, revendiquées par Jama’at N'
            >>> Assistant("index").ask("Quelle est la hauteur de la tour Eiffel ?").abstained
            True
        """
        question = check_question(question)
        return answer(self.index, question, history, k=check_k(k), docs=docs)

    def retrieve(self, question: str, k: int = 5, *, mode: Mode = "hybrid", docs: list[str] | None = None,
                 ) -> list[Passage]:
        """The `k` passages that best answer `question`, best first; no answer decided.

        mode: "hybrid" (default), or "dense" / "bm25" alone, for comparison.
        """
        question = check_question(question)
        check_k(k)
        if mode not in ("hybrid", "dense", "bm25"):
            raise ValueError(f"mode must be 'hybrid', 'dense' or 'bm25', got {mode!r}")
        return search(self.index, question, k, mode=mode, docs=docs)

    def status(self, corpus: str | Path | None = None) -> IndexStatus:
        """The live build and its freshness against `corpus` (default: the folder it was built from),
        from its manifest and checksums: never loads vectors, so it answers for a damaged build too."""
        return read_status(self.path, corpus)

    def document_ids(self) -> tuple[str, ...]:
        """Every document of the live build: what a document filter may name."""
        return self.index.document_ids()

    def document(self, doc: str) -> dict[str, str] | None:
        """A document's full text as indexed (`{"doc", "title", "text"}`), for the source viewer."""
        return self.index.documents().get(doc)

    def headings(self, doc: str) -> frozenset[str]:
        """The section headings of one document (its passages' sections), for the source viewer."""
        return frozenset(p.section for p in self.index.passages if p.doc == doc and p.section)


_assistants: dict[Path, Assistant] = {}
_assistants_lock = threading.Lock()


def assistant(index: str | Path = "index") -> Assistant:
    """The process's assistant for an index folder, made on first use: the faces share it."""
    key = Path(index).absolute()
    with _assistants_lock:
        if key not in _assistants:
            _assistants[key] = Assistant(index)
        return _assistants[key]


def ask(question: str, history: Sequence[str | Mapping] | None = (), *, k: int = 3, index: str | Path = "index",
        docs: list[str] | None = None) -> Answer:
    """`Assistant.ask` on the default assistant of `index`."""
    return assistant(index).ask(question, history, k=k, docs=docs)


def retrieve(question: str, k: int = 5, *, index: str | Path = "index", mode: Mode = "hybrid",
             docs: list[str] | None = None) -> list[Passage]:
    """`Assistant.retrieve` on the default assistant of `index`.

    Example:
        >>> retrieve("Qui a revendiqué les attaques ?", k=1)[0].section
        'Introduction : une escalade djihadiste dans plusieurs régions maliennes'
    """
    return assistant(index).retrieve(question, k, mode=mode, docs=docs)
