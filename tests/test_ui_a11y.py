"""The app for every reader (issue 18), in a real Chromium: no serious or critical axe-core violation on
the empty page, an answer, the source viewer, an abstention, a refusal and a phone; a keyboard-only round trip
from the question to the newest answer, a citation's source and back; the short spoken announcement of each
answer; a name of its own for each citation button; «Copier la citation»; French typography in what the
page writes; no English in a French browser's accessibility tree (Gradio's own words from its French
locale, the app's in French); a wait said in French; a chat without a box of its own; the viewer as a
drawer on a phone.

README's pictures: `QA_SCREENSHOT=docs/screenshot.png QA_SCREENSHOT_PHONE=docs/screenshot-phone.png
pytest -m browser tests/test_ui_a11y.py` refreshes them (by default they go into the test's temporary folder).
"""

from __future__ import annotations

import os
import re
import time

import httpx
import pytest

import qa
from qa.wording import NNBSP, guillemets

from .conftest import ROOT
from .test_ui_app import free_port
from .test_ui_browser import app_url, ask, browser  # noqa: F401  (the same served app and Chromium)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
QUESTION = "Qui a revendiqué les attaques ?"
FAR = "Quelle est la hauteur de la tour Eiffel ?"
# A plain or no-break space before ? ! : ; or », or after «: French typography wants a narrow one.
LOOSE = re.compile(r"[ \u00a0][?!:;»]|«[ \u00a0]")
# What the report and the reader wrote is shown as written: the typography check reads the rest.
QUOTED = (".card-text, .reponse-text, .card-title, .card-section, .src-body, .src-title, .src-section, "
          ".qa-user, #qa-live, #summary, script, style, svg")
# Words of Gradio's own English (its page script writes some whatever the browser's language: the app
# keeps away from the components that do, gr.Chatbot, gr.Slider and the toasts).
ENGLISH = re.compile(r"\b(scroll|loading|copy|copied|clear|submit|error|close|reset|input|slider|default|"
                     r"processing|settings|retry|undo|delete|edit|share|download|upload|drop|click|search|"
                     r"remove|send|show|hide|open|expand|collapse|toggle|built|waiting|warning|success|busy|"
                     r"please|the|and|of|for|with|to|is|your|this)\b|'s message|queue\s*:", re.I)


def open_page(browser, url, viewport, **options):  # noqa: F811
    options.setdefault("locale", "fr-FR")
    context = browser.new_context(viewport=viewport, **options)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#question textarea")
    page.wait_for_timeout(300)  # the page's script runs once the app has loaded
    return context, page


def serious(page) -> list[tuple[str, int, list]]:
    """The serious and critical axe-core violations of the page as it is: (rule, count, first targets)."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [(v["id"], len(v["nodes"]), [n["target"] for n in v["nodes"][:3]])
            for v in found if v["impact"] in ("serious", "critical")]


def screenshot(page, variable: str, default):
    wanted = os.environ.get(variable)
    path = ROOT / wanted if wanted else default
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


def ax_texts(page) -> list[str]:
    """Every name, description and value in the accessibility tree, as Chromium gives it to a screen
    reader (its own computation, through the DevTools protocol), hidden and ignored nodes left out."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = [n for n in cdp.send("Accessibility.getFullAXTree")["nodes"] if not n.get("ignored")]
    finally:
        cdp.detach()
    fields = [n.get(f, {}).get("value") for n in nodes for f in ("name", "description", "value")]
    return [text for text in fields if isinstance(text, str) and text.strip()]


def accessible_names(page, selector: str) -> list[str]:
    """The accessible names Chromium computes for the elements `selector` finds, in page order."""
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        ids = cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})["nodeIds"]
        return [cdp.send("Accessibility.getPartialAXTree", {"nodeId": i, "fetchRelatives": False})["nodes"][0]
                ["name"]["value"] for i in ids]
    finally:
        cdp.detach()


def page_wording(page) -> list[str]:
    """What the app writes on the page, line by line, and its titles, labels and placeholders: the
    page's text without the report's and the reader's own (QUOTED)."""
    return page.evaluate("""(quoted) => {
        const copy = document.body.cloneNode(true);
        copy.querySelectorAll(quoted).forEach(e => e.remove());
        const attributes = [...copy.querySelectorAll('*')].flatMap(e =>
            ['title', 'aria-label', 'placeholder', 'alt'].map(a => e.getAttribute(a)).filter(Boolean));
        const walker = document.createTreeWalker(copy, NodeFilter.SHOW_TEXT);
        const texts = [];
        while (walker.nextNode()) texts.push(walker.currentNode.data);
        return [...texts, ...attributes].filter(t => t.trim());
      }""", QUOTED)


def loose_typography(page) -> list[str]:
    return [text for text in page_wording(page) if LOOSE.search(text)]


def no_inner_scroll(page) -> list[str]:
    """The chat's elements that scroll inside a box of their own (none: the page is the one scroll)."""
    return page.evaluate("""() => [...document.querySelectorAll('#chat, #chat *')].filter(e => {
        const s = getComputedStyle(e);
        return /(auto|scroll)/.test(s.overflowY) && e.scrollHeight > e.clientHeight + 1;
      }).map(e => e.className || e.tagName)""")


def test_desktop_has_no_serious_violation_and_copies_a_citation(browser, app_url, report_index, tmp_path):  # noqa: F811
    context, page = open_page(browser, app_url, DESKTOP, permissions=["clipboard-read", "clipboard-write"])
    try:
        assert serious(page) == [], "empty page"
        assert page.evaluate("document.documentElement.lang") == "fr"  # Gradio's, from the browser's language
        assert "Utiliser via API" in page.locator("footer").inner_text()  # Gradio's French locale
        assert loose_typography(page) == []
        examples = page.get_by_text(f"Qui a revendiqué les attaques{NNBSP}?", exact=True)
        assert examples.count() >= 1  # an example question never wraps its «?» alone onto the next line

        expected = qa.ask(QUESTION, k=3, index=report_index)
        ask(page, QUESTION)
        answer = page.locator("#chat .qa-answer").last
        assert serious(page) == [], "answered page"
        assert no_inner_scroll(page) == []
        # no button in the conversation but the answers' own (no clear icon repeating «Nouvelle conversation»)
        assert page.locator("#chat button:visible").evaluate_all(
            "bs => bs.filter(b => !b.closest('.qa-answer')).length") == 0
        page.wait_for_function("document.querySelector('#qa-live').textContent.length > 0")
        said = page.locator("#qa-live").text_content()
        assert said.startswith(expected.label) and expected.sentence.text in said and "3 sources" in said
        # the conversation is not a live region: only the short announcement is said, not the cards
        assert page.evaluate("document.querySelector('#chat .qa-log').closest('[aria-live]:not([aria-live=off])')"
                             " === null")
        assert loose_typography(page) == []
        assert len(page_wording(page)) > 40  # the check reads the answer's labels, not an empty page

        # Each citation button has a name of its own, in French, that says which source it acts on.
        names = accessible_names(page, "#chat .qa-answer button")
        cards = answer.locator(".card").count()
        assert len(names) == 2 * cards + 2 and len(set(names)) == len(names), names
        pattern = (r"(\[\d+\] voir la|Voir dans le document la|Copier la citation de la( réponse,)?) "
                   r"source (\d+)\u202f: (.+)")
        for name in names:
            match = re.fullmatch(pattern, name)
            assert match and match[4] == expected.passages[int(match[3]) - 1].title, name

        # «Copier la citation» on the answer and on each card, the citation on the clipboard.
        top = expected.passage
        where = ", ".join(x for x in (top.title, top.section, f"p.{NNBSP}{top.page}" if top.page else "") if x)
        citation = (f"{guillemets(expected.sentence.text)} — {where} ({top.doc}, caractères "
                    f"{expected.sentence.start}–{expected.sentence.end})")
        assert answer.locator(".copy-btn").count() == answer.locator(".card").count() + 1
        copy = answer.locator(".reponse-actions .copy-btn")
        assert copy.get_attribute("value") == citation
        copy.click()
        page.wait_for_function("document.querySelector('#qa-live').textContent.includes('copiée')")
        assert page.evaluate("navigator.clipboard.readText()") == citation
        assert copy.inner_text().startswith("Citation copiée")
        copy.click()  # again while «Citation copiée» shows: the button must still come back to its words
        page.wait_for_timeout(2400)
        assert copy.inner_text().startswith("Copier la citation"), copy.inner_text()

        answer.locator(".card-actions button.cite-btn").first.click()
        page.wait_for_selector("#viewer #hl")
        head = page.locator("#viewer .src-head").inner_text()
        assert "Citation [1]" in head and top.doc in head and top.section in head
        assert page.locator("#viewer .src-h").count() >= 2  # the document's headings, shown as headings
        assert serious(page) == [], "viewer open"
        assert loose_typography(page) == []
        screenshot(page, "QA_SCREENSHOT", tmp_path / "desktop.png")

        ask(page, FAR)
        page.wait_for_function(f"document.querySelector('#qa-live').textContent.startsWith({qa.NO_ANSWER!r})")
        assert serious(page) == [], "abstention"
        assert loose_typography(page) == []
    finally:
        context.close()


def test_phone_has_one_scroll_and_a_viewer_drawer(browser, app_url, tmp_path):  # noqa: F811
    context, page = open_page(browser, app_url, PHONE, is_mobile=True, has_touch=True)
    try:
        assert serious(page) == [], "phone, empty page"
        assert not page.locator("#viewer").is_visible()  # no viewer far below the examples
        ask(page, QUESTION)
        assert serious(page) == [], "phone, answered page"
        assert no_inner_scroll(page) == []
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        answer = page.locator("#chat .qa-answer").last
        answer.locator(".card-actions button.cite-btn").first.tap()
        page.wait_for_selector("#viewer #hl")
        viewer = page.locator("#viewer")
        assert viewer.evaluate("e => getComputedStyle(e).position") == "fixed"
        box = viewer.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"] + 1  # where the reader is
        assert serious(page) == [], "phone, viewer open"
        screenshot(page, "QA_SCREENSHOT_PHONE", tmp_path / "phone.png")
        page.locator("#viewer button.src-close").tap()
        assert not viewer.is_visible()
    finally:
        context.close()


def test_keyboard_only_question_answer_citation_viewer_and_back(browser, app_url):  # noqa: F811
    """The focus stays in the question box after an answer (a follow-up is typed at once); one Shift+Tab
    reaches «Aller à la dernière réponse», which moves it to the newest answer, its citations next by Tab."""
    context, page = open_page(browser, app_url, DESKTOP)
    in_box = "document.activeElement.closest('#question') !== null"
    try:
        assert page.evaluate(in_box)  # focus starts there
        for question in ("Combien de localités ont été ciblées ?", QUESTION):
            before = page.locator("#chat .qa-answer").count()
            page.keyboard.type(question)
            page.keyboard.press("Enter")
            page.wait_for_function(f"document.querySelectorAll('#chat .qa-answer').length > {before}")
            page.wait_for_function("document.querySelector('#qa-live').textContent.length > 0")
            assert page.evaluate(in_box)
        page.keyboard.press("Shift+Tab")
        assert accessible_names(page, ":focus") == ["Aller à la dernière réponse"]
        page.keyboard.press("Enter")
        newest = page.locator("#chat .qa-answer").last
        page.wait_for_function("document.activeElement === [...document.querySelectorAll('#chat .qa-answer')].pop()")
        assert newest.evaluate("e => e.getBoundingClientRect().top") < DESKTOP["height"] / 2  # in sight
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.matches('.cite-num')")
        assert accessible_names(page, ":focus")[0].startswith("[1] voir la source 1")
        page.keyboard.press("Tab")  # «Copier la citation» of the answer
        page.keyboard.press("Tab")  # the first card's «Voir dans le document»
        assert accessible_names(page, ":focus")[0].startswith("Voir dans le document la source 1\u202f: ")
        opener = page.evaluate("document.activeElement.value")
        assert newest.locator(f'.card-actions button[value="{opener}"]').count() == 1  # of the newest answer
        page.keyboard.press("Enter")
        page.wait_for_selector("#viewer #hl")
        page.wait_for_function("document.activeElement.classList.contains('src-body')")
        page.keyboard.press("PageDown")  # the document's text scrolls by keyboard
        page.keyboard.press("Escape")
        page.wait_for_function(f"document.activeElement.value === {opener!r}")
        for _ in range(12):  # on through the cards, back to the question box
            page.keyboard.press("Tab")
            if page.evaluate(in_box):
                break
        else:
            pytest.fail("the question box is not reached by Tab after the answer's cards")
    finally:
        context.close()


def test_no_english_in_a_french_browsers_accessibility_tree(browser, app_url):  # noqa: F811
    """A French browser: Gradio takes its own words from its French locale, and the app keeps away from the
    components that write English whatever the language (gr.Chatbot's message labels, gr.Slider's, the
    toasts'); none reaches a screen reader, a refusal included."""
    context, page = open_page(browser, app_url, DESKTOP)
    try:
        found = {"empty page": [t for t in ax_texts(page) if ENGLISH.search(t)]}
        ask(page, QUESTION)
        found["answer"] = [t for t in ax_texts(page) if ENGLISH.search(t)]
        page.locator("#chat .card-actions button.cite-btn").first.click()
        page.wait_for_selector("#viewer #hl")
        found["viewer"] = [t for t in ax_texts(page) if ENGLISH.search(t)]
        page.locator("#question textarea").fill("   ")
        page.locator("#question textarea").press("Enter")
        page.wait_for_function("document.querySelector('#qa-bar .qa-notice').textContent.length > 0")
        texts = ax_texts(page)
        found["refusal"] = [t for t in texts if ENGLISH.search(t)]
        assert found == {state: [] for state in found}
        refusal = f"La question est vide{NNBSP}: écrivez une question sur le rapport."
        assert {"Nombre de passages", "Conversation", refusal} <= set(texts)  # the walk reads them
        assert serious(page) == [], "refusal"
    finally:
        context.close()


def test_a_second_refusal_while_the_first_shows_ends_the_wait_and_is_said_again(browser, app_url):  # noqa: F811
    """The same refusal twice: the alert is said again (emptied, then filled), and the wait ends on it, not
    said («Recherche en cours…») for a question that was refused."""
    context, page = open_page(browser, app_url, DESKTOP)
    try:
        page.evaluate("""() => { window.filled = 0; const notice = document.querySelector('#qa-bar .qa-notice');
            new MutationObserver(() => { if (notice.textContent) window.filled += 1; })
              .observe(notice, {childList: true, characterData: true, subtree: true}); }""")
        for said in (1, 2):
            page.locator("#question textarea").fill("   ")
            page.locator("#question textarea").press("Enter")
            page.wait_for_function(f"window.filled === {said}")
        assert page.locator("#qa-bar .qa-notice").inner_text().startswith("La question est vide")
        page.wait_for_timeout(1_200)  # past the 0.7 s after which a wait is shown and said
        assert page.locator("#qa-bar .qa-busy").is_hidden()
        assert page.locator("#qa-live").text_content() != "Recherche en cours…"
        assert page.locator("#qa-bar .qa-notice").get_attribute("role") == "alert"
    finally:
        context.close()


def test_a_wait_is_said_in_french_and_a_full_queue_ends_it(browser):  # noqa: F811
    """An app with the page's bar, script and question event, and a one-place queue: a question that waits
    is said («Recherche en cours…»); one that finds the queue full (Gradio shows its own busy toast) ends
    the wait."""
    import gradio as gr

    from ui.layout import BAR, ask_on
    from ui.serving import launch

    def slow(question: str) -> dict:
        time.sleep(3)
        return {"id": question, "refusal": "Lent."}

    with gr.Blocks() as demo:
        gr.HTML(BAR, elem_id="qa-bar", js_on_load=None)
        question = gr.Textbox(label="Votre question", elem_id="question")
        send = gr.Button("Envoyer", elem_id="send")
        reply = gr.JSON(visible=False)
        ask_on(send.click, lambda text: slow(text), [question], [reply], reply)  # the app's own wiring
        gr.api(slow, api_name="slow")  # the same queue, filled over HTTP
    demo.queue(default_concurrency_limit=1, max_size=1)
    launch(demo, port=free_port(), prevent_thread_lock=True)
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(demo.local_url)
        page.locator("#question input, #question textarea").first.fill("une")
        page.locator("#send").click()
        busy = page.locator("#qa-bar .qa-busy")
        busy.wait_for(state="visible", timeout=5_000)
        assert busy.inner_text() == "Recherche en cours…"
        page.wait_for_function("document.querySelector('#qa-live').textContent === 'Recherche en cours…'")
        busy.wait_for(state="hidden", timeout=10_000)  # the reply came
        base = demo.local_url.rstrip("/")
        statuses = []
        while 503 not in statuses and len(statuses) < 6:  # one call runs, one waits: the one place is taken
            statuses.append(httpx.post(f"{base}/gradio_api/call/slow", json={"data": ["x"]}, timeout=10).status_code)
        assert statuses[-1] == 503
        page.locator("#send").click()
        page.wait_for_timeout(2_000)  # past the 0.7 s wait: the refused event has ended it
        assert busy.is_hidden()
    finally:
        context.close()
        demo.close()
