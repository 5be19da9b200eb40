"""How tests/data/mali-libreoffice.pdf was made (run by hand, not by the tests: it needs LibreOffice).

The bundled report, with its title and headings as Word styles, justified body text and a running
header and footer, written to DOCX by python-docx and typeset to PDF by LibreOffice 7.4:

    python tests/data/make-mali-pdf.py && soffice --headless --convert-to pdf /tmp/lo/mali.docx --outdir /tmp/lo

A real typesetter's PDF: justified lines, wrapped headings, fonts and spacing chosen by LibreOffice.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import docx  # noqa: E402
from docx.enum.text import WD_ALIGN_PARAGRAPH  # noqa: E402
from docx.shared import Pt  # noqa: E402

from qa.documents import read_document  # noqa: E402

src = Path(__file__).resolve().parents[2] / "corpus" / "mali-attaques-juillet-2025.txt"
doc = read_document(src, src.parent)
d = docx.Document()
style = d.styles["Normal"]
style.font.name = "Liberation Serif"
style.font.size = Pt(11)
d.add_heading("Les attaques djihadistes de juillet 2025 au Mali", 0)
items = sorted([(h.start, "h", h.text) for h in doc.headings]
               + [(p.start, "p", doc.text[p.start:p.end]) for p in doc.paragraphs])
for _, kind, text in items:
    if kind == "h":
        d.add_heading(text, 1)
    else:
        para = d.add_paragraph(text.replace("\n", " "))
        para.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
section = d.sections[0]
section.header.paragraphs[0].text = "Observatoire du Sahel — Note d’analyse"
section.footer.paragraphs[0].text = "Document de travail — diffusion restreinte"
d.save("/tmp/lo/mali.docx")
print(len(items), "blocks")
