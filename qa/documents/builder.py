"""Assemble extracted text (PDF, HTML, DOCX) block by block, recording every span as it is written.

The text a reader extracts is built here, so headings, paragraphs and page starts are offsets into
exactly the string that is stored and shown: `text[start:end]` is the cited text by construction.
"""

from __future__ import annotations

import re

from qa.documents.document import Document, Heading, Span, Unreadable, content_hash

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u3000]+")


def clean_inline(text: str) -> str:
    """One line of running text: whitespace runs collapsed, soft hyphens and NULs dropped."""
    text = text.replace("\u00ad", "").replace("\x00", "")
    return _SPACES.sub(" ", text.replace("\n", " ").replace("\r", " ")).strip()


def table_rows(rows: list[list[str]], header: bool | None = None) -> list[str]:
    """Each data row as one line of text, its cells labelled by the header row when there is one:
    "Ville : Kayes | Victimes : 12" is a row a question can match; "Kayes | 12" is not.
    `header=None` takes a first row with no figures in it for a header."""
    rows = [[clean_inline(c) for c in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if header is None:
        header = len(rows) >= 2 and all(c and not any(ch.isdigit() for ch in c) for c in rows[0])
    if not header or len(rows) < 2:
        return [" | ".join(c for c in row if c) for row in rows]
    names = rows[0]
    out = []
    for row in rows[1:]:
        cells = [f"{names[i]} : {c}" if i < len(names) and names[i] else c for i, c in enumerate(row) if c]
        out.append(" | ".join(cells))
    return out


class TextBuilder:
    """Blocks separated by a blank line; page starts marked as the text grows."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.headings: list[Heading] = []
        self.paragraphs: list[Span] = []
        self.pages: list[int] = []

    def _open_block(self) -> int:
        if self._length:
            self._write("\n\n")
        return self._length

    def _write(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)

    def start_page(self) -> None:
        """The next text written belongs to a new page (mid-paragraph when a paragraph is being written)."""
        self.pages.append(self._length if self._in_paragraph or not self._length else self._length + 2)

    _in_paragraph = False

    def title(self, text: str) -> None:
        """The document's title line: written first, neither a heading nor a paragraph."""
        self._open_block()
        self._write(clean_inline(text))

    def heading(self, text: str, level: int = 1) -> None:
        text = clean_inline(text)
        if text:
            start = self._open_block()
            self._write(text)
            self.headings.append(Heading(start, self._length, text, level))

    def paragraph(self, text: str) -> None:
        text = clean_inline(text)
        if text:
            start = self._open_block()
            self._write(text)
            self.paragraphs.append(Span(start, self._length))

    def paragraph_lines(self, lines: list[tuple[int, str]], joiners: list[str], mark=None) -> None:
        """A paragraph from (page, line) pairs; joiners[i] goes between lines i and i+1 ("\x00": the
        line ends with a cut word's hyphen, removed and joined without a space). `mark(page)` is
        called when a line starts a new page, so page starts fall inside the paragraph."""
        raw = [t.rstrip() for _, t in lines]
        for i, joiner in enumerate(joiners):
            if joiner == "\x00":
                raw[i] = raw[i][:-1]  # the hyphen (or soft hyphen) that cut the word
        texts = [clean_inline(t) for t in raw]
        start = self._open_block()
        self._in_paragraph = True
        try:
            for i, ((page, _), text) in enumerate(zip(lines, texts, strict=True)):
                if i:
                    if mark is not None and page != lines[i - 1][0]:
                        mark(page)
                    self._write("" if joiners[i - 1] == "\x00" else joiners[i - 1])
                self._write(text)
        finally:
            self._in_paragraph = False
        if self._length > start:
            self.paragraphs.append(Span(start, self._length))

    def document(self, doc_id: str, title: str, data: bytes) -> Document:
        if not self.paragraphs:
            raise Unreadable("aucun texte lisible (document scanné ou vide ?)")
        text = "".join(self._parts) + "\n"
        pages = self.pages
        return Document(doc_id, title, text, tuple(self.headings), tuple(self.paragraphs), content_hash(data),
                        tuple(min(p, len(text)) for p in pages))


_HYPHEN_CUT_RE = re.compile(r"([^\W\d_]+)[-\u00ad\u2010]$")  # letters of any script: œil-, sœur-
# Left parts of French compounds a line break may fall after: their hyphen is kept ("sous-" + "préfecture").
COMPOUND_PREFIXES = frozenset(
    "anti après arrière avant auto bas basse belle beau cent chef contre demi deux dix entre ex grand grande "
    "haut haute hors mi mille néo non petit petite porte post pré quatre semi sous sud nord est ouest "
    "soixante sans super trois tout vice vingt".split())


_COMPOUND_RE = re.compile(r"[^\W\d_]+(?:[-\u2010][^\W\d_]+)+")
_LETTERS_RE = re.compile(r"[^\W\d_]*")


def compounds(text: str) -> frozenset[str]:
    """Every pair of word parts joined by a hyphen in `text`, lower-cased ("c'est-à-dire" gives
    "est-à" and "à-dire"): read once per document, so checking a cut word is a set lookup, not a
    search of the whole text per line (which made a PDF of many hyphenated lines quadratic)."""
    pairs = set()
    for match in _COMPOUND_RE.finditer(text.lower()):
        parts = re.split(r"[-\u2010]", match.group())
        pairs.update(f"{a}-{b}" for a, b in zip(parts, parts[1:], strict=False))
    return frozenset(pairs)


def joiners(lines: list[str], known: frozenset[str] = frozenset()) -> list[str]:
    """What goes between consecutive lines of a paragraph (PDF lines, as laid out): a space; "" after
    a real compound's hyphen ("sous-" + "préfecture": a known prefix, or a pair of `compounds` written
    elsewhere in the document); "\\x00" after a word cut by a hyphen or a soft hyphen, which
    `paragraph_lines` removes ("uti-" + "lisé")."""
    out = []
    for prev, line in zip(lines, lines[1:], strict=False):
        cut = _HYPHEN_CUT_RE.search(prev)
        if not cut or not line[:1].islower():
            out.append(" ")
            continue
        left, right = cut.group(1), _LETTERS_RE.match(line).group()  # a word as `compounds` reads one
        compound = prev.endswith(("-", "\u2010")) and (
            left.lower() in COMPOUND_PREFIXES or f"{left}-{right}".lower() in known)
        out.append("" if compound else "\x00")
    return out

