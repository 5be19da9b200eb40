"""Read a file into a `Document`: its text, title, headings and paragraphs, all as offsets.

Readers never copy or rewrite text: every span points into `Document.text`, so a citation can
always be found verbatim in what was read. Supported now: `.txt` and `.md` (UTF-8).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import CorpusError

SUFFIXES = (".txt", ".md")
MAX_FILE_BYTES = 20_000_000  # larger text files are almost always dumps, not reports
MAX_HEADING_CHARS = 150
_FINAL_PUNCTUATION = ".!?…;:,"
_MD_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s")


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
    """A file as read: `doc_id` is its path relative to the corpus folder, with `/` separators."""

    doc_id: str
    title: str
    text: str
    headings: tuple[Heading, ...] = ()
    paragraphs: tuple[Span, ...] = ()
    sha256: str = field(default="", compare=False)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iter_corpus_files(corpus: Path) -> list[Path]:
    """Supported files under `corpus`, sorted; hidden ones and the corpus's own README left out."""
    if not corpus.is_dir():
        raise CorpusError(f"Corpus folder not found: {corpus}")
    files = []
    for path in sorted(corpus.rglob("*")):
        rel = path.relative_to(corpus)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in SUFFIXES and rel.as_posix().lower() != "readme.md":
            files.append(path)
    return files


def read_document(path: Path, corpus: Path) -> Document:
    """Read one supported file. Raises `ValueError` for a file that cannot be used."""
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    if "\x00" in text:
        raise ValueError(f"{path}: binary content")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError(f"{path}: empty")
    doc_id = path.relative_to(corpus).as_posix()
    parse = _parse_markdown if path.suffix.lower() == ".md" else _parse_text
    title, headings, paragraphs = parse(text)
    return Document(
        doc_id=doc_id,
        title=title or _title_from_name(path),
        text=text,
        headings=tuple(headings),
        paragraphs=tuple(paragraphs),
        sha256=content_hash(data),
    )


def _title_from_name(path: Path) -> str:
    name = re.sub(r"[-_]+", " ", path.stem).strip()
    return name[:1].upper() + name[1:]


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
        if after is not None and after[1] == after[0] and line[-1] not in _FINAL_PUNCTUATION and len(line) <= MAX_HEADING_CHARS:
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
    """Markdown: `#` headings; paragraphs are blocks between blank lines; front matter skipped."""
    lines = _lines(text)
    start_line = 0
    if text.startswith("---\n"):
        for i in range(1, len(lines)):
            if text[lines[i][0] : lines[i][1]] == "---":
                start_line = i + 1
                break
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
        if line.lstrip().startswith("```"):
            fence = not fence
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
        else:
            s2 = s + len(line) - len(line.lstrip())
            if s2 < e:
                block.append((s2, e))
    close()
    return title, headings, paragraphs
