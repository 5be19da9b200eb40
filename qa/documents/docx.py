"""Word .docx with python-docx: headings from heading styles (any language), tables as text.

Paragraphs and tables are read in body order. A paragraph styled Title is the title; one styled
Heading N (or a localised name such as "Titre 1", or with an outline level) is a heading of level
N. Each table row becomes a paragraph, its cells joined by " | " and labelled by the header row.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from qa.documents.builder import TextBuilder, clean_inline, table_rows
from qa.documents.document import Document

_HEADING_STYLE_RE = re.compile(r"^(heading|titre|título|titolo|überschrift|kop)\s*(\d)$", re.IGNORECASE)


def read_docx(data: bytes, doc_id: str, path: Path) -> Document:
    import docx  # lazy: a heavy library, loaded on first use
    from docx.table import Table  # lazy: a heavy library, loaded on first use
    from docx.text.paragraph import Paragraph  # lazy: a heavy library, loaded on first use

    document = docx.Document(io.BytesIO(data))
    builder = TextBuilder()
    title = clean_inline(document.core_properties.title or "")
    blocks = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = clean_inline(item.text)
            if text:
                blocks.append(("p", _style_level(item), text))
        elif isinstance(item, Table):
            rows = []
            for row in item.rows:
                cells: list[str] = []
                previous = None
                for cell in row.cells:
                    if previous is not None and cell._tc is previous._tc:
                        continue  # a merged cell is listed once per grid column it spans
                    cells.append(clean_inline(_cell_text(cell)))
                    previous = cell
                rows.append(cells)
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


def _cell_text(cell) -> str:
    """A cell's paragraphs and, recursively, the rows of tables nested in it."""
    parts = [p.text for p in cell.paragraphs]
    for table in cell.tables:
        parts += [" | ".join(_cell_text(c) for c in row.cells) for row in table.rows]
    return " ".join(parts)


def _style_level(paragraph) -> int | None:
    """0 for the Title style, N for a level-N heading, None for body text."""
    style = paragraph.style
    while style is not None:
        name = (style.name or "").strip()
        if name.lower() in ("title", "titre"):
            return 0
        if m := _HEADING_STYLE_RE.match(name):
            return int(m.group(2))
        style = style.base_style
    outline = paragraph._p.find(".//{http://schemas.openxmlformats.org/wordprocessingml/2006/main}outlineLvl")
    if outline is not None:
        value = outline.get("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}val")
        if value is not None and value.isdigit() and int(value) < 9:
            return int(value) + 1
    return None
