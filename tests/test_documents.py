from __future__ import annotations

from pathlib import Path

import pytest

from qa.chunking import MAX_WORDS, chunk_document, indexed_text
from qa.documents import read_document, scan_corpus

from .conftest import REPORT

HEADINGS = [
    "Introduction : une escalade djihadiste dans plusieurs régions maliennes",
    "Les détails des attaques et leurs répercussions",
    "Impacts sur la stabilité et la sécurité dans le Mali et au Sahel",
    "Réactions nationales et internationales",
    "Enjeux pour l’avenir",
]


@pytest.fixture(scope="module")
def report():
    return read_document(REPORT, REPORT.parent)


def test_report_has_five_headings_and_nine_paragraphs(report):
    assert [h.text for h in report.headings] == HEADINGS
    assert len(report.paragraphs) == 9
    assert report.doc_id == "mali-attaques-juillet-2025.txt"
    assert report.title == "Mali attaques juillet 2025"


def test_every_report_passage_is_verbatim(report):
    passages = chunk_document(report)
    assert len(passages) == 9  # every paragraph is under the length limit
    text = REPORT.read_text(encoding="utf-8")
    for p in passages:
        assert p.text == text[p.start : p.end] == report.text[p.start : p.end]
        assert p.text.strip() == p.text and p.text
        for s, e in p.sentences:
            assert p.start <= s < e <= p.end
            assert text[s:e].strip() == text[s:e]


def test_passages_carry_their_section(report):
    passages = chunk_document(report)
    assert passages[0].section == HEADINGS[0]
    assert passages[0].text.startswith("Au début du mois de juillet 2025")
    assert passages[6].section == HEADINGS[3]
    assert [p.section for p in passages].count(HEADINGS[4]) == 1


def test_indexed_text_has_context_header(report):
    p = chunk_document(report)[2]
    assert indexed_text(p) == f"Mali attaques juillet 2025 — {HEADINGS[1]}\n{p.text}"


def test_long_paragraph_is_split_on_sentences(tmp_path):
    sentence = "Les forces armées ont repris le contrôle de la ville après trois jours de combats intenses. "
    body = sentence * 30  # ~450 words
    (tmp_path / "long.txt").write_text("Titre\n\nSection longue\n" + body.strip() + "\n", encoding="utf-8")
    doc = read_document(tmp_path / "long.txt", tmp_path)
    passages = chunk_document(doc)
    assert doc.title == "Titre" and [h.text for h in doc.headings] == ["Section longue"]
    assert len(passages) >= 4
    for p in passages:
        assert len(p.text.split()) <= MAX_WORDS
        assert p.text == doc.text[p.start : p.end]
        assert p.text.endswith(".")  # cut between sentences, never inside one
        assert p.section == "Section longue"
    assert passages[0].start < passages[1].start


def test_hard_wrapped_text_is_joined_into_paragraphs(tmp_path):
    text = (
        "Rapport de mission\n\nContexte général\nLa mission s'est rendue à Gao\n"
        "pendant la saison des pluies.\nElle a rencontré les autorités.\n"
    )
    (tmp_path / "r.txt").write_text(text, encoding="utf-8")
    doc = read_document(tmp_path / "r.txt", tmp_path)
    assert [h.text for h in doc.headings] == ["Contexte général"]
    got = [doc.text[p.start : p.end] for p in doc.paragraphs]
    assert got == ["La mission s'est rendue à Gao\npendant la saison des pluies.", "Elle a rencontré les autorités."]


def test_markdown_headings_title_and_front_matter(tmp_path):
    text = (
        "---\nauteur: X\n---\n# Rapport sur Gao\n\nIntro ici.\n\n## Sécurité\n\n"
        "Premier paragraphe\nsur deux lignes.\n\n"
        "- point un\n- point deux\n"
    )
    (tmp_path / "r.md").write_text(text, encoding="utf-8")
    doc = read_document(tmp_path / "r.md", tmp_path)
    assert doc.title == "Rapport sur Gao"
    assert [(h.text, h.level) for h in doc.headings] == [("Rapport sur Gao", 1), ("Sécurité", 2)]
    paras = [doc.text[p.start : p.end] for p in doc.paragraphs]
    assert paras == ["Intro ici.", "Premier paragraphe\nsur deux lignes.", "- point un\n- point deux"]
    assert all("auteur" not in p for p in paras)
    assert chunk_document(doc)[1].section == "Sécurité"


def test_bom_and_crlf_are_handled(tmp_path):
    (tmp_path / "w.txt").write_bytes("\ufeffTitre\r\n\r\nUne phrase.\r\n".encode())
    doc = read_document(tmp_path / "w.txt", tmp_path)
    assert doc.title == "Titre"
    assert [doc.text[p.start : p.end] for p in doc.paragraphs] == ["Une phrase."]


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("bin.txt", b"\x00\x01\x02abc", "binaire"),
    ("empty.md", b"  \n", "vide"),
    ("image.png", b"\x89PNG\r\n\x1a\n", "format non pris en charge"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", "illisible"),
    ("broken.docx", b"PK\x03\x04 pas un zip", "illisible"),
])
def test_unreadable_files_raise_value_error_with_a_french_reason(tmp_path, name, data, reason):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match=reason):
        read_document(tmp_path / name, tmp_path)


def test_corpus_listing_skips_hidden_files_and_own_readme(tmp_path):
    for rel in ["a.txt", "sub/b.md", ".hidden.txt", ".git/c.txt", "README.md", "sub/README.md", "x.pdf"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("Texte.", encoding="utf-8")
    got = [p.relative_to(tmp_path).as_posix() for p in scan_corpus(tmp_path).files]
    assert got == ["a.txt", "sub/README.md", "sub/b.md", "x.pdf"]  # x.pdf is listed so a build can report it


def test_an_index_inside_the_corpus_is_not_read_as_documents(tmp_path):
    (tmp_path / "note.txt").write_text("Une note.", encoding="utf-8")
    (tmp_path / "index" / "build-1").mkdir(parents=True)
    (tmp_path / "index" / "CURRENT").write_text("build-1\n", encoding="utf-8")
    (tmp_path / "index" / "build-1" / "manifest.json").write_text("{}", encoding="utf-8")
    (tmp_path / "notes-index").mkdir()  # a folder merely named like one is read
    (tmp_path / "notes-index" / "a.md").write_text("# A\n\nTexte.", encoding="utf-8")
    assert [p.relative_to(tmp_path).as_posix() for p in scan_corpus(tmp_path).files] == ["note.txt", "notes-index/a.md"]


def test_doc_id_is_relative_posix_path(tmp_path):
    (tmp_path / "sahel" / "2025").mkdir(parents=True)
    path = tmp_path / "sahel" / "2025" / "note.txt"
    path.write_text("Une note.", encoding="utf-8")
    assert read_document(path, tmp_path).doc_id == "sahel/2025/note.txt"
    assert Path(read_document(path, tmp_path).doc_id).parts == ("sahel", "2025", "note.txt")
