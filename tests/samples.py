"""Small real documents of every supported format, written by the tests themselves (French text,
accents, curly apostrophes, headings). Each holds one fact found nowhere else, for a question."""

from __future__ import annotations

from pathlib import Path

PDF_RUNNING_HEADER = "Observatoire du Sahel — Note d’analyse"


def write_pdf(path: Path) -> Path:
    """Three pages: running header and page-number footer on each, a title, two headings, a word cut
    by a hyphen at a line end, and a paragraph whose sentence runs from page 2 onto page 3."""
    # (font, size, text, space after): paragraphs are set apart by extra space, as typesetters do
    pages = [
        [("Helvetica-Bold", 18, "Les attaques de juillet 2025 au Mali", 6),
         ("Helvetica-Bold", 13, "Contexte sécuritaire", 2),
         ("Helvetica", 11, "Le 1er juillet 2025, le JNIM a lancé des attaques coordonnées contre plusieurs", 0),
         ("Helvetica", 11, "villes de l’ouest du pays, dont Kayes et Nioro du Sahel. Les assaillants ont uti-", 0),
         ("Helvetica", 11, "lisé des drones kamikazes fabriqués localement pour la première fois.", 8),
         ("Helvetica", 11, "L’armée malienne a revendiqué la neutralisation de quatre-vingts assaillants.", 8)],
        [("Helvetica-Bold", 13, "Réactions régionales", 2),
         ("Helvetica", 11, "Le Sénégal et la Mauritanie ont renforcé leurs frontières après les attaques.", 8),
         ("Helvetica", 11, "Selon les experts, le groupe cherche à asphyxier l’économie malienne en visant", 0)],
        [("Helvetica", 11, "les camions-citernes sur les axes routiers qui relient Bamako au port de Dakar.", 8),
         ("Helvetica", 11, "La CEDEAO a condamné des actes « d’une gravité extrême ».", 8)],
    ]
    return write_pdf_pages(path, pages, running=True)


def write_pdf_pages(path: Path, pages: list[list[tuple[str, int, str, int]]], *, running: bool = False) -> Path:
    """A PDF of pages of (font, size, text, space after) lines; with `running`, a running header and
    a «Page n sur N» footer on every page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    width, height = A4
    for number, lines in enumerate(pages, start=1):
        if running:
            c.setFont("Helvetica", 8)
            c.drawString(72, height - 40, PDF_RUNNING_HEADER)
            c.drawString(width / 2, 30, f"Page {number} sur {len(pages)}")
        y = height - 90
        for font, size, text, space_after in lines:
            c.setFont(font, size)
            c.drawString(72, y, text)
            y -= size * 1.4 + space_after
        c.showPage()
    c.save()
    return path


def write_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Rapport humanitaire sur le Sahel", 0)
    d.add_heading("Déplacements de population", 1)
    d.add_paragraph("Après les combats de Nioro, près de douze mille réfugiés ont fui vers la Mauritanie, "
                    "où le camp de Mbera les accueille.")
    d.add_heading("Chiffres clés", 2)
    table = d.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Région", "Personnes déplacées"), ("Kayes", "4 500"), ("Ségou", "7 200")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    d.add_paragraph("Les ONG demandent l’ouverture d’un couloir humanitaire.")
    d.save(str(path))
    return path


HTML = """<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">
<title>Mali : la crise | Le Journal</title><style>p { color: red }</style>
<script>var secret = "ne pas indexer ce script";</script></head>
<body><header><nav><a href="/">Accueil</a> <a href="/monde">Monde</a></nav></header>
<div class="cookie-banner">Nous utilisons des cookies pour mesurer l’audience.</div>
<main><article><h1>Mali : la gendarmerie visée à Nioro</h1>
<p class="chapo">Le <b>JNIM</b> a multiplié les attaques en juillet 2025.</p>
<h2>L’attaque du poste de Nioro</h2>
<p>Le 1<sup>er</sup> juillet, des assaillants ont incendié le poste de gendarmerie de
   <a href="/nioro">Nioro du Sahel</a> avant de se replier vers la forêt du Wagadou.</p>
<h3>Bilan</h3>
<table><tr><th>Ville</th><th>Victimes</th></tr><tr><td>Nioro</td><td>9</td></tr></table>
</article><aside class="related">À lire aussi : la saison des pluies</aside></main>
<footer>© Le Journal 2025, tous droits réservés</footer></body></html>
"""

MARKDOWN = """---
title: Note sur la CEDEAO
auteur: Desk Afrique
---

# Titre de travail

## Sanctions économiques

La CEDEAO a suspendu les échanges commerciaux avec la junte pendant six mois.

- première mesure : fermeture des frontières
- seconde mesure : gel des avoirs

| Pays | Mesure |
|------|--------|
| Niger | gel des avoirs |
"""

CP1252_TEXT = "Note de Ségou\n\nLe gouverneur de Ségou a décrété un couvre-feu de vingt et une heures à l’aube.\n"


def write_mixed_corpus(folder: Path) -> Path:
    """One document of each format, plus files a build must skip without stopping."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rapports").mkdir(exist_ok=True)
    write_pdf(folder / "rapports" / "attaques.pdf")
    write_docx(folder / "humanitaire.docx")
    (folder / "presse").mkdir(exist_ok=True)
    (folder / "presse" / "nioro.html").write_text(HTML, encoding="utf-8")
    (folder / "cedeao.md").write_text(MARKDOWN, encoding="utf-8")
    (folder / "segou.txt").write_bytes(CP1252_TEXT.encode("cp1252"))
    (folder / "casse.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 pas une image de rapport")
    return folder


# A question per format, answered by exactly one document of the mixed corpus.
QUESTIONS = {
    "rapports/attaques.pdf": "Quelles armes nouvelles les assaillants ont-ils utilisées ?",
    "humanitaire.docx": "Vers quel pays les réfugiés ont-ils fui ?",
    "presse/nioro.html": "Qu’est-il arrivé au poste de gendarmerie de Nioro ?",
    "cedeao.md": "Combien de temps durent les sanctions de la CEDEAO ?",
    "segou.txt": "Quelle mesure le gouverneur de Ségou a-t-il prise ?",
}
