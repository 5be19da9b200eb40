"""The app's HTML and handlers, without a browser: escaping, answer blocks, cards, follow-ups, source viewer."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import gradio as gr
import pytest

import qa
from qa.index import load_index, read_documents
from qa.search import Passage, Sentence
from ui import render
from ui.app import build_app, ensure_index, respond, retrieve_passages, show_source, summary

HOSTILE = '<script>alert("x")</script> <img src=x onerror=alert(1)> &amp; "quotes" \'apostrophe\''


def _passage(text: str, sentence: str, *, rank: int = 1, title: str = "Titre", section: str = "Section") -> Passage:
    """A hand-made passage starting at offset 100 of its document, its sentence inside it."""
    s = text.index(sentence)
    return Passage(
        rank=rank,
        score=0.25,
        doc="doc.txt",
        title=title,
        section=section,
        start=100,
        end=100 + len(text),
        text=text,
        sentence=Sentence(100 + s, 100 + s + len(sentence), sentence),
        dense_score=0.9,
        keyword_score=1.0,
    )


def _cards(page: str) -> list[str]:
    return re.findall(r'<div class="card">.*?<div class="card-actions">', page)


def _marks(fragment: str) -> list[str]:
    return re.findall(r"<mark>(.*?)</mark>", fragment)


def test_user_question_is_escaped():
    out = render.render_user(HOSTILE)
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;" in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "&amp;amp;" in out and "&quot;quotes&quot;" in out and "&#x27;apostrophe&#x27;" in out
    assert html.unescape(out) == HOSTILE


def test_report_text_is_escaped_in_answer_and_cards():
    sentence = "Une phrase <img src=x onerror=alert(1)> &amp; fin."
    p = _passage(
        f"Avant <script>alert(2)</script>. {sentence} Après.",
        sentence,
        title='Titre "<b>gras</b>"',
        section="Section <i>x</i> & co",
    )
    answer = qa.Answer("Q <script>?", False, (p,), p.sentence, p, sentence, "Q <script>?", True)
    out = render.render_answer(answer, turn=4)
    for raw in ("<script>", "<img", "<b>", "<i>"):
        assert raw not in out
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in out
    assert "Titre &quot;&lt;b&gt;gras&lt;/b&gt;&quot;" in out
    assert "Section &lt;i&gt;x&lt;/i&gt; &amp; co" in out
    assert _marks(out) == [html.escape(sentence)]
    assert "&amp;amp;" in out
    assert 'value="4:1"' in out  # citation buttons address this turn's passage
    assert "Question comprise avec la précédente" in out and "Q &lt;script&gt;?" in out


def test_answer_block_and_cards_from_the_report(report_index):
    _, _, turns = respond("Qui a revendiqué les attaques ?", [], 3, None, index=report_index)
    expected = qa.ask("Qui a revendiqué les attaques ?", k=3, index=report_index)
    page = turns[-1]["html"]
    assert not expected.abstained and expected.passage.rank == 1
    head = page.split('<div class="sources-title">Sources</div>')[0]
    assert '<div class="reponse-label">Réponse</div>' in head
    assert html.escape(render.quoted(expected.sentence.text)) in head
    assert ">[1]</button>" in head
    assert "Jama’at Nusrat al-Islam wal-Muslimeen (JNIM)" in head
    cards = _cards(page)
    assert len(cards) == len(expected.passages) == 3
    for card, p in zip(cards, expected.passages, strict=True):
        assert f'<span class="card-num">[{p.rank}]</span>' in card
        assert html.escape(p.title) in card and html.escape(p.section) in card
        assert f"caractères {p.start}–{p.end}" in card
        assert "pertinence" in card
        assert _marks(card) == [html.escape(p.sentence.text)]  # the answering sentence, highlighted once
    first = cards[0]
    assert "Introduction : une escalade djihadiste dans plusieurs régions maliennes" in first
    assert _marks(first) == [html.escape(expected.sentence.text)]
    assert 'class="rel rel-high"' in first


def test_abstention_shows_message_and_closest_passages(report_index):
    _, chat, turns = respond("Quelle est la hauteur de la tour Eiffel ?", [], 3, None, index=report_index)
    page = turns[-1]["html"]
    assert html.escape(qa.NO_ANSWER) in page
    assert "Passages les plus proches (sans réponse certaine)" in page
    assert "Réponse</div>" not in page
    assert len(_cards(page)) == 3
    assert 'class="rel rel-high"' not in page  # no passage claims to clear the answering bar
    assert chat[-1] == {"role": "assistant", "content": page}
    assert chat[-2] == {"role": "user", "content": "Quelle est la hauteur de la tour Eiffel ?"}


def test_follow_up_uses_the_history(report_index):
    _, _, turns = respond("Quel groupe a mené les attaques ?", [], 3, None, index=report_index)
    box, chat, turns = respond("Quelle est son idéologie ?", turns, 3, None, index=report_index)
    assert box == "" and len(chat) == 4 and [t["id"] for t in turns] == [0, 1]
    head = turns[-1]["html"].split("Sources</div>")[0]
    assert "Réponse" in head and "base idéologique" in head
    assert "Question comprise avec la précédente" in head
    alone = respond("Quelle est son idéologie ?", [], 3, None, index=report_index)[2][-1]["html"]
    assert "Question comprise" not in alone


def test_chat_shows_the_question_escaped(report_index):
    _, chat, turns = respond("<img src=x onerror=alert(1)>", [], 2, None, index=report_index)
    assert chat[0] == {"role": "user", "content": "&lt;img src=x onerror=alert(1)&gt;"}
    assert turns[0]["question"] == "<img src=x onerror=alert(1)>"  # kept raw for follow-ups
    assert len(_cards(chat[1]["content"])) == 2


def test_source_viewer_highlights_the_passage(report_index):
    _, _, turns = respond("Combien de localités ont été ciblées ?", [], 3, None, index=report_index)
    text = read_documents(report_index)["mali-attaques-juillet-2025.txt"]["text"]
    layout = re.compile(
        r'<div class="src-body">([^<]*)<mark id="hl" class="hl-passage">([^<]*)'
        r'<mark class="hl-sentence">([^<]*)</mark>([^<]*)</mark>([^<]*)</div></div>'
    )
    assert len(turns[-1]["citations"]) == 3
    for rank, c in turns[-1]["citations"].items():
        out = show_source(f"{turns[-1]['id']}:{rank}", turns, index=report_index)
        parts = [html.unescape(g) for g in layout.search(out).groups()]
        assert parts == [
            text[: c.start],
            text[c.start : c.sentence_start],
            text[c.sentence_start : c.sentence_end],
            text[c.sentence_end : c.end],
            text[c.end :],
        ]
        assert c.start < c.sentence_end and "".join(parts[1:4]) == text[c.start : c.end]
        assert f"caractères {c.start}–{c.end}" in out and "Mali attaques juillet 2025" in out


def test_source_viewer_escapes_the_document():
    text = "Début <script>alert(1)</script> & <b>passage</b> fin."
    c = render.Citation("d.txt", "T <i>", 6, 33, 6, 14)
    out = render.render_source(text, c)
    assert "<script>" not in out and "<b>" not in out and "<i>" not in out
    assert '<mark id="hl" class="hl-passage"><mark class="hl-sentence">&lt;script&gt;</mark>' in out
    with pytest.raises(ValueError):
        render.render_source(text, render.Citation("d.txt", "T", 10, 999, 10, 20))


def test_source_viewer_names_the_page_of_a_pdf_citation():
    text = "Titre\n\nUne phrase citée ici."
    pdf = render.render_source(text, render.Citation("r/a.pdf", "T", 7, 28, 7, 28, text[7:28], page=2))
    assert "r/a.pdf · page 2, caractères 7–28" in pdf
    assert "page" not in render.render_source(text, render.Citation("a.txt", "T", 7, 28, 7, 28, text[7:28]))


@pytest.mark.parametrize("selection", ["", "abc", "0:99", "7:1", "../../etc/passwd", "0:1" * 20, None, 12])
def test_source_viewer_refuses_unknown_citations(report_index, selection):
    _, _, turns = respond("Qui a revendiqué les attaques ?", [], 3, None, index=report_index)
    with pytest.raises(gr.Error) as err:
        show_source(selection, turns, index=report_index)
    assert "Citation" in err.value.message


@pytest.mark.parametrize(
    ("question", "k", "docs", "message"),
    [
        ("", 3, None, "La question est vide"),
        ("   \n ", 3, None, "La question est vide"),
        ("x" * 2001, 3, None, "Question trop longue (2001 caractères ; maximum 2000)"),
        (None, 3, None, "La question doit être un texte"),
        ("Qui ?", 0, None, "Le nombre de passages doit être un entier de 1 à 10"),
        ("Qui ?", 11, None, "Le nombre de passages doit être un entier de 1 à 10"),
        ("Qui ?", "3", None, "Le nombre de passages"),
        ("Qui ?", 3, ["/etc/passwd"], "Filtre de documents invalide"),
    ],
)
def test_invalid_chat_input_gives_a_french_error(report_index, question, k, docs, message):
    with pytest.raises(gr.Error) as err:
        respond(question, [], k, docs, index=report_index)
    assert message in err.value.message


def test_document_filter_and_float_k(report_index):
    only = ["mali-attaques-juillet-2025.txt"]
    _, _, turns = respond("Qui a revendiqué les attaques ?", [], 2.0, only, index=report_index)
    assert len(turns[-1]["citations"]) == 2


def test_document_filter_with_two_documents(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "budget.txt").write_text("Budget\nLe conseil a voté un budget de dix millions.\n", encoding="utf-8")
    (corpus / "ecoles.txt").write_text("Écoles\nTrois écoles ont ouvert dans la ville.\n", encoding="utf-8")
    index = tmp_path / "index"
    qa.build_index(corpus, index)
    _, _, turns = respond("Combien d'écoles ont ouvert ?", [], 3, ["budget.txt"], index=index)
    assert {c.doc for c in turns[-1]["citations"].values()} == {"budget.txt"}
    demo = build_app(index, corpus)
    (dropdown,) = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown)]
    assert dropdown.visible is True and dropdown.multiselect
    titles = {doc: info["title"] for doc, info in load_index(index).manifest["documents"].items()}
    assert sorted(tuple(c) for c in dropdown.choices) == sorted((f"{title} ({doc})", doc) for doc, title in titles.items())
    assert sorted(titles) == ["budget.txt", "ecoles.txt"]
    # After a rebuild with a changed document, an old citation is refused rather than misplaced.
    (corpus / "budget.txt").write_text("Budget\nLe conseil a rejeté le budget.\n", encoding="utf-8")
    qa.build_index(corpus, index)
    with pytest.raises(gr.Error) as err:
        show_source(f"{turns[-1]['id']}:1", turns, index=index)
    assert "plus dans l'index actuel" in err.value.message


def test_one_document_hides_the_filter(report_index, report_corpus):
    demo = build_app(report_index, report_corpus)
    (dropdown,) = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown)]
    assert dropdown.visible is False


def test_retrieve_endpoint_function(report_index):
    rows = retrieve_passages("Qui a revendiqué les attaques ?", 2, index=report_index)
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["sentence"]["text"].startswith("Ces attaques, revendiquées")
    for bad, k in (("", 3), ("x" * 2001, 3), ("Qui ?", 51), ("Qui ?", True)):
        with pytest.raises(gr.Error):
            retrieve_passages(bad, k, index=report_index)


def test_missing_index_is_a_french_error(tmp_path):
    with pytest.raises(gr.Error) as err:
        respond("Qui ?", [], 3, None, index=tmp_path / "nothing")
    assert "qa index build" in err.value.message
    assert "Aucun index trouvé" in summary(tmp_path / "nothing", None)


def test_summary_and_stale_warning(report_index, report_corpus, tmp_path):
    fresh = summary(report_index, report_corpus)
    manifest = load_index(report_index).manifest
    assert "1 document (Mali attaques juillet 2025)" in fresh
    assert f"{manifest['counts']['passages']} passages" in fresh and "multilingual-e5-small" in fresh
    assert "index construit le" in fresh and "Index périmé" not in fresh
    grown = tmp_path / "corpus"
    shutil.copytree(report_corpus, grown)
    (grown / "nouveau.txt").write_text("Un nouveau rapport.\n", encoding="utf-8")
    stale = summary(report_index, grown)
    assert "Index périmé (1 ajouté(s))" in stale
    assert render.format_date("2026-11-24T08:58:48+00:00") == "24/11/2026 à 08:58 UTC"


def test_every_example_question_is_answered(report_index):
    from ui.app import EXAMPLES

    assert 4 <= len(EXAMPLES) <= 6
    unanswered = [q for q in EXAMPLES if qa.ask(q, index=report_index).abstained]
    assert unanswered == []


def test_relevance_follows_the_answering_rule(report_index):
    answered = qa.ask("Qui a revendiqué les attaques ?", index=report_index)
    abstained = qa.ask("Quelle est la hauteur de la tour Eiffel ?", index=report_index)
    assert render.relevance(answered.passages[0], answered.query) == "high"
    assert {render.relevance(p, abstained.query) for p in abstained.passages} <= {"medium", "low"}


def test_ensure_index_builds_then_rebuilds_when_stale(tmp_path, capsys):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    doc = corpus / "court.txt"
    doc.write_text("Rapport court\nLe comité a approuvé le budget annuel.\n", encoding="utf-8")
    ensure_index(index, corpus)
    assert "Index absent ou périmé : reconstruction…" in capsys.readouterr().err
    assert load_index(index).manifest["counts"]["documents"] == 1
    ensure_index(index, corpus)
    assert "reconstruction" not in capsys.readouterr().err
    doc.write_text("Rapport court\nLe comité a rejeté le budget annuel.\n", encoding="utf-8")
    ensure_index(index, corpus)
    assert "reconstruction" in capsys.readouterr().err
    assert not qa.check_freshness(index, corpus).stale


def test_ensure_index_keeps_the_corpus_the_index_was_built_from(tmp_path, capsys, monkeypatch):
    corpus, index = tmp_path / "rapports", tmp_path / "index"
    corpus.mkdir()
    (corpus / "note.txt").write_text("Une note sur Gao.\n", encoding="utf-8")
    qa.build_index(corpus, index)
    monkeypatch.chdir(tmp_path)  # no ./corpus here: serving must not rebuild from it
    assert ensure_index(index).resolve() == corpus.resolve()
    assert "reconstruction" not in capsys.readouterr().err


def test_a_citation_from_before_a_rebuild_is_not_highlighted_in_the_new_text(tmp_path):
    from ui.app import respond, show_source

    corpus, index = tmp_path / "c", tmp_path / "index"
    corpus.mkdir()
    doc = corpus / "note.txt"
    doc.write_text("Titre\n\nLe comité a approuvé le budget de Gao.\n", encoding="utf-8")
    qa.build_index(corpus, index)
    _, _, turns = respond("Qu'a approuvé le comité ?", [], 1, None, index=index)
    assert "mark" in show_source("0:1", turns, index=index)  # while the index is unchanged
    doc.write_text("Titre\n\nAvant tout : le comité a approuvé le budget de Gao.\n", encoding="utf-8")
    qa.build_index(corpus, index)  # same document, offsets shifted
    with pytest.raises(gr.Error, match="plus dans l'index"):
        show_source("0:1", turns, index=index)


def test_card_cites_document_path_page_and_section():
    from dataclasses import replace

    p = replace(_passage("Une phrase sur Kayes.", "Une phrase sur Kayes."), doc="rapports/<a>.pdf", page=3)
    card = render.render_card(p, 0, "Kayes ?")
    assert "rapports/&lt;a&gt;.pdf" in card
    assert "page 3, caractères 100–121" in card
    assert "Section" in card and "Titre" in card
    assert "page " not in render.render_card(_passage("Sans numéro.", "Sans numéro."), 0, "q")


def test_ensure_index_rebuilds_with_the_model_the_index_was_built_with(tmp_path, capsys):
    from qa import build_index
    from qa.model import resolve_model

    model_dir = resolve_model(None)[1]  # the converted bundled model, named by its path: another model id
    corpus, index = tmp_path / "c", tmp_path / "idx"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Une note sur Kayes.", encoding="utf-8")
    build_index(corpus, index, model=model_dir)
    (corpus / "b.txt").write_text("Une note sur Gao.", encoding="utf-8")  # stale now
    ensure_index(index, corpus)
    assert "reconstruction" in capsys.readouterr().err
    assert load_index(index).model_id == str(Path(model_dir).resolve()) != "multilingual-e5-small"
