"""The app in a real Chromium: answer cards, abstention, HTML-safe questions, the source viewer, a new
conversation."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

import qa
from qa.index import load_index

from .conftest import ROOT

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# README's picture: written where QA_SCREENSHOT points (`QA_SCREENSHOT=docs/screenshot.png pytest -m browser`
# refreshes it); by default into the test's temporary folder, so a test run leaves the tree clean.
SCREENSHOT_ENV = "QA_SCREENSHOT"
DOC = "mali-attaques-juillet-2025.txt"


@pytest.fixture(scope="module")
def app_url(report_index, report_corpus):
    from ui.serving import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = serve(host="127.0.0.1", port=port, corpus=report_corpus, index=report_index, prevent_thread_lock=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it with `apt-get install -y chromium`.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(app_url)
    page.wait_for_selector("#question textarea")
    try:
        yield page
    finally:
        context.close()


def ask(page, question: str) -> float:
    """Type and submit a question; wait for its answer; the seconds from submit to rendered answer."""
    before = page.locator("#chat .qa-answer").count()
    page.locator("#question textarea").fill(question)
    start = time.perf_counter()
    page.locator("#question textarea").press("Enter")
    page.wait_for_function(f"document.querySelectorAll('#chat .qa-answer').length > {before}", timeout=30_000)
    return time.perf_counter() - start


def open_citation(page, turn_answer, rank: int):
    turn_answer.locator(f'.card-actions button.cite-btn[value$=":{rank}"]').click()
    page.wait_for_selector("#viewer #hl", timeout=10_000)


def test_answer_card_and_source_viewer(page, report_index, capsys, tmp_path):
    from playwright.sync_api import expect

    question = "Qui a revendiqué les attaques ?"
    expected = qa.ask(question, k=3, index=report_index)
    seconds = ask(page, question)
    answer = page.locator("#chat .qa-answer").last
    assert answer.locator(".reponse-label").inner_text().strip().lower() == expected.label.lower()
    assert answer.locator(".confiance").inner_text().startswith("confiance ")
    assert expected.sentence.text in answer.locator(".reponse-text").inner_text()
    card = answer.locator(".card").first
    assert card.locator(".card-section").inner_text() == expected.passages[0].section
    assert card.locator("mark").count() == 1
    assert card.locator("mark").inner_text() == expected.sentence.text
    check_highlights(answer, quote=expected.sentence.text)
    assert f"caractères {expected.passages[0].start}–{expected.passages[0].end}" in card.inner_text()

    open_citation(page, answer, 1)
    text = load_index(report_index).documents()[DOC]["text"]
    top = expected.passages[0]
    hl = page.locator("#viewer #hl")
    assert hl.inner_text() == text[top.start : top.end]
    assert page.locator("#viewer .hl-sentence").inner_text() == expected.sentence.text
    # The passage is tinted, not yellow: yellow is the quoted sentence's alone (nor a <mark>'s default).
    assert hl.evaluate("e => getComputedStyle(e).backgroundColor") not in (YELLOW, "rgb(255, 255, 0)")
    expect(hl).to_be_in_viewport()
    wanted = os.environ.get(SCREENSHOT_ENV)
    screenshot = ROOT / wanted if wanted else tmp_path / "screenshot.png"  # tests run in a temporary cwd
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000  # a real rendered page, not an empty image
    with capsys.disabled():
        print(f"\n[ui] submit → rendered answer: {seconds:.2f} s")

    # A passage near the end of the document: the viewer must scroll to bring it into view.
    last = max(expected.passages, key=lambda p: p.start)
    later = qa.ask("Quelles sont les conséquences pour les civils ?", k=3, index=report_index)
    ask(page, "Quelles sont les conséquences pour les civils ?")
    far = max(later.passages, key=lambda p: p.start)
    assert far.start > last.start
    page.locator("#viewer #hl").wait_for()
    open_citation(page, page.locator("#chat .qa-answer").last, far.rank)
    opening = text[far.start : far.start + 30]
    page.wait_for_function(f"document.querySelector('#viewer #hl').innerText.startsWith({opening!r})")
    expect(page.locator("#viewer #hl")).to_be_in_viewport()
    assert page.locator("#viewer .src-body").evaluate("e => e.scrollTop") > 0


YELLOW = "rgb(253, 230, 138)"


def _luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def check_highlights(answer, quote: str | None) -> None:
    """As rendered: yellow only on the quoted sentence (none when `quote` is None); every other card's
    closest sentence in a neutral tint whose text keeps a contrast of at least 4.5:1."""
    styles = answer.locator(".card mark").evaluate_all(
        "ms => ms.map(m => [m.innerText, getComputedStyle(m).backgroundColor, getComputedStyle(m).color])"
    )
    assert len(styles) == answer.locator(".card").count()
    yellow = [text for text, background, _ in styles if background == YELLOW]
    assert yellow == ([] if quote is None else [quote])
    for _, background, colour in styles:
        hi, lo = sorted((_luminance(background), _luminance(colour)), reverse=True)
        assert (hi + 0.05) / (lo + 0.05) >= 4.5, (background, colour)


def test_follow_up_in_the_chat(page):
    ask(page, "Quel groupe a mené les attaques ?")
    ask(page, "Quelle est son idéologie ?")
    assert "base idéologique" in page.locator("#chat .qa-answer").last.locator(".reponse-text").inner_text()


def test_out_of_scope_question_abstains(page):
    ask(page, "Quelle est la hauteur de la tour Eiffel ?")
    answer = page.locator("#chat .qa-answer").last
    assert answer.locator(".noanswer").inner_text() == qa.NO_ANSWER
    assert answer.locator(".sources-title").text_content() == "Passages les plus proches (sans réponse certaine)"
    assert answer.locator(".card").count() == 3
    assert answer.locator(".reponse").count() == 0
    check_highlights(answer, quote=None)  # an abstention highlights nothing as an answer


def test_html_question_is_shown_as_text(page):
    question = "<img src=x onerror=alert(1)>"
    ask(page, question)
    page.wait_for_timeout(500)  # give a would-be onerror handler time to fire
    user = page.locator("#chat .qa-user").last
    assert user.inner_text().strip() == question
    assert page.locator("#chat .qa-user img").count() == 0
    assert page.dialogs == []


def test_empty_question_is_refused_in_french_and_keeps_the_chat(page):
    ask(page, "Combien de localités ont été ciblées ?")
    page.locator("#question textarea").fill("   ")
    page.locator("#question textarea").press("Enter")
    refusal = page.get_by_text("La question est vide\u202f: écrivez une question sur le rapport.")
    refusal.wait_for(timeout=10_000)
    assert page.locator("#chat .qa-answer").count() == 1
    assert page.locator("#chat .qa-answer").first.is_visible()
    ask(page, "Qui a revendiqué les attaques ?")  # the next answer clears the refusal
    assert page.locator("#qa-bar .qa-notice").is_hidden()


def test_new_conversation_empties_the_chat_and_the_viewer(page):
    ask(page, "Quel groupe a mené les attaques ?")
    open_citation(page, page.locator("#chat .qa-answer").last, 1)
    page.get_by_role("button", name="Nouvelle conversation").click()
    page.wait_for_function("document.querySelectorAll('#chat .qa-turn').length === 0")
    page.locator("#viewer .src-empty").wait_for()
    assert page.get_by_text("Posez une question sur le rapport.").is_visible()
    ask(page, "Quelle est son idéologie ?")  # read as a follow-up of the question before, had it been kept
    assert page.locator("#chat .qa-answer").count() == 1
    assert page.locator("#chat .qa-answer .followup").count() == 0


HOSTILE_DOC = """# Rapport <script>window.__pwned = 1</script>

## Section <img src=x onerror="window.__pwned = 2">

Les drones kamikazes ont frappé Kayes <script>window.__pwned = 3</script> le 1er juillet \u202e0202 telliuj\u202c. Voir [le lien](javascript:window.__pwned=4) et &lt;b&gt;gras&lt;/b&gt; &amp; <img src=x onerror="window.__pwned = 5"> <a href="javascript:window.__pwned=6">ici</a>.
"""


@pytest.fixture(scope="module")
def hostile_url(tmp_path_factory):
    """The app over a document full of markup and bidi overrides, as a hostile saved page or Markdown file
    would be; its file name holds a right-to-left override too (shown raw, «piege», U+202E, «txt.md»
    would read «piegedm.txt»)."""
    from ui.serving import serve

    root = tmp_path_factory.mktemp("hostile")
    (root / "corpus").mkdir()
    (root / "corpus" / "piege\u202etxt.md").write_text(HOSTILE_DOC, encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = serve(host="127.0.0.1", port=port, corpus=root / "corpus", index=root / "index", prevent_thread_lock=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


def test_markup_in_passages_and_questions_never_runs(browser, hostile_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(hostile_url)
        page.wait_for_selector("#question textarea")
        ask(page, "Les drones ont-ils frappé Kayes ? <script>window.__pwned = 7</script> "
                  "[x](javascript:window.__pwned=8) &amp;")
        answer = page.locator("#chat .qa-answer").last
        open_citation(page, answer, 1)
        page.wait_for_timeout(700)  # time for any onerror handler or script to fire
        assert page.evaluate("window.__pwned") is None and dialogs == []
        for area in ("#chat", "#viewer"):
            assert page.locator(f"{area} script, {area} img, {area} a[href^='javascript']").count() == 0
        card = answer.locator(".card").first.inner_text()
        assert "<script>window.__pwned = 3</script>" in card  # shown as text, verbatim
        assert "&lt;b&gt;gras&lt;/b&gt; &amp;" in card  # entities in the source stay as written
        assert "[le lien](javascript:window.__pwned=4)" in card
        # the title, then the section
        assert "<script>window.__pwned = 1</script>" in card and 'onerror="window.__pwned = 2"' in card
        user = page.locator("#chat .qa-user").last.inner_text()
        assert "<script>window.__pwned = 7</script>" in user and "&amp;" in user
        assert '<img src=x onerror="window.__pwned = 5">' in page.locator("#viewer").inner_text()
        # The overrides, from the text and the file name, are shown as escapes: the words keep their order.
        shown = page.locator("#summary, #chat, #viewer").all_inner_texts()
        assert not any(re.search("[\u202a-\u202e\u2066-\u2069]", text) for text in shown)
        assert "juillet \\u202e0202 telliuj\\u202c." in card and "piege\\u202etxt.md" in card
    finally:
        context.close()
