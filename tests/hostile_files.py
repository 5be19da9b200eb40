"""Hostile documents, written by the tests and benchmarks/hostile_readers.py: deep HTML, zip bombs,
pathological Word files. Each is small on disk and expensive for a careless reader."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_BODY_START = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W_NS}"><w:body>'
               "<w:p><w:r><w:t>Rapport piégé</w:t></w:r></w:p>").encode()
_BODY_END = b"</w:body></w:document>"


def nested_divs(n: int) -> bytes:
    """n <div> nested in one another around one paragraph (100,000: 1.1 MB)."""
    return ("<html><body>" + "<div>" * n + "<p>Le texte du rapport est ici.</p>" + "</div>" * n
            + "</body></html>").encode()


def plain_docx() -> dict[str, bytes]:
    """The members of python-docx's own blank document, by name."""
    import docx

    out = io.BytesIO()
    docx.Document().save(out)
    with zipfile.ZipFile(out) as z:
        return {name: z.read(name) for name in z.namelist()}


def docx_with_body(body: bytes) -> bytes:
    """A valid .docx whose word/document.xml body is `body` (w:p and w:tbl elements)."""
    members = plain_docx()
    members["word/document.xml"] = _BODY_START + body + _BODY_END
    return zipped(members)


def zipped(members: dict[str, bytes]) -> bytes:
    """A zip archive of `members` (name: bytes), each deflated, as zipfile writes it."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def zip_bomb_docx(inflated_mb: int = 1000, *, declared: int | None = None) -> bytes:
    """A .docx whose word/document.xml inflates to `inflated_mb` MB of empty paragraphs (1000 MB: a
    file of about 1 MB). Its directory declares the true size, or `declared` bytes (a lying archive)."""
    chunk = b"<w:p/>" * (1_000_000 // 6)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every chunk
    start = packer.compress(_BODY_START) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.compress(_BODY_END) + packer.flush()
    crc = zlib.crc32(_BODY_START)
    for _ in range(inflated_mb):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(_BODY_END, crc)
    size = len(_BODY_START) + inflated_mb * len(chunk) + len(_BODY_END)
    raw = {name: (zlib.compressobj(9, zlib.DEFLATED, -15), data) for name, data in plain_docx().items()}
    members = [(name, _deflate(p, d), zlib.crc32(d), len(d)) for name, (p, d) in raw.items()
               if name != "word/document.xml"]
    members.append(("word/document.xml", start + block * inflated_mb + end, crc,
                    size if declared is None else declared))
    return _zip(members)


def _deflate(packer, data: bytes) -> bytes:
    return packer.compress(data) + packer.flush()


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip archive of deflated members (name, raw deflate bytes, crc32, size), written by hand so
    that a member's declared size can be anything."""
    out, directory = io.BytesIO(), io.BytesIO()
    for name, packed, crc, size in members:
        offset, encoded = out.tell(), name.encode()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(packed),
                              size & 0xFFFFFFFF, len(encoded), 0) + encoded + packed)
        directory.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(packed),
                                    size & 0xFFFFFFFF, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
    start, listing = out.tell(), directory.getvalue()
    out.write(listing)
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(listing), start, 0))
    return out.getvalue()


def zip64_docx() -> bytes:
    """A valid .docx with a ZIP64 end record before its end record: zipfile takes the directory's size
    from the ZIP64 record, which a check of the end record alone would not see."""
    data = zipped(plain_docx())
    _, _, _, here, total, size, offset, _ = struct.unpack("<4sHHHHIIH", data[-22:])
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, here, total, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(data) - 22, 1)
    return data[:-22] + record + locator + data[-22:]


def style_cycle_docx(paragraphs: int = 10) -> bytes:
    """Two paragraph styles based on each other: python-docx's `base_style` walk never ends."""
    members = plain_docx()
    styles = members["word/styles.xml"]
    cycle = (f'<w:style xmlns:w="{W_NS}" w:type="paragraph" w:styleId="A"><w:name w:val="Style A"/>'
             f'<w:basedOn w:val="B"/></w:style><w:style xmlns:w="{W_NS}" w:type="paragraph" w:styleId="B">'
             '<w:name w:val="Style B"/><w:basedOn w:val="A"/></w:style>').encode()
    members["word/styles.xml"] = styles.replace(b"</w:styles>", cycle + b"</w:styles>")
    body = b"".join(b'<w:p><w:pPr><w:pStyle w:val="A"/></w:pPr><w:r><w:t>Texte %d</w:t></w:r></w:p>' % i
                    for i in range(paragraphs))
    members["word/document.xml"] = _BODY_START + body + _BODY_END
    return zipped(members)


def merged_column_docx(rows: int) -> bytes:
    """A table of `rows` rows whose first column is one cell merged down the whole table."""
    cell = '<w:tc><w:tcPr>{}</w:tcPr><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:tc>'
    head = cell.format('<w:vMerge w:val="restart"/>', "Région") + cell.format("", "Ville 0")
    body = "".join("<w:tr>" + cell.format("<w:vMerge/>", "") + cell.format("", f"Ville {i}") + "</w:tr>"
                   for i in range(1, rows))
    table = f'<w:tbl><w:tblGrid><w:gridCol/><w:gridCol/></w:tblGrid><w:tr>{head}</w:tr>{body}</w:tbl>'
    return docx_with_body(table.encode())


def hyphenated_pdf(lines: int) -> bytes:
    """A PDF of `lines` lines, 50 a page, each ending in a word cut by a hyphen («uti-» + «lisé»): the
    cut-word check once searched the whole text for every such line."""
    import tempfile
    from pathlib import Path

    from tests.samples import write_pdf_pages

    line = ("Helvetica", 10, "lisé des drones dans la région, les assaillants ont uti-", 0)
    pages = [[line] * min(50, lines - start) for start in range(0, lines, 50)]
    with tempfile.TemporaryDirectory() as tmp:
        return write_pdf_pages(Path(tmp) / "cut.pdf", pages).read_bytes()
