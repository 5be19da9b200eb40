"""PDF with pypdf: lines with their font size and height on the page, rebuilt into headings and
whole paragraphs, with the page where each starts.

- Lines come from pypdf's text visitor, which gives each run's font, size and position.
- Running headers and footers (the same line, digits aside, at the top or bottom of most pages)
  and bare page numbers are dropped.
- Headings are short lines set in a larger font than the body (or all bold), without final
  punctuation; the largest one on page 1 is the title.
- Lines are joined into paragraphs, across page breaks when a sentence runs on; a word cut by a
  hyphen at a line end is joined back ("uti-" + "lisé" -> "utilisé"), a compound's hyphen is kept
  ("sous-" + "préfecture").
A scanned PDF has no text layer: it is skipped with a reason (no OCR here).
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader

from qa.documents.document import MAX_HEADING_CHARS, Document, TextBuilder, Unreadable, clean_inline, title_from_name

MARGIN = 0.09  # top and bottom share of the page where running headers and footers live
HEADING_RATIO = 1.15  # a heading's font is at least this much larger than the body's
_PAGE_NUMBER_RE = re.compile(r"^(page|p\.)?\s*\d{1,4}(\s*(/|sur|de|of)\s*\d{1,4})?$", re.IGNORECASE)
_END_RE = re.compile(r"[.!?…»\"”)\]:]$")
_LIST_RE = re.compile(r"^([-–—•▪◦*]|\d{1,2}[.)])\s")
_HYPHEN_CUT_RE = re.compile(r"([^\W\d_]+)[-\u00ad\u2010]$")  # letters of any script: œil-, sœur-
_COMPOUND_RE = re.compile(r"[^\W\d_]+(?:[-\u2010][^\W\d_]+)+")
_LETTERS_RE = re.compile(r"[^\W\d_]*")
_DIGITS = re.compile(r"\d+")
# Left parts of French compounds a line break may fall after: their hyphen is kept ("sous-" + "préfecture").
COMPOUND_PREFIXES = frozenset(
    "anti après arrière avant auto bas basse belle beau cent chef contre demi deux dix entre ex grand grande "
    "haut haute hors mi mille néo non petit petite porte post pré quatre semi sous sud nord est ouest "
    "soixante sans super trois tout vice vingt".split())


@dataclass(frozen=True)
class Body:
    """The body text's font size and the length of one of its full lines (90th percentile)."""

    size: float
    full: int


@dataclass
class Line:
    text: str
    y: float | None  # height on the page as a share of the page (0 bottom, 1 top), None when unknown
    size: float
    bold: bool
    page: int  # from 1
    page_height: float = 0.0  # points


def read_pdf(data: bytes, doc_id: str, path: Path) -> Document:
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise Unreadable("PDF protégé par un mot de passe")
    pages = [_page_lines(page, n) for n, page in enumerate(reader.pages, start=1)]
    if not any(pages):
        raise Unreadable("PDF sans texte (document scanné ? pas de reconnaissance de caractères ici)")
    lines = _drop_running_lines(pages)
    body = _body_size(lines)
    lines = _merge_wrapped_headings(lines, body)
    title = _title(lines, body) or _metadata_title(reader) or ""
    builder = TextBuilder(title)
    _write_blocks(builder, lines, body, title, len(reader.pages))
    return builder.document(doc_id, title or title_from_name(path), data)


def _page_lines(page, number: int) -> list[Line]:
    """The page's lines in pypdf's reading order, each with its dominant font size and boldness."""
    height = float(page.mediabox.height or 0)
    lines: list[Line] = []
    chars: list[str] = []
    weights: Counter = Counter()  # characters by font size
    bold_chars = 0
    first_y: float | None = None

    def flush() -> None:
        nonlocal chars, weights, bold_chars, first_y
        raw = "".join(chars).rstrip()
        # a soft hyphen ending a line cuts a word
        text = clean_inline(raw) + ("\u00ad" if raw.endswith("\u00ad") else "")
        if text:
            size = weights.most_common(1)[0][0] if weights else 0.0
            y = first_y / height if first_y is not None and height else None
            lines.append(Line(text, y, size, bold_chars >= 0.8 * sum(weights.values()), number, height))
        chars, weights, bold_chars, first_y = [], Counter(), 0, None

    def visit(text, cm, tm, font, size) -> None:
        nonlocal bold_chars, first_y
        if not text:
            return
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5] if cm and tm else None
        size = (size or 0) * ((math.hypot(tm[2], tm[3]) * math.hypot(cm[2], cm[3]) if cm and tm else 1.0) or 1.0)
        bold = bool(re.search(r"bold|black|heavy|,b\b", str((font or {}).get("/BaseFont", "")), re.I))
        for i, piece in enumerate(text.split("\n")):
            if i:
                flush()
            if piece.strip():
                first_y = y if first_y is None else first_y
                weights[round(size, 1)] += len(piece.strip())
                bold_chars += len(piece.strip()) if bold else 0
            chars.append(piece)

    page.extract_text(visitor_text=visit)
    flush()
    return lines


def _in_margin(line: Line, index: int, count: int) -> bool:
    """At the top or bottom of its page; where the height is unknown, among its first or last two lines."""
    return line.y > 1 - MARGIN or line.y < MARGIN if line.y is not None else index < 2 or index >= count - 2


def _drop_running_lines(pages: list[list[Line]]) -> list[Line]:
    """All lines in order, without page numbers and lines repeated (digits aside) in the margins of most pages."""
    keyed = [[(line, _DIGITS.sub("#", line.text.casefold()) if _in_margin(line, i, len(lines)) else None)
              for i, line in enumerate(lines)] for lines in pages]
    seen = Counter(key for lines in keyed for key in {key for _, key in lines if key is not None})
    threshold = max(2, math.ceil(0.5 * len(pages)))
    return [line for lines in keyed for line, key in lines
            if key is None or seen[key] < threshold and not _PAGE_NUMBER_RE.match(line.text)]


def _merge_wrapped_headings(lines: list[Line], body: Body) -> list[Line]:
    """A title or heading set on two lines is one heading: consecutive heading lines of the same
    font, one line height apart on the same page, are joined."""
    out: list[Line] = []
    for line in lines:
        prev = out[-1] if out else None
        if (prev is not None and prev.page == line.page and abs(prev.size - line.size) <= 0.5
                and prev.bold == line.bold and _is_heading(prev, body) and _is_heading(line, body)
                and prev.y is not None and line.y is not None and prev.page_height
                and 0 < (prev.y - line.y) * prev.page_height <= 1.6 * line.size
                and len(prev.text) + len(line.text) < MAX_HEADING_CHARS):
            out[-1] = Line(f"{prev.text} {line.text}", prev.y, prev.size, prev.bold, prev.page, prev.page_height)
        else:
            out.append(line)
    return out


def _body_size(lines: list[Line]) -> Body:
    sizes: Counter = Counter()
    for line in lines:
        sizes[line.size] += len(line.text)
    size = sizes.most_common(1)[0][0] if sizes else 0.0
    return Body(size, _typical_length([line for line in lines if abs(line.size - size) <= 0.5]))


def _is_heading(line: Line, body: Body) -> bool:
    """A short line without final punctuation, in a larger font than the body; or all bold at body
    size and clearly shorter than a full line (a bold lead paragraph's lines run to the margin).
    "1. Introduction" is a heading when set apart by its font; at body size it is a list item."""
    text = line.text
    if len(text) > MAX_HEADING_CHARS or _END_RE.search(text) and not text.endswith(")"):
        return False
    if text.endswith((".", ",", ";", "-", "\u00ad", "\u2010")) or not any(c.isalpha() for c in text):
        return False  # a heading does not end a sentence or cut a word
    if body.size > 0 and line.size >= body.size * HEADING_RATIO:
        return True
    short = len(text) <= min(120, 0.7 * body.full) if body.full else len(text) <= 120
    return line.bold and line.size >= body.size * 0.95 and short and not _LIST_RE.match(text)


def _title(lines: list[Line], body: Body) -> str:
    """The largest heading of page 1, when it is larger than the body text."""
    first = [line for line in lines if line.page == 1 and _is_heading(line, body) and line.size > body.size]
    return max(first, key=lambda line: line.size).text if first else ""  # max keeps the first of the largest


def _metadata_title(reader) -> str:
    """The title the file states, unless it is a tool's placeholder or the name of a file."""
    try:
        title = clean_inline(str((reader.metadata or {}).get("/Title") or ""))
    except Exception:  # noqa: BLE001 - broken metadata is no reason to skip a readable PDF
        return ""
    placeholder = title.lower() in ("untitled", "sans titre", "document", "microsoft word") or title.lower().endswith(
        (".doc", ".docx", ".pdf"))
    return "" if placeholder or not 3 <= len(title) <= MAX_HEADING_CHARS else title


def _write_blocks(builder: TextBuilder, lines: list[Line], body: Body, title: str, page_count: int) -> None:
    """Headings and paragraphs in order; page starts marked as pages go by, inside a paragraph that
    runs on to the next page."""
    known = compounds(" ".join(line.text for line in lines))  # hyphenated forms written out elsewhere
    heading_sizes = sorted({line.size for line in lines
                            if _is_heading(line, body) and not (line.page == 1 and line.text == title)},
                           reverse=True)
    long_line = _typical_length(lines)
    line_gap = _typical_gaps(lines)
    page = 0
    paragraph: list[Line] = []
    title_done = not title

    def mark_page(target: int) -> None:
        nonlocal page
        while page < target:
            builder.start_page()
            page += 1

    def close() -> None:
        nonlocal page
        if paragraph:
            text, starts = _joined(paragraph, known)
            breaks = []
            for offset, line_page in starts:
                breaks += [offset] * max(0, line_page - page)
                page = max(page, line_page)
            builder.paragraph(text, breaks)
            paragraph.clear()

    for line in lines:
        if not paragraph:
            mark_page(line.page)
        if not title_done and line.page == 1 and line.text == title:
            title_done = True
            continue
        prev = paragraph[-1] if paragraph else None
        breaks = prev is not None and _breaks(prev, line, long_line, line_gap)
        # same font, no sentence end or space between: the line carries on (a bold lead paragraph's short last line)
        continues = prev is not None and not breaks and not _END_RE.search(prev.text) and (
            prev.page == line.page and prev.bold == line.bold and abs(prev.size - line.size) <= 0.5)
        heading = _is_heading(line, body) and not continues
        if breaks or heading:
            close()
            mark_page(line.page)
        if heading:
            builder.heading(line.text, heading_sizes.index(line.size) + 1 if line.size in heading_sizes else 1)
        else:
            paragraph.append(line)
    close()
    mark_page(page_count)


def _joined(lines: list[Line], known: frozenset[str]) -> tuple[str, list[tuple[int, int]]]:
    """A paragraph's lines as one text, each cut word's hyphen removed, with (offset, page) for each
    line: a page that begins with the line begins where the line before it ends."""
    text, starts, glue = "", [], ""
    for line, joiner in zip(lines, [*joiners([line.text for line in lines], known), " "], strict=True):
        piece = clean_inline(line.text[:-1] if joiner == "\x00" else line.text)  # the hyphen that cut the word
        if piece:
            starts.append((len(text), line.page))
            text += (glue if text else "") + piece
        glue = "" if joiner == "\x00" else joiner
    return text, starts


def _typical_length(lines: list[Line]) -> int:
    """The length of a full line of body text (90th percentile over the document)."""
    lengths = sorted(len(line.text) for line in lines)
    return lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0


def _typical_gaps(lines: list[Line]) -> dict[float, float]:
    """By font size, the usual drop from one line to the next inside a paragraph (the smallest common one)."""
    gaps: dict[float, list[float]] = {}
    for prev, line in zip(lines, lines[1:], strict=False):
        if prev.page == line.page and prev.size == line.size and prev.y is not None and line.y is not None:
            if 0 < prev.y - line.y < 0.2:
                gaps.setdefault(line.size, []).append(prev.y - line.y)
    return {size: sorted(g)[len(g) // 4] for size, g in gaps.items()}


def _breaks(prev: Line, line: Line, long_line: int, line_gap: dict[float, float]) -> bool:
    """Whether `line` starts a new paragraph after `prev`: extra space above it, a list marker, a
    change of font size, or a short line ending a sentence before it."""
    ends = bool(_END_RE.search(prev.text))
    if line.page != prev.page:
        return ends  # a sentence running on to the next page keeps its paragraph
    if _LIST_RE.match(line.text) or line.size and prev.size and abs(line.size - prev.size) > 0.5:
        return True
    usual = line_gap.get(line.size)
    if usual and prev.y is not None and line.y is not None and prev.y - line.y > 1.3 * usual:
        return True
    return ends and len(prev.text) < 0.85 * long_line and not line.text[:1].islower()


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
    """What goes between consecutive lines of a paragraph: a space; "" after a real compound's hyphen
    ("sous-" + "préfecture": a known prefix, or a pair of `compounds` written elsewhere in the
    document); "\\x00" after a word cut by a hyphen or a soft hyphen, which is then removed ("uti-" + "lisé")."""
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
