"""Word .docx with python-docx: headings from heading styles (any language), tables as text.

Paragraphs and tables are read in body order. A paragraph styled Title is the title; one styled
Heading N (or a localised name such as "Titre 1", or with an outline level) is a heading of level
N. Each table row becomes a paragraph, its cells joined by " | " and labelled by the header row.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from qa.documents.archive import check_zip
from qa.documents.builder import TextBuilder, clean_inline, table_rows
from qa.documents.document import Document

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE_RE = re.compile(r"^(heading|titre|título|titolo|überschrift|kop)\s*(\d)$", re.IGNORECASE)


def read_docx(data: bytes, doc_id: str, path: Path) -> Document:
    """Linear in the file: styles are resolved once each (python-docx looks every paragraph's style up
    among all styles, and follows `basedOn` without end on a cycle), and merged cells are followed
    with a map of the row above (python-docx climbs a vertical merge row by row, for every cell)."""
    import docx  # lazy: a heavy library, loaded on first use
    from docx.table import Table  # lazy: a heavy library, loaded on first use
    from docx.text.paragraph import Paragraph  # lazy: a heavy library, loaded on first use

    check_zip(data)  # a zip bomb is refused before python-docx inflates it
    document = docx.Document(io.BytesIO(data))
    builder = TextBuilder()
    title = clean_inline(document.core_properties.title or "")
    levels = _StyleLevels(document.styles.element)
    blocks = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = clean_inline(item.text)
            if text:
                blocks.append(("p", levels.of(item._p), text))
        elif isinstance(item, Table):
            rows = [[clean_inline(_cell_text(tc, item)) for tc in _merged_once(cells)] for cells in _rows(item._tbl)]
            blocks.extend(("row", None, text) for text in table_rows(rows))
    styled_title = next((text for kind, level, text in blocks if level == 0), "")
    title = styled_title or title
    if title:
        builder.title(title)
    for _kind, level, text in blocks:
        if level == 0 and text == title:
            continue
        if level:
            builder.heading(text, level)
        else:
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


def _merged_once(cells: list) -> list:
    """A merged cell is listed once per grid column it spans: keep it once."""
    return [tc for i, tc in enumerate(cells) if i == 0 or tc is not cells[i - 1]]


def _cell_text(tc, table) -> str:
    """A cell's paragraphs and, recursively, the rows of tables nested in it (nesting is bounded by
    lxml's depth limit, 256 elements)."""
    from docx.text.paragraph import Paragraph  # lazy: a heavy library, loaded on first use

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
        default = None
        for style in styles.iterchildren(_W + "style"):
            self._by_id.setdefault(style.get(_W + "styleId"), style)
            if style.get(_W + "type") == "paragraph" and style.get(_W + "default") in ("1", "true", "on"):
                default = style  # the last default, as the specification says
        self._default = default
        self._levels: dict[int, int | None] = {}

    def of(self, p) -> int | None:
        style = self._by_id.get(p.style) if p.style is not None else None
        if style is None or style.get(_W + "type") != "paragraph":
            style = self._default
        level = self._level(style) if style is not None else None
        if level is not None:
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
            own = _name_level(node)
            level = own if own is not None else level
            self._levels[id(node)] = level
        return self._levels[id(style)]


def _name_level(style) -> int | None:
    name_element = style.find(_W + "name")
    name = (name_element.get(_W + "val") or "" if name_element is not None else "").strip()
    if name.lower() in ("title", "titre"):
        return 0
    if m := _HEADING_STYLE_RE.match(name):
        return int(m.group(2))
    return None
