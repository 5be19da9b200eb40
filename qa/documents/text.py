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
                text = None
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
    text = decode(data)
    title, headings, paragraphs = _parse_text(text)
    return Document(doc_id, title or title_from_name(path), text, tuple(headings), tuple(paragraphs),
                    content_hash(data))


def read_markdown_file(data: bytes, doc_id: str, path: Path) -> Document:
    text = decode(data)
    title, headings, paragraphs = _parse_markdown(text)
    return Document(doc_id, title or title_from_name(path), text, tuple(headings), tuple(paragraphs),
                    content_hash(data))


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line, newline excluded, trailing spaces trimmed."""
    spans, pos = [], 0
    for line in text.split("\n"):
        end = pos + len(line.rstrip())
        spans.append((pos, end))
        pos += len(line) + 1
    return spans


def _is_text_heading(line: str, next_line: str | None) -> bool:
    """A short line without final punctuation, followed by a line that opens a paragraph."""
    line = line.strip()
    return (
        bool(line)
        and len(line) <= MAX_HEADING_CHARS
        and line[-1] not in _FINAL_PUNCTUATION
        and not _LIST_MARKER_RE.match(line)
        and (line[0].isupper() or line[0].isdigit())
        and next_line is not None
        and _starts_block(next_line.strip())
    )


def _starts_block(line: str) -> bool:
    """Text that opens a paragraph (a wrapped line's continuation usually starts in lower case)."""
    return bool(line) and (line[0].isupper() or line[0].isdigit() or line[0] in "«\"“—–-(")


def _parse_text(text: str) -> tuple[str, list[Heading], list[Span]]:
    """Plain text: one paragraph per line, except lines that stop mid-sentence (hard wrapping).

    A first line set apart by a blank line is the document title, not a section heading.
    """
    lines = _lines(text)
    title = ""
    first = next((i for i, (s, e) in enumerate(lines) if e > s), None)
    if first is not None:
        s, e = lines[first]
        after = lines[first + 1] if first + 1 < len(lines) else None
        line = text[s:e].strip()
        if (after is not None and after[1] == after[0] and line[-1] not in _FINAL_PUNCTUATION
                and len(line) <= MAX_HEADING_CHARS):
            title = line
            lines = lines[first + 1 :]
    headings: list[Heading] = []
    paragraphs: list[Span] = []
    open_start: int | None = None
    open_end = 0
    nonblank = [(s, e) for s, e in lines if text[s:e].strip()]
    following = {nonblank[i]: nonblank[i + 1] if i + 1 < len(nonblank) else None for i in range(len(nonblank))}
    for i, (s, e) in enumerate(lines):
        blank = not text[s:e].strip()
        if blank or _is_text_heading(text[s:e], _next_text(text, lines, i)):
            if open_start is not None:
                paragraphs.append(Span(open_start, open_end))
                open_start = None
            if not blank:
                s2 = s + len(text[s:e]) - len(text[s:e].lstrip())
                headings.append(Heading(s2, e, text[s2:e]))
            continue
        s2 = s + len(text[s:e]) - len(text[s:e].lstrip())
        if open_start is None:
            open_start = s2
        open_end = e
        if text[s:e].rstrip()[-1] in ".!?…»\"”:)" or following.get((s, e)) is None:
            paragraphs.append(Span(open_start, open_end))
            open_start = None
    if open_start is not None:
        paragraphs.append(Span(open_start, open_end))
    return title, headings, paragraphs


def _next_text(text: str, lines: list[tuple[int, int]], i: int) -> str | None:
    """The line right after line i, or None at the end (a heading must be followed by text)."""
    return text[lines[i + 1][0] : lines[i + 1][1]] if i + 1 < len(lines) else None


def _parse_markdown(text: str) -> tuple[str, list[Heading], list[Span]]:
    """Markdown: `#` headings; paragraphs are blocks between blank lines; a list stays one block
    (its items are lines of it); each table row is its own paragraph, rule rows left out; code
    fence markers left out; YAML front matter skipped (its `title:` used as the title)."""
    lines = _lines(text)
    start_line = 0
    title = ""
    if text.startswith("---\n"):
        for i in range(1, len(lines)):
            line = text[lines[i][0] : lines[i][1]]
            if line in ("---", "..."):
                start_line = i + 1
                break
            if not title and (m := _FRONT_TITLE_RE.match(line)):
                title = m.group(1).strip()
        else:
            title = ""
    headings: list[Heading] = []
    paragraphs: list[Span] = []
    block: list[tuple[int, int]] = []
    fence = False

    def close() -> None:
        if block:
            paragraphs.append(Span(block[0][0], block[-1][1]))
            block.clear()

    for s, e in lines[start_line:]:
        line = text[s:e]
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            close()
            continue
        m = None if fence else _MD_HEADING_RE.match(line)
        if m:
            close()
            hs = s + m.start(2)
            he = s + m.end(2)
            level = len(m.group(1))
            headings.append(Heading(hs, he, text[hs:he], level))
            if level == 1 and not title:
                title = text[hs:he]
        elif not line.strip() and not fence:
            close()
        elif not fence and line.lstrip().startswith("|"):
            close()
            if not _TABLE_RULE_RE.match(line):
                s2 = s + len(line) - len(line.lstrip())
                paragraphs.append(Span(s2, e))
        else:
            s2 = s + len(line) - len(line.lstrip())
            if s2 < e:
                block.append((s2, e))
    close()
    return title, headings, paragraphs
