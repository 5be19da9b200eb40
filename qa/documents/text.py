"""Plain text and Markdown: the file's own text is the document text, so offsets are into the file
(after decoding and turning CRLF into LF).

Encodings: UTF-8 (with or without BOM), UTF-16 with a BOM, then Windows-1252 (what French reports
saved on Windows use; it covers latin-1's letters); charset-normalizer only when none fits (see
`decode`).
"""

from __future__ import annotations

import re
from pathlib import Path

from qa.documents.document import MAX_HEADING_CHARS, Document, Heading, Span, Unreadable, content_hash, title_from_name

_FINAL_PUNCTUATION = ".!?…;:,"
_MD_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s")
_TABLE_RULE_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_FRONT_TITLE_RE = re.compile(r"^title\s*:\s*[\"']?(.+?)[\"']?\s*$", re.IGNORECASE)


def decode(data: bytes) -> str:
    """Text of a file, with LF line ends: UTF-8 (BOM dropped); UTF-16 (BOM, or NUL bytes); else
    Windows-1252, the encoding of French text saved on Windows (a superset of latin-1's letters),
    unless it leaves undefined bytes; only then charset-normalizer's guess, which on short French
    text confuses cp1252 with other code pages (cp1250, cp1257), hence last."""
    text = None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16", errors="replace")
        elif b"\x00" not in data:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                pass
    if text is None:
        from charset_normalizer import from_bytes  # lazy: a heavy library, loaded on first use

        best = from_bytes(data).best()
        if best is None:
            raise Unreadable("contenu binaire ou encodage inconnu") from None
        text = str(best)
    if "\x00" in text:
        raise Unreadable("contenu binaire")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise Unreadable("fichier vide")
    return text


def read_text_file(data: bytes, doc_id: str, path: Path) -> Document:
    """.txt and .text; .md and .markdown as Markdown."""
    text = decode(data)
    parse = _parse_markdown if path.suffix.lower() in (".md", ".markdown") else _parse_text
    title, headings, paragraphs = parse(text)
    return Document(doc_id, title or title_from_name(path), text, tuple(headings), tuple(paragraphs),
                    content_hash(data))


def _lines(text: str) -> list[tuple[int, int, int]]:
    """(start, start after the leading spaces, end) of each line, newline excluded, trailing spaces
    trimmed: a blank line has its second and third equal."""
    spans, pos = [], 0
    for line in text.split("\n"):
        end = pos + len(line.rstrip())
        spans.append((pos, end - len(line.strip()), end))
        pos += len(line) + 1
    return spans


def _is_text_heading(line: str, next_line: str | None) -> bool:
    """A short line without final punctuation, followed by a line that opens a paragraph (a wrapped
    line's continuation usually starts in lower case)."""
    line, after = line.strip(), (next_line or "").strip()
    return (bool(line) and len(line) <= MAX_HEADING_CHARS and line[-1] not in _FINAL_PUNCTUATION
            and not _LIST_MARKER_RE.match(line) and (line[0].isupper() or line[0].isdigit())
            and bool(after) and (after[0].isupper() or after[0].isdigit() or after[0] in "«\"“—–-("))


def _parse_text(text: str) -> tuple[str, list[Heading], list[Span]]:
    """Plain text: one paragraph per line, except lines that stop mid-sentence (hard wrapping).

    A first line set apart by a blank line is the document title, not a section heading.
    """
    lines = [(i, e) for _, i, e in _lines(text)]
    title = ""
    first = next((n for n, (i, e) in enumerate(lines) if e > i), None)
    if first is not None and first + 1 < len(lines) and lines[first + 1][0] == lines[first + 1][1]:
        line = text[slice(*lines[first])]
        if line[-1] not in _FINAL_PUNCTUATION and len(line) <= MAX_HEADING_CHARS:
            title, lines = line, lines[first + 1 :]
    last = max((n for n, (i, e) in enumerate(lines) if e > i), default=-1)
    headings: list[Heading] = []
    paragraphs: list[Span] = []
    open_start: int | None = None
    open_end = 0
    for n, (i, e) in enumerate(lines):
        if i == e or _is_text_heading(text[i:e], text[slice(*lines[n + 1])] if n + 1 < len(lines) else None):
            if open_start is not None:
                paragraphs.append(Span(open_start, open_end))
                open_start = None
            if i < e:
                headings.append(Heading(i, e, text[i:e]))
            continue
        open_start = i if open_start is None else open_start
        open_end = e
        if text[e - 1] in ".!?…»\"”:)" or n == last:
            paragraphs.append(Span(open_start, open_end))
            open_start = None
    return title, headings, paragraphs


def _parse_markdown(text: str) -> tuple[str, list[Heading], list[Span]]:
    """Markdown: `#` headings; paragraphs are blocks between blank lines; a list stays one block
    (its items are lines of it); each table row is its own paragraph, rule rows left out; code
    fence markers left out; YAML front matter skipped (its `title:` used as the title)."""
    lines = _lines(text)
    start_line = 0
    title = ""
    if text.startswith("---\n"):
        for n in range(1, len(lines)):
            line = text[lines[n][0] : lines[n][2]]
            if line in ("---", "..."):
                start_line = n + 1
                break
            if not title and (m := _FRONT_TITLE_RE.match(line)):
                title = m.group(1).strip()
        else:
            title = ""  # never closed: not front matter
    headings: list[Heading] = []
    paragraphs: list[Span] = []
    block: list[tuple[int, int]] = []
    fence = False

    def close() -> None:
        if block:
            paragraphs.append(Span(block[0][0], block[-1][1]))
            block.clear()

    for s, i, e in lines[start_line:]:
        line = text[i:e]
        if line.startswith(("```", "~~~")):
            fence = not fence
            close()
        elif not fence and (m := _MD_HEADING_RE.match(text[s:e])):
            close()
            level = len(m.group(1))
            headings.append(Heading(s + m.start(2), s + m.end(2), m.group(2), level))
            title = title or (m.group(2) if level == 1 else "")
        elif not fence and not line:
            close()
        elif not fence and line.startswith("|"):
            close()
            if not _TABLE_RULE_RE.match(line):
                paragraphs.append(Span(i, e))
        elif line:
            block.append((i, e))
    close()
    return title, headings, paragraphs
