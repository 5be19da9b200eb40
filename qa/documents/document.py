"""What every reader returns, a `Document` whose headings, paragraphs and pages are offsets into its
text, and the `TextBuilder` that the PDF, HTML and Word readers write that text with: each span is
recorded as it is written, so `text[start:end]` is the cited text by construction.

Apart from the readers' dispatch (`qa.documents`), so that each reader imports the types it fills
without importing the package that imports it.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_HEADING_CHARS = 150  # a longer line is a paragraph, whatever its font or its lack of final punctuation
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u3000]+")


@dataclass(frozen=True)
class Span:
    """A stretch of the document text: `text[start:end]`."""

    start: int
    end: int


@dataclass(frozen=True)
class Heading:
    start: int
    end: int
    text: str
    level: int = 1


@dataclass(frozen=True)
class Document:
    """A file as read: `doc_id` is its path relative to the corpus folder, with `/` separators.

    `pages` holds the offset where each page starts (PDF only): page n starts at `pages[n - 1]`.
    """

    doc_id: str
    title: str
    text: str
    headings: tuple[Heading, ...] = ()
    paragraphs: tuple[Span, ...] = ()
    sha256: str = field(default="", compare=False)
    pages: tuple[int, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The page number (from 1) holding `offset`, or None for formats without pages."""
        return max(1, bisect.bisect_right(self.pages, offset)) if self.pages else None


class Unreadable(ValueError):
    """A file a reader refuses, with the French reason shown in the build summary."""


def content_hash(data: bytes) -> str:
    """sha256 of bytes already read: equal to `qa.files.file_sha256` of the file they came from."""
    return hashlib.sha256(data).hexdigest()


def title_from_name(path: Path) -> str:
    """A title made from a file name, for documents that state none: «rapport-sahel_2025» -> «Rapport sahel 2025»."""
    name = re.sub(r"[-_]+", " ", path.stem).strip()
    return name[:1].upper() + name[1:]


def clean_inline(text: str) -> str:
    """One line of running text: whitespace runs collapsed, soft hyphens and NULs dropped."""
    text = text.replace("\u00ad", "").replace("\x00", "")
    return _SPACES.sub(" ", text.replace("\n", " ").replace("\r", " ")).strip()


def table_rows(rows: list[list[str]], header: bool | None = None) -> list[str]:
    """Each data row as one line of text, its cells labelled by the header row when there is one:
    "Ville : Kayes | Victimes : 12" is a row a question can match; "Kayes | 12" is not.
    `header=None` takes a first row with no figures in it for a header."""
    rows = [row for row in ([clean_inline(c) for c in row] for row in rows) if any(row)]
    if header is None:
        header = len(rows) >= 2 and all(c and not any(ch.isdigit() for ch in c) for c in rows[0])
    if not header or len(rows) < 2:
        return [" | ".join(c for c in row if c) for row in rows]
    names = rows[0]
    return [" | ".join(f"{names[i]} : {c}" if i < len(names) and names[i] else c for i, c in enumerate(row) if c)
            for row in rows[1:]]


class TextBuilder:
    """Blocks separated by a blank line, after the document's title line (neither a heading nor a
    paragraph); page starts marked as the text grows."""

    def __init__(self, title: str = "") -> None:
        self._parts: list[str] = []
        self._length = 0
        self.headings: list[Heading] = []
        self.paragraphs: list[Span] = []
        self.pages: list[int] = []
        if title:
            self._block(clean_inline(title))

    def _block(self, text: str) -> int:
        """Write `text` as a new block; returns where it starts."""
        if self._length:
            self._parts.append("\n\n")
            self._length += 2
        self._parts.append(text)
        self._length += len(text)
        return self._length - len(text)

    def start_page(self) -> None:
        """The next block written begins a new page."""
        self.pages.append(self._length + 2 if self._length else 0)

    def heading(self, text: str, level: int = 1) -> None:
        if text := clean_inline(text):
            self.headings.append(Heading(self._block(text), self._length, text, level))

    def paragraph(self, text: str, breaks: list[int] | tuple[int, ...] = ()) -> None:
        """A paragraph of running text; `breaks` are the offsets into it (already clean) where a new
        page begins, for a paragraph that runs on from one page to the next."""
        if text := clean_inline(text):
            start = self._block(text)
            self.paragraphs.append(Span(start, self._length))
            self.pages += [start + b for b in breaks]

    def document(self, doc_id: str, title: str, data: bytes) -> Document:
        if not self.paragraphs:
            raise Unreadable("aucun texte lisible (document scanné ou vide ?)")
        text = "".join(self._parts) + "\n"
        return Document(doc_id, title, text, tuple(self.headings), tuple(self.paragraphs), content_hash(data),
                        tuple(min(p, len(text)) for p in self.pages))
