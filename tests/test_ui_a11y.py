"""The app for every reader (issue 18), in a real Chromium: no serious or critical axe-core violation on
the empty page, an answer, the source viewer, an abstention and a phone; a keyboard-only round trip from
the question to a citation's source and back; the short spoken announcement of each answer; a name of
its own for each citation button; «Copier la citation»; French typography; a chat without a box of its
own; the viewer as a drawer on a phone.

README's pictures: `QA_SCREENSHOT=docs/screenshot.png QA_SCREENSHOT_PHONE=docs/screenshot-phone.png
pytest -m browser tests/test_ui_a11y.py` refreshes them (by default they go into the test's temporary folder).
"""

from __future__ import annotations

import os
import re

import pytest

import qa
from qa.wording import NNBSP, guillemets

from .conftest import ROOT
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


def open_page(browser, url, viewport, **options):  # noqa: F811
    context = browser.new_context(viewport=viewport, locale="fr-FR", **options)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#question textarea")
    page.wait_for_timeout(300)  # the head script's first pass (lang, the chat log's settings)
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
        assert page.evaluate("document.documentElement.lang") == "fr"
        assert "Utiliser l’API" in page.locator("footer").inner_text()
        for text in [page.locator(".app-title").first.inner_text(), page.locator("#viewer").inner_text(),
                     *page.locator(".gallery button, table button, [data-testid='examples'] button").all_inner_texts()]:
            assert not LOOSE.search(text), text
        examples = page.get_by_text(f"Qui a revendiqué les attaques{NNBSP}?", exact=True)
        assert examples.count() >= 1  # an example question never wraps its «?» alone onto the next line

        expected = qa.ask(QUESTION, k=3, index=report_index)
        ask(page, QUESTION)
        answer = page.locator("#chat .qa-answer").last
        assert serious(page) == [], "answered page"
        assert no_inner_scroll(page) == []
        assert page.locator("#chat .scroll-down-button-container button:visible").count() == 0
        # no clear icon in the corner of the first question, repeating «Nouvelle conversation»
        assert page.locator("#chat button:visible").filter(has_not=page.locator(".qa-answer")).evaluate_all(
            "bs => bs.filter(b => !b.closest('.qa-answer')).length") == 0
        page.wait_for_function("document.querySelector('#qa-live').textContent.length > 0")
        said = page.locator("#qa-live").text_content()
        assert said.startswith(expected.label) and expected.sentence.text in said and "3 sources" in said
        assert page.locator('#chat [role="log"]').get_attribute("aria-live") == "off"

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
        assert answer.locator(".reponse-actions .copy-btn").get_attribute("value") == citation
        answer.locator(".reponse-actions .copy-btn").click()
        page.wait_for_function("document.querySelector('#qa-live').textContent.includes('copiée')")
        assert page.evaluate("navigator.clipboard.readText()") == citation

        answer.locator(".card-actions button.cite-btn").first.click()
        page.wait_for_selector("#viewer #hl")
        head = page.locator("#viewer .src-head").inner_text()
        assert "Citation [1]" in head and top.doc in head and top.section in head
        assert page.locator("#viewer .src-h").count() >= 2  # the document's headings, shown as headings
        assert serious(page) == [], "viewer open"
        screenshot(page, "QA_SCREENSHOT", tmp_path / "desktop.png")

        ask(page, FAR)
        page.wait_for_function(f"document.querySelector('#qa-live').textContent.startsWith({qa.NO_ANSWER!r})")
        assert serious(page) == [], "abstention"
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


def test_keyboard_only_question_citation_viewer_and_back(browser, app_url):  # noqa: F811
    context, page = open_page(browser, app_url, DESKTOP)
    try:
        assert page.evaluate("document.activeElement.closest('#question') !== null")  # focus starts there
        page.keyboard.type(QUESTION)
        page.keyboard.press("Enter")
        page.wait_for_selector("#chat .qa-answer")
        page.wait_for_function("document.querySelector('#qa-live').textContent.length > 0")
        # Back from the question box, the newest answer's buttons come first: its cards are reachable.
        for _ in range(30):
            page.keyboard.press("Shift+Tab")
            if page.evaluate("document.activeElement.matches('.card-actions button.cite-btn')"):
                break
        else:
            pytest.fail("no citation button reached by keyboard")
        assert accessible_names(page, ":focus")[0].startswith("Voir dans le document la source ")  # French
        opener = page.evaluate("document.activeElement.value")
        page.keyboard.press("Enter")
        page.wait_for_selector("#viewer #hl")
        page.wait_for_function("document.activeElement.classList.contains('src-body')")
        page.keyboard.press("PageDown")  # the document's text scrolls by keyboard
        page.keyboard.press("Escape")
        page.wait_for_function(f"document.activeElement.value === {opener!r}")
    finally:
        context.close()
