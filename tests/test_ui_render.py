"""The app's HTML and handlers, without a browser: escaping, answer blocks, cards, follow-ups, source viewer."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
from pathlib import Path

import gradio as gr
import pytest

import qa
from qa import confidence
from qa.chunking import Passage, Sentence
from qa.confidence import Calibration, Logistic, Thresholds, calibration_for, relevance_label
from qa.index import load_index
from qa.wording import format_date
from ui import render
from ui.handlers import respond, retrieve_passages, show_source, summary
from ui.layout import build_app
from ui.serving import ensure_index

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
        sentences=((100 + s, 100 + s + len(sentence)),),
        sentence=Sentence(100 + s, 100 + s + len(sentence), sentence),
        dense_score=0.9,
        keyword_score=1.0,
    )


def _cards(page: str) -> list[str]:
    return re.findall(r'<div class="card">.*?<div class="card-actions">', page)


def _marks(fragment: str) -> list[str]:
    """The yellow highlights: the answer's quoted sentence, and nothing else."""
    return re.findall(r"<mark>(.*?)</mark>", fragment)


def _near_marks(fragment: str) -> list[str]:
    """The neutral highlights: a passage's closest sentence, not claimed as an answer."""
    return re.findall(r'<mark class="near">(.*?)</mark>', fragment)


def _badges(page: str) -> list[str]:
    return re.findall(r'<span class="rel rel-(\w+)"', page)


CALIBRATED = "essai-calibre"  # a model id of the tests' own, calibrated in a temporary folder


@pytest.fixture
def calibration(tmp_path, monkeypatch) -> Calibration:
    """A calibration file for CALIBRATED with round thresholds, read the way the engine reads its own
    (qa/calibration/ is refitted separately: the rendering must follow whatever thresholds it holds)."""
    # Built field by field: the engine's set of fitted models may grow; only the thresholds matter here.
    chosen = {"relevance_high": 0.6, "relevance_medium": 0.25}
    thresholds = Thresholds(**{f.name: chosen.get(f.name, 0.5) for f in dataclasses.fields(Thresholds)})
    logistic = Logistic(("dense",), (1.0,), 0.0)
    values = {"model": CALIBRATED, "thresholds": thresholds}
    cal = Calibration(**{f.name: values.get(f.name, logistic) for f in dataclasses.fields(Calibration)
                         if f.name in values or f.type in ("Logistic", Logistic)})
    monkeypatch.setattr(confidence, "CALIBRATION_DIR", tmp_path)
    confidence.calibration_file(CALIBRATED).write_text(json.dumps(cal.to_dict()), encoding="utf-8")
    confidence.calibration_for.cache_clear()
    yield cal
    confidence.calibration_for.cache_clear()


def _three_passages() -> tuple[Passage, Passage, Passage]:
    texts = [
        ("Le JNIM a revendiqué les attaques. Il est affilié à Al-Qaïda.", "Le JNIM a revendiqué les attaques."),
        ("Sept localités ont été visées. Kayes en fait partie.", "Kayes en fait partie."),
        ("La MINUSMA s'est retirée. Wagner la remplace.", "Wagner la remplace."),
    ]
    return tuple(_passage(t, s, rank=n) for n, (t, s) in enumerate(texts, start=1))


def _made_answer(outcome: str, *, quote_rank: int = 1, confidence_value: float | None = 0.87,
                 relevance: tuple = (0.9, 0.4, 0.1), calibration: str = CALIBRATED) -> qa.Answer:
    """An Answer as `qa.ask` builds it, for an outcome chosen by the test."""
    passages = _three_passages()
    chosen = None if outcome == "none" else passages[quote_rank - 1]
    question = "Qui a revendiqué les attaques ?"
    return qa.Answer(question=question, outcome=outcome, passages=passages, passage=chosen, query=question,
                     model="multilingual-e5-small", confidence=confidence_value, relevance=relevance,
                     calibration=calibration)


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
    answer = qa.Answer(question="Q <script>?", outcome="answer", passages=(p,), passage=p,
                       query="Avant ? Q <script>?", model="multilingual-e5-small")  # a follow-up
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
    _, shown, _ = respond("Qui a revendiqué les attaques ?", [], 3, None, index=report_index)
    expected = qa.ask("Qui a revendiqué les attaques ?", k=3, index=report_index)
    page = shown[1]["content"]
    assert expected.outcome in ("answer", "possible") and expected.passage.rank == 1
    head = page.split('<div class="sources-title">Sources</div>')[0]
    assert f'<span class="reponse-label">{html.escape(expected.label)}</span>' in head
    shown = "non calibrée" if expected.confidence is None else render.percent(expected.confidence)
    assert f"confiance {shown}</span>" in head
    assert html.escape(render.guillemets(expected.sentence.text)) in head
    assert ">[1]<span class=\"qa-sr-only\"> voir la source 1\u202f: " in head  # its name says which source
    assert "Jama’at Nusrat al-Islam wal-Muslimeen (JNIM)" in head
    cards = _cards(page)
    assert len(cards) == len(expected.passages) == 3
    for card, p in zip(cards, expected.passages, strict=True):
        assert f'<span class="card-num">[{p.rank}]</span>' in card
        assert html.escape(p.title) in card and html.escape(p.section) in card
        assert f"caractères {p.start}–{p.end}" in card
        assert "pertinence" in card
    first, others = cards[0], cards[1:]
    assert "Introduction : une escalade djihadiste dans plusieurs régions maliennes" in first
    assert _marks(first) == [html.escape(expected.sentence.text)] and _near_marks(first) == []
    for card, p in zip(others, expected.passages[1:], strict=True):  # marked, but not as the answer
        assert _marks(card) == [] and _near_marks(card) == [html.escape(p.sentence.text)]


def test_card_labels_come_from_each_passage_relevance(report_index):
    """On a real answer the labels follow the calibrated relevance of each passage, so they differ
    between the passage that answers and those that do not."""
    answer = qa.ask("Qui a revendiqué les attaques ?", k=3, index=report_index)
    page = render.render_answer(answer, 0)
    cal = None if answer.calibration == "rule" else calibration_for(answer.calibration)
    expected = [relevance_label(cal, r) or "none" for r in answer.relevance]
    assert _badges(page) == expected == [key or "none" for key in answer.relevance_levels]
    if cal is not None:
        assert expected[0] == "high" and len(set(expected)) > 1, answer.relevance
        for card, r in zip(_cards(page), answer.relevance, strict=True):
            assert f"probabilité estimée que le passage contienne la réponse\u202f: {render.percent(r)}" in card.lower()
    else:  # no calibration file for the model: no card claims a level
        assert set(expected) == {"none"} and page.count("pertinence non calibrée") == 3


def test_a_firm_answer_shows_its_confidence_in_french(calibration):
    page = render.render_answer(_made_answer("answer", confidence_value=0.8666), 2)
    assert '<div class="reponse"><div class="reponse-head"><span class="reponse-label">Réponse</span>' in page
    assert "confiance 87\u202f%</span>" in page
    assert "reponse-possible" not in page
    assert _marks(page) == ["Le JNIM a revendiqué les attaques."]


def test_a_possible_answer_is_hedged(calibration):
    answer = _made_answer("possible", quote_rank=2, confidence_value=0.42)
    page = render.render_answer(answer, 0)
    head, cards = page.split("Sources</div>")[0], _cards(page)
    assert '<div class="reponse reponse-possible">' in head and '<div class="reponse">' not in head
    assert '<span class="reponse-label">Réponse possible — à vérifier</span>' in head
    assert "confiance 42\u202f%" in head and html.escape(render.guillemets("Kayes en fait partie.")) in head
    assert ">[2]<span class=\"qa-sr-only\"> voir la source 2\u202f: Titre</span></button>" in head
    # Yellow only on the quoted sentence, in the card of the passage that holds it (the second).
    assert _marks(page) == ["Kayes en fait partie."] and _marks(cards[1]) == ["Kayes en fait partie."]
    assert _near_marks(cards[0]) == ["Le JNIM a revendiqué les attaques."] and _marks(cards[0]) == []
    assert _near_marks(cards[2]) == ["Wagner la remplace."]


def test_an_abstention_highlights_nothing_as_an_answer(calibration):
    page = render.render_answer(_made_answer("none", confidence_value=0.01, relevance=(0.2, 0.1, 0.05)), 0)
    assert html.escape(qa.NO_ANSWER) in page and "Passages les plus proches (sans réponse certaine)" in page
    assert "reponse" not in page and "confiance" not in page
    assert _marks(page) == [] and len(_near_marks(page)) == 3
    assert _badges(page) == ["low", "low", "low"]


def test_relevance_labels_follow_the_calibration_thresholds(calibration):
    # thresholds: high from 0.6, medium from 0.25
    page = render.render_answer(_made_answer("answer", relevance=(0.6, 0.25, 0.2499)), 0)
    assert _badges(page) == ["high", "medium", "low"]
    cards = _cards(page)
    assert "pertinence élevée" in cards[0] and "pertinence moyenne" in cards[1] and "pertinence faible" in cards[2]
    assert ('title="Probabilité estimée que le passage contienne la réponse\u202f: 60\u202f% '
            '(élevée à partir de 60\u202f%, moyenne à partir de 25\u202f%)."') in cards[0]


def test_an_uncalibrated_model_claims_no_probability():
    answer = _made_answer("possible", confidence_value=None, relevance=(None, None, None), calibration="rule")
    page = render.render_answer(answer, 0)
    assert "confiance non calibrée" in page and "%" not in page.split("Sources</div>")[0]
    assert _badges(page) == ["none"] * 3 and page.count("pertinence non calibrée") == 3
    assert "n&#x27;a pas de fichier de calibration" in page


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.87, "87\u202f%"), (0.8666, "87\u202f%"), (0.004, "<\u00a01\u202f%"), (0.0, "0\u202f%"),
     (0.996, ">\u00a099\u202f%"), (1.0, "100\u202f%"), (0.5, "50\u202f%")],
)
def test_percent_is_written_the_french_way(p, text):
    assert render.percent(p) == text


def _hex_luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours."""
    hi, lo = sorted((_hex_luminance(a), _hex_luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_highlight_colours_keep_text_readable():
    from ui.serving import STATIC

    css = (STATIC / "app.css").read_text(encoding="utf-8")

    def rule(selector: str) -> dict[str, str]:
        body = re.search(re.escape(selector) + r"[^{]*\{([^}]*)\}", css)[1]
        return dict((k.strip(), v.strip()) for k, v in (d.split(":", 1) for d in body.split(";") if ":" in d))

    near, quote = rule(".qa-answer mark.near"), rule(".qa-answer mark, ")
    assert near["background"] != quote["background"]  # grey for the closest sentence, yellow for the answer
    assert contrast(near["color"], near["background"]) >= 4.5
    assert contrast(quote["color"], quote["background"]) >= 4.5
    hedged = rule(".qa-answer .reponse-possible .reponse-text")
    assert "dashed" in hedged["border-left"] and "#1d4ed8" not in hedged["border-left"]
    assert contrast(hedged["color"], hedged["background"]) >= 4.5
    assert contrast(rule(".qa-answer .reponse-possible .reponse-label")["color"], "#ffffff") >= 4.5


def test_follow_up_uses_the_history(report_index):
    _, _, turns = respond("Quel groupe a mené les attaques ?", [], 3, None, index=report_index)
    box, shown, turns = respond("Quelle est son idéologie ?", turns, 3, None, index=report_index)
    assert box == "" and [t["id"] for t in turns] == [0, 1]
    assert [m["role"] for m in shown] == ["user", "assistant"]  # only this turn: the page appends it
    head = shown[1]["content"].split("Sources</div>")[0]
    assert "reponse-label" in head and "base idéologique" in head
    assert "Question comprise avec la précédente" in head
    alone = respond("Quelle est son idéologie ?", [], 3, None, index=report_index)[1][1]["content"]
    assert "Question comprise" not in alone


def test_chat_shows_the_question_escaped(report_index):
    _, chat, turns = respond("<img src=x onerror=alert(1)>", [], 2, None, index=report_index)
    assert chat[0] == {"role": "user", "content": "&lt;img src=x onerror=alert(1)&gt;"}
    assert turns[0]["question"] == "<img src=x onerror=alert(1)>"  # kept raw for follow-ups
    assert len(_cards(chat[1]["content"])) == 2
    turn = render.render_turn(chat)  # what the page appends to its conversation log
    assert turn.startswith('<article class="qa-turn"><div class="qa-user">&lt;img src=x onerror=alert(1)&gt;</div>')
    assert turn.endswith(f'<div class="qa-bot">{chat[1]["content"]}</div></article>') and "<img" not in turn


def test_a_refusal_in_the_viewer_is_escaped():
    shown = render.viewer_notice("Citation introuvable : <b>x</b> \u202e")
    assert shown == '<div class="src-empty" role="alert">Citation introuvable : &lt;b&gt;x&lt;/b&gt; \\u202e</div>'


def test_source_viewer_highlights_the_passage(report_index):
    _, _, turns = respond("Combien de localités ont été ciblées ?", [], 3, None, index=report_index)
    text = load_index(report_index).documents()["mali-attaques-juillet-2025.txt"]["text"]
    layout = re.compile(
        r'<div class="src-body"[^>]*>([^<]*)<mark id="hl" class="hl-passage">([^<]*)'
        r'<mark class="(hl-sentence|hl-near)">([^<]*)</mark>([^<]*)</mark>([^<]*)</div></div>'
    )
    headings = re.compile(r'<span class="src-h" role="heading" aria-level="3">([^<]*)</span>')  # issue 18
    answer = qa.ask("Combien de localités ont été ciblées ?", k=3, index=report_index)
    assert len(turns[-1]["citations"]) == 3
    for rank, c in turns[-1]["citations"].items():
        out = show_source(f"{turns[-1]['id']}:{rank}", turns, index=report_index)
        assert headings.search(out)  # the document's section headings are shown as headings
        out = headings.sub(r"\1", out)
        groups = layout.search(out).groups()
        # Yellow (hl-sentence) only for the quoted sentence; other passages' sentences are neutral.
        is_quote = answer.passage is not None and rank == answer.passage.rank
        assert groups[2] == ("hl-sentence" if is_quote else "hl-near") and c.quote is is_quote
        parts = [html.unescape(g) for g in groups[:2] + groups[3:]]
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
    c = render.Citation("d.txt", "T <i>", 6, 33, 6, 14, quote=True)
    out = render.render_source(text, c)
    assert "<script>" not in out and "<b>" not in out and "<i>" not in out
    assert '<mark id="hl" class="hl-passage"><mark class="hl-sentence">&lt;script&gt;</mark>' in out
    near = render.render_source(text, render.Citation("d.txt", "T", 6, 33, 6, 14))
    assert '<mark class="hl-near">&lt;script&gt;</mark>' in near and "hl-sentence" not in near
    with pytest.raises(ValueError):
        render.render_source(text, render.Citation("d.txt", "T", 10, 999, 10, 20))


# A right-to-left override (U+202E) turns «exe.gnp» into «png.exe» on screen; the isolates and the
# other embeddings reorder likewise; ESC and the C1 CSI start terminal sequences; none reaches a page raw.
BIDI_AND_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_bidi_overrides_and_control_characters_from_a_document_are_shown_as_escapes():
    sentence = "Le comité a approuvé \u202eexe.gnp\u202c le budget."
    p = dataclasses.replace(
        _passage(f"Avant \x1b[2J. {sentence} Après \u2066isolé\u2069.", sentence,
                 title="Rapport \u202dfaux\u202c", section="Section \x9b31m"),
        doc="note\u202etxt.exe",
    )
    answer = qa.Answer(question="Q ?", outcome="answer", passages=(p,), passage=p, query="Q ?",
                       model="multilingual-e5-small")
    out = render.render_answer(answer, turn=0)
    assert not BIDI_AND_CONTROLS.search(html.unescape(out))
    for shown in ("\\u202eexe.gnp\\u202c", "Avant \\x1b[2J.", "\\u2066isolé\\u2069", "Rapport \\u202dfaux\\u202c",
                  "Section \\x9b31m", "note\\u202etxt.exe"):
        assert html.escape(shown) in out, shown
    copied = re.search(r'class="copy-btn" value="([^"]*)"', out)[1]
    assert "\\u202eexe.gnp\\u202c" in html.unescape(copied)  # the citation put on the clipboard too
    text = f"Titre \u202e\n\n{sentence}\n"
    start = text.index(sentence)
    c = render.Citation(p.doc, p.title, start, start + len(sentence), start, start + len(sentence), quote=True)
    viewer = render.render_source(text, c, frozenset({"Titre \u202e"}))
    assert not BIDI_AND_CONTROLS.search(html.unescape(viewer))
    assert '<span class="src-h" role="heading" aria-level="3">Titre \\u202e</span>' in viewer


def test_source_viewer_names_the_page_of_a_pdf_citation():
    text = "Titre\n\nUne phrase citée ici."
    digest = render.passage_digest(text[7:28])
    pdf = render.render_source(text, render.Citation("r/a.pdf", "T", 7, 28, 7, 28, digest, page=2))
    assert "r/a.pdf · page 2, caractères 7–28" in pdf
    assert "page" not in render.render_source(text, render.Citation("a.txt", "T", 7, 28, 7, 28, digest))


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
        ("x" * 2001, 3, None, "Question trop longue (2001 caractères\u202f; maximum 2000)"),
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
    expected = sorted((f"{title} ({doc})", doc) for doc, title in titles.items())
    assert sorted(tuple(c) for c in dropdown.choices) == expected
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


def test_ask_endpoint_function(report_index):
    from ui.handlers import ask_answer

    first, follow_up = "Quel groupe a mené les attaques ?", "Quelle est son idéologie ?"
    expected = qa.ask(follow_up, [first], k=2, index=report_index).to_dict()
    parts = [{"role": "user", "content": [{"type": "text", "text": first}]}, {"role": "assistant", "content": "…"}]
    for history in ([first], [{"role": "user", "content": first}], parts):
        got = ask_answer(follow_up, history, 2, index=report_index)
        assert got["follow_up"] and got["sentence"] == expected["sentence"] and got["outcome"] == expected["outcome"]
        assert len(got["passages"]) == 2
    assert ask_answer(follow_up, None, index=report_index)["follow_up"] is False
    for bad in ("texte", {"role": "user"}, [None], [["liste"]], ["x" * 2001], ["q"] * 101,
                [{"role": "user", "content": 3}], [{"content": "sans rôle"}]):
        with pytest.raises(gr.Error, match="istorique"):
            ask_answer(follow_up, bad, 3, index=report_index)
    for question, k in (("", 3), (None, 3), ("Qui ?", 0), ("Qui ?", 51)):
        with pytest.raises(gr.Error):
            ask_answer(question, [], k, index=report_index)


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
    assert format_date("2026-11-24T08:58:48+00:00") == "24/11/2026 à 08:58 UTC"


def test_every_example_question_is_answered(report_index):
    from ui.layout import EXAMPLES

    assert 4 <= len(EXAMPLES) <= 6
    unanswered = [q for q in EXAMPLES if qa.ask(q, index=report_index).abstained]
    assert unanswered == []


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
    from ui.handlers import respond, show_source

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
    card = render.render_card(p, 0)
    assert "rapports/&lt;a&gt;.pdf" in card
    assert "page 3, caractères 100–121" in card
    assert "Section" in card and "Titre" in card
    assert "page " not in render.render_card(_passage("Sans numéro.", "Sans numéro."), 0)


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


def test_a_session_keeps_a_compact_state_of_at_most_max_turns(report_index):
    """Per turn: the question, where each citation points (a digest, not the passage) and the outcome; the
    answer's HTML goes to the page once and is not kept; the oldest turns go past MAX_TURNS."""
    import pickle

    from ui.handlers import MAX_TURNS

    _, shown, turns = respond("Qui a revendiqué les attaques ?", [], 3, None, index=report_index)
    (turn,) = turns
    assert set(turn) == {"id", "question", "citations", "outcome", "confidence"}
    assert all(len(c.digest) == 32 and not hasattr(c, "text") for c in turn["citations"].values())
    assert len(pickle.dumps(turn)) < len(shown[1]["content"]) / 5
    old = [{**turn, "id": i} for i in range(MAX_TURNS)]
    _, _, kept = respond("Et ses alliés ?", old, 3, None, index=report_index)
    assert len(kept) == MAX_TURNS and kept[0]["id"] == 1 and kept[-1]["id"] == MAX_TURNS
