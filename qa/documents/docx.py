"""Word .docx with python-docx: headings from heading styles (any language), tables as text, and
the archive checked for a zip bomb before python-docx inflates it.

Paragraphs and tables are read in body order. A paragraph styled Title is the title; one styled
Heading N (or a localised name such as "Titre 1", or with an outline level) is a heading of level
N. Each table row becomes a paragraph, its cells joined by " | " and labelled by the header row.

python-docx inflates every part into memory, and `zipfile` inflates a member in one call when read
whole, whatever size the directory declares. So `check_zip` refuses, with the reason a build shows:
a central directory over `MAX_DIRECTORY_BYTES` or ZIP64, from the end record, before `zipfile`
reads the directory (a million entries would cost gigabytes as `ZipInfo` objects); declared sizes
over `MAX_UNZIPPED_BYTES` in all, over `MAX_RATIO` times a member's compressed size (past
`RATIO_FLOOR`), or methods other than stored and deflate (what Word writes); then, since a
directory can lie, any member that inflates past its declared size (each inflated in 1 MB steps and
thrown away: milliseconds for a real document), and XML parts of more than `MAX_XML_TAGS` tags.
"""

from __future__ import annotations

import copy
import io
import re
import struct
import zipfile
import zlib
from pathlib import Path

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from qa.documents.document import Document, TextBuilder, Unreadable, clean_inline, table_rows

MAX_UNZIPPED_BYTES = 200_000_000  # all members inflated: text, styles and images of a large report fit
MAX_RATIO = 100  # a member inflating more than this many times its compressed size is a bomb ...
RATIO_FLOOR = 1_000_000  # ... once it passes 1 MB (tiny members compress very well and cost nothing)
MAX_XML_TAGS = 1_000_000  # python-docx's tree costs ~0.3 kB a tag: ~0.3 GB; a 1,000-page report has ~0.5M
MAX_DIRECTORY_BYTES = 1_000_000  # about 10,000 entries; a real .docx has tens to hundreds
_STEP = 1 << 20
_END = b"PK\x05\x06"
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE_RE = re.compile(r"^(heading|titre|título|titolo|überschrift|kop)\s*(\d)$", re.IGNORECASE)


def read_docx(data: bytes, doc_id: str, path: Path) -> Document:
    """Linear in the file: styles are resolved once each (python-docx looks every paragraph's style up
    among all styles, and follows `basedOn` without end on a cycle), and merged cells are followed
    with a map of the row above (python-docx climbs a vertical merge row by row, for every cell)."""
    check_zip(data)  # a zip bomb is refused before python-docx inflates it
    document = docx.Document(io.BytesIO(data))
    levels = _StyleLevels(document.styles.element)
    blocks: list[tuple[int | None, str]] = []  # (0 title, N heading level, None body text; the text)
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph) and (text := clean_inline(item.text)):
            blocks.append((levels.of(item._p), text))
        elif isinstance(item, Table):
            # a merged cell is listed once per grid column it spans: read once
            rows = [[clean_inline(_cell_text(c, item)) for n, c in enumerate(cells) if n == 0 or c is not cells[n - 1]]
                    for cells in _rows(item._tbl)]
            blocks += [(None, text) for text in table_rows(rows)]
    title = next((text for level, text in blocks if level == 0), clean_inline(document.core_properties.title or ""))
    builder = TextBuilder(title)
    for level, text in blocks:
        if level:
            builder.heading(text, level)
        elif level is None or text != title:
            builder.paragraph(text)
    return builder.document(doc_id, title or path.stem, data)


def _rows(tbl) -> list[list]:
    """Each row's cells as python-docx's `row.cells` gives them (a cell spanning n grid columns n times,
    a vertically merged cell as the cell it continues), the row above kept as a map from grid offset
    to cell. A span counts at most the table's grid width (a hostile span of 10^9 repeats nothing)."""
    width = max(1, len(tbl.tblGrid.gridCol_lst) if tbl.tblGrid is not None else 1)
    above: dict[int, object] = {}
    rows = []
    for tr in tbl.tr_lst:
        offset, here, cells = tr.grid_before, {}, []
        for tc in tr.tc_lst:
            # a continued merge shows the cell above; python-docx refuses the whole file when there is none
            cell = above.get(offset, tc) if tc.vMerge == "continue" else tc
            here[offset] = cell
            cells += [cell] * min(cell.grid_span, width)
            offset += tc.grid_span
        above = here
        rows.append(cells)
    return rows


def _cell_text(tc, table) -> str:
    """A cell's paragraphs and, recursively, the rows of tables nested in it (nesting is bounded by
    lxml's depth limit, 256 elements)."""
    parts = [Paragraph(p, table).text for p in tc.p_lst]
    for tbl in tc.tbl_lst:
        parts += [" | ".join(_cell_text(cell, table) for cell in cells) for cells in _rows(tbl)]
    return " ".join(parts)


class _StyleLevels:
    """0 for the Title style, N for a level-N heading style (or one based on it), None for body text;
    each style resolved once. A paragraph without a known paragraph style has the default one, as in
    python-docx; without a heading style, an outline level makes it a heading."""

    def __init__(self, styles) -> None:
        self._by_id: dict[str, object] = {}
        self._default = None
        for style in styles.iterchildren(_W + "style"):
            self._by_id.setdefault(style.get(_W + "styleId"), style)
            if style.get(_W + "type") == "paragraph" and style.get(_W + "default") in ("1", "true", "on"):
                self._default = style  # the last default, as the specification says
        self._levels: dict[int, int | None] = {}

    def of(self, p) -> int | None:
        style = self._by_id.get(p.style) if p.style is not None else None
        if style is None or style.get(_W + "type") != "paragraph":
            style = self._default
        if style is not None and (level := self._level(style)) is not None:
            return level
        outline = p.find(f".//{_W}outlineLvl")
        value = outline.get(_W + "val") if outline is not None else None
        return int(value) + 1 if value is not None and value.isdigit() and int(value) < 9 else None

    def _level(self, style) -> int | None:
        """The first level named along the `basedOn` chain, a cycle ending it; memoised for the whole chain."""
        chain, seen, node = [], set(), style
        while node is not None and id(node) not in self._levels and id(node) not in seen:
            seen.add(id(node))
            chain.append(node)
            based = node.find(_W + "basedOn")
            node = self._by_id.get(based.get(_W + "val")) if based is not None else None
        level = self._levels.get(id(node)) if node is not None else None
        for node in reversed(chain):
            name = node.find(_W + "name")
            name = (name.get(_W + "val") or "" if name is not None else "").strip()
            own = 0 if name.lower() in ("title", "titre") else (
                int(m.group(2)) if (m := _HEADING_STYLE_RE.match(name)) else None)
            level = own if own is not None else level
            self._levels[id(node)] = level
        return self._levels[id(style)]


def check_zip(data: bytes) -> None:
    """Raise `Unreadable` with a French reason when the archive in `data` breaks a bound (module docstring)."""
    # the end record, found as zipfile finds it: at the very end, else the last in the trailing 64 kB (a comment)
    at = len(data) - 22 if data[-22:-18] == _END else data.rfind(_END, max(0, len(data) - 65_557))
    if at < 0 or len(data) < at + 22:
        raise Unreadable("archive ZIP illisible (fin de répertoire introuvable)")
    entries, directory_size = struct.unpack_from("<HI", data, at + 10)
    # zipfile takes the ZIP64 record's sizes when its locator sits right before the end record
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF or at >= 20 and data[at - 20 : at - 16] == b"PK\x06\x07":
        raise Unreadable("archive ZIP64 non prise en charge")
    if directory_size > MAX_DIRECTORY_BYTES:
        raise Unreadable(f"répertoire d'archive trop grand ({directory_size // 1000} ko, limite "
                         f"{MAX_DIRECTORY_BYTES // 1000} ko)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise Unreadable(f"archive ZIP illisible ({exc})") from None
    total = 0
    for info in archive.infolist():
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise Unreadable(f"méthode de compression non prise en charge ({info.compress_type}) dans {info.filename}")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise Unreadable(f"bombe de décompression ({info.filename} : {info.compress_size // 1000} ko compressés "
                             f"en {info.file_size // 1_000_000} Mo, plus de {MAX_RATIO} fois)")
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise Unreadable(f"archive trop volumineuse une fois décompressée (plus de {total // 1_000_000} Mo, "
                             f"limite {MAX_UNZIPPED_BYTES // 1_000_000} Mo)")
    tags = 0
    for info in archive.infolist():
        tags += _inflated_tags(archive, info)
        if tags > MAX_XML_TAGS:
            raise Unreadable(f"document Word trop complexe (plus de {MAX_XML_TAGS:,} balises XML)".replace(",", " "))


def _inflated_tags(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Inflate a member in steps, never kept, to its real end or just past its declared size (a lying
    directory); for an XML part, count its tags ("<")."""
    probe = copy.copy(info)
    probe.file_size += _STEP + 1  # zipfile stops a member at its declared size: room to see it go past
    xml = info.filename.lower().endswith((".xml", ".rels"))
    size = tags = 0
    try:
        with archive.open(probe) as member:
            while size <= info.file_size and (piece := member.read(_STEP)):
                size += len(piece)
                tags += piece.count(b"<") if xml else 0
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as exc:  # RuntimeError: encrypted
        raise Unreadable(f"archive ZIP illisible ({info.filename} : {exc})") from None
    if size > info.file_size:
        raise Unreadable(f"archive ZIP incohérente ({info.filename} dépasse la taille annoncée : bombe de "
                         "décompression ?)")
    return tags
