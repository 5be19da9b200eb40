"""What every reader returns: a `Document`, its headings and paragraphs as offsets into its text.

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
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset))


class Unreadable(ValueError):
    """A file a reader refuses, with the French reason shown in the build summary."""


def content_hash(data: bytes) -> str:
    """sha256 of bytes already read: equal to `qa.files.file_sha256` of the file they came from."""
    return hashlib.sha256(data).hexdigest()


def title_from_name(path: Path) -> str:
    """A title made from a file name, for documents that state none: «rapport-sahel_2025» -> «Rapport sahel 2025»."""
    name = re.sub(r"[-_]+", " ", path.stem).strip()
    return name[:1].upper() + name[1:]
