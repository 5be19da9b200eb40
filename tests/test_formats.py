"""Every format: headings found, offsets verbatim into the extracted text, pages on PDF passages,
boilerplate left out; a mixed folder indexes in one build that skips the bad files and answers a
question from each format."""

from __future__ import annotations

import pytest

import qa
from qa.chunking import chunk_document
from qa.documents import read_document
from tests import samples


def _read(path, root):
    doc = read_document(path, root)
    paragraphs = [doc.text[p.start : p.end] for p in doc.paragraphs]
    for h in doc.headings:
        assert doc.text[h.start : h.end] == h.text
    for passage in chunk_document(doc):
        assert passage.text == doc.text[passage.start : passage.end]
        for s, e in passage.sentences:
            assert passage.start <= s < e <= passage.end
    return doc, paragraphs


def test_pdf_headings_pages_hyphens_and_running_lines(tmp_path):
    doc, paragraphs = _read(samples.write_pdf(tmp_path / "note.pdf"), tmp_path)
    assert doc.title == "Les attaques de juillet 2025 au Mali"
    assert [h.text for h in doc.headings] == ["Contexte sécuritaire", "Réactions régionales"]
    assert "Les assaillants ont utilisé des drones kamikazes" in paragraphs[0]  # "uti-" + "lisé" joined
    assert "uti-" not in doc.text
    assert samples.PDF_RUNNING_HEADER not in doc.text and "Page 2 sur 3" not in doc.text
    # the sentence cut by the page break is whole, in one paragraph, which starts on page 2
    running_on = next(p for p in paragraphs if "asphyxier" in p)
    assert "en visant les camions-citernes sur les axes routiers" in running_on
    passages = chunk_document(doc)
    pages = {p.text.split()[0] + " " + p.text.split()[1]: p.page for p in passages}
    assert pages["Le 1er"] == 1 and pages["L’armée malienne"] == 1
    assert pages["Le Sénégal"] == 2 and pages["La CEDEAO"] == 3
    assert doc.page_at(doc.text.index("camions-citernes")) == 3  # inside the paragraph, page 3 begins
    assert all(p.page is not None for p in passages)


def test_pdf_without_text_layer_is_refused_with_a_reason(tmp_path):
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(tmp_path / "scan.pdf"))
    c.rect(100, 100, 200, 200, fill=1)  # a page with a drawing and no text, like a scan
    c.showPage()
    c.save()
    with pytest.raises(ValueError, match="scanné"):
        read_document(tmp_path / "scan.pdf", tmp_path)


def test_docx_heading_styles_and_tables(tmp_path):
    doc, paragraphs = _read(samples.write_docx(tmp_path / "h.docx"), tmp_path)
    assert doc.title == "Rapport humanitaire sur le Sahel"
    assert [(h.text, h.level) for h in doc.headings] == [("Déplacements de population", 1), ("Chiffres clés", 2)]
    assert "Région : Kayes | Personnes déplacées : 4 500" in paragraphs
    assert "Région : Ségou | Personnes déplacées : 7 200" in paragraphs
    assert chunk_document(doc)[-1].section == "Chiffres clés"
    assert all(p.page is None for p in chunk_document(doc))


def test_html_main_text_only(tmp_path):
    (tmp_path / "a.html").write_text(samples.HTML, encoding="utf-8")
    doc, paragraphs = _read(tmp_path / "a.html", tmp_path)
    assert doc.title == "Mali : la gendarmerie visée à Nioro"
    assert [(h.text, h.level) for h in doc.headings] == [("L’attaque du poste de Nioro", 2), ("Bilan", 3)]
    for boilerplate in ("Accueil", "cookies", "secret", "color", "À lire aussi", "droits réservés"):
        assert boilerplate not in doc.text
    assert ("Le 1er juillet, des assaillants ont incendié le poste de gendarmerie de Nioro du Sahel avant de "
            "se replier vers la forêt du Wagadou.") in paragraphs
    assert "Ville : Nioro | Victimes : 9" in paragraphs


def test_markdown_front_matter_lists_and_tables(tmp_path):
    (tmp_path / "n.md").write_text(samples.MARKDOWN, encoding="utf-8")
    doc, paragraphs = _read(tmp_path / "n.md", tmp_path)
    assert doc.title == "Note sur la CEDEAO"
    assert "auteur" not in " ".join(paragraphs)
    assert "- première mesure : fermeture des frontières\n- seconde mesure : gel des avoirs" in paragraphs
    assert "| Niger | gel des avoirs |" in paragraphs
    assert not any(set(p) <= set("|- ") for p in paragraphs)  # the table's rule row is no paragraph


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-8-sig", "utf-8"])
def test_text_encodings_are_detected(tmp_path, encoding):
    text = samples.CP1252_TEXT if encoding != "latin-1" else samples.CP1252_TEXT.replace("’", "'")
    (tmp_path / "s.txt").write_bytes(text.encode(encoding))
    doc, paragraphs = _read(tmp_path / "s.txt", tmp_path)
    assert doc.title == "Note de Ségou"
    assert paragraphs == [text.split("\n\n")[1].strip()]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    from qa import build_index

    root = tmp_path_factory.mktemp("mixed")
    corpus = samples.write_mixed_corpus(root / "corpus")
    summary = build_index(corpus, root / "index")
    return corpus, root / "index", summary


def test_mixed_folder_builds_and_lists_what_it_skipped(mixed):
    _, _, summary = mixed
    assert summary.documents == 5
    skipped = dict(summary.skipped)
    assert set(skipped) == {"casse.pdf", "photo.jpg"}
    assert "illisible" in skipped["casse.pdf"] and "format non pris en charge" in skipped["photo.jpg"]


@pytest.mark.parametrize("doc", sorted(samples.QUESTIONS))
def test_each_format_answers_its_question_with_a_verbatim_citation(mixed, doc):
    from qa import retrieve

    _, index, _ = mixed
    top = retrieve(samples.QUESTIONS[doc], k=3, index=index)[0]
    assert top.doc == doc
    text = qa.assistant(index).document(doc)["text"]
    assert text[top.start : top.end] == top.text
    assert text[top.sentence.start : top.sentence.end] == top.sentence.text
    assert (top.page is not None) == doc.endswith(".pdf")


def test_document_filter_restricts_results(mixed):
    from qa import retrieve

    _, index, _ = mixed
    hits = retrieve("Quelles sanctions ?", k=10, index=index, docs=["segou.txt", "presse/nioro.html"])
    assert hits and {h.doc for h in hits} <= {"segou.txt", "presse/nioro.html"}
    with pytest.raises(ValueError, match="unknown document"):
        retrieve("Quelles sanctions ?", index=index, docs=["absent.pdf"])


def test_a_real_typesetters_pdf_gives_back_the_report(tmp_path):
    """The report typeset by LibreOffice (tests/data/make-mali-pdf.py): wrapped title and headings
    joined, running header and footer dropped, every paragraph whole, and its questions answered."""
    import json
    import re
    import shutil

    from qa import build_index, retrieve
    from tests.conftest import DATA, REPORT

    shutil.copy(DATA / "mali-libreoffice.pdf", tmp_path / "mali.pdf")
    pdf, paragraphs = _read(tmp_path / "mali.pdf", tmp_path)
    txt = read_document(REPORT, REPORT.parent)
    flat = lambda s: re.sub(r"\s+", " ", s).strip()  # noqa: E731
    assert pdf.title == "Les attaques djihadistes de juillet 2025 au Mali"
    assert [h.text for h in pdf.headings] == [h.text for h in txt.headings]
    assert paragraphs == [flat(txt.text[p.start : p.end]) for p in txt.paragraphs]
    assert "Observatoire" not in pdf.text and "diffusion restreinte" not in pdf.text
    assert {p.page for p in chunk_document(pdf)} == {1, 2}

    build_index(tmp_path, tmp_path / "index")
    questions = json.loads((DATA / "mali-dev.json").read_text(encoding="utf-8"))["questions"]
    for q in questions[:13]:  # the 14th is in English; top 5, as the title header here differs from the .txt's
        hits = retrieve(q["q"], k=5, index=tmp_path / "index")
        assert any(any(flat(g) in flat(h.text) for g in q["gold"]) for h in hits), q["q"]


def test_pdf_numbered_headings_bold_leads_and_hyphens(tmp_path):
    body = "Helvetica"
    path = samples.write_pdf_pages(tmp_path / "n.pdf", [[
        ("Helvetica-Bold", 16, "Rapport de la préfecture", 6),
        ("Helvetica-Bold", 13, "1. Introduction", 2),
        ("Helvetica-Bold", 11,
         "En juillet 2025, au moins quarante civils ont été tués dans la région de Kayes lors", 0),
        ("Helvetica-Bold", 11, "d’attaques coordonnées contre sept localités selon les autorités de la sous-", 0),
        ("Helvetica-Bold", 11, "préfecture de Nioro, qui ont aussi uti\u00ad", 0),
        ("Helvetica-Bold", 11, "lisé des drones.", 8),
        ("Helvetica-Bold", 13, "2. Réactions", 2),
        (body, 11, "Le gouverneur a décrété un couvre-feu dans toute la région de Kayes pour une durée", 0),
        (body, 11, "de trois semaines, renouvelable.", 8),
    ]])
    doc, paragraphs = _read(path, tmp_path)
    assert [h.text for h in doc.headings] == ["1. Introduction", "2. Réactions"]
    assert paragraphs[0].startswith("En juillet 2025") and paragraphs[0].endswith("utilisé des drones.")
    assert "sous-préfecture de Nioro" in paragraphs[0]  # a compound's hyphen stays
    assert chunk_document(doc)[-1].section == "2. Réactions"


def test_docx_tables_keep_columns_merged_cells_and_nested_tables(tmp_path):
    import docx

    d = docx.Document()
    d.add_heading("Bilan", 1)
    t = d.add_table(rows=2, cols=4)
    for i, v in enumerate(["Région", "Morts", "Blessés", "Déplacés"]):
        t.cell(0, i).text = v
    for i, v in enumerate(["Kayes", "0", "0", "5000"]):
        t.cell(1, i).text = v
    m = d.add_table(rows=2, cols=3)
    m.cell(0, 0).merge(m.cell(0, 1)).text = "Zone fusionnée"
    m.cell(0, 2).text = "Note"
    m.cell(1, 0).text, m.cell(1, 1).text, m.cell(1, 2).text = "Gao", "Tombouctou", "calme"
    outer = d.add_table(rows=1, cols=2)
    outer.cell(0, 0).text = "Annexe"
    inner = outer.cell(0, 1).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "Gao", "4200 réfugiés"
    d.save(str(tmp_path / "t.docx"))
    _, paragraphs = _read(tmp_path / "t.docx", tmp_path)
    assert "Région : Kayes | Morts : 0 | Blessés : 0 | Déplacés : 5000" in paragraphs  # equal values are two cells
    assert "Zone fusionnée : Gao | Note : Tombouctou" not in paragraphs
    assert any(p.startswith("Zone fusionnée : Gao") and "calme" in p for p in paragraphs)
    assert any("Annexe" in p and "4200 réfugiés" in p for p in paragraphs)  # a nested table's text is kept


@pytest.mark.parametrize("text", ["Réunion à Gao.", "Élévation du fleuve à Ségou : l’œuvre d’une crue, août 2025."])
def test_short_windows_1252_text_is_not_read_as_another_code_page(tmp_path, text):
    (tmp_path / "c.txt").write_bytes(text.encode("cp1252"))
    assert read_document(tmp_path / "c.txt", tmp_path).text.strip() == text
    html = f"<html><body><h1>Note</h1><p>{text}</p></body></html>"  # no declared charset
    (tmp_path / "c.html").write_bytes(html.encode("cp1252"))
    assert text in read_document(tmp_path / "c.html", tmp_path).text


def test_html_layout_classes_and_article_headers_keep_the_content(tmp_path):
    page = """<html><body><div class="page layout-with-sidebar"><div class="content">
    <article><header class="entry-header"><h1>Bilan des attaques</h1></header>
    <p>Le bilan fait état de quarante morts à Kayes.</p>
    <table><tr><th>Région</th><th>Détails</th></tr>
    <tr><td>Kayes</td><td><table><tr><td>Morts</td><td>12</td></tr></table></td></tr></table>
    </article></div><div class="sidebar">Publicité</div></div></body></html>"""
    (tmp_path / "p.html").write_text(page, encoding="utf-8")
    doc, paragraphs = _read(tmp_path / "p.html", tmp_path)
    assert doc.title == "Bilan des attaques" and "Publicité" not in doc.text
    assert paragraphs == ["Le bilan fait état de quarante morts à Kayes.", "Région : Kayes | Détails : Morts 12"]


def test_a_file_skipped_for_its_size_does_not_make_the_index_stale(tmp_path, monkeypatch):
    import qa.documents
    from qa import build_index, check_freshness

    monkeypatch.setattr(qa.documents, "MAX_FILE_BYTES", 1000)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "note.txt").write_text("Une note courte sur Kayes.", encoding="utf-8")
    (tmp_path / "c" / "gros.txt").write_text("Texte. " * 500, encoding="utf-8")
    summary = build_index(tmp_path / "c", tmp_path / "index")
    assert [p for p, _ in summary.skipped] == ["gros.txt"] and "volumineux" in summary.skipped[0][1]
    assert not check_freshness(tmp_path / "index").stale
