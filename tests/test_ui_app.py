"""The app served on a loopback port: /retrieve through gradio_client and plain HTTP; its HTTP edge: routes
that take a body refused unless needed, bodies capped, Gradio's own messages in French, no session kept per call."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest
from gradio_client import Client

from qa.index import read_documents

from .conftest import DATA, ROOT

QUESTION = "Qui a revendiqué les attaques ?"

# Gradio's queue summarises its own timings with pandas calls that pandas 3 deprecates: not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(report_index, report_corpus):
    from ui.serving import serve

    demo = serve(host="127.0.0.1", port=free_port(), corpus=report_corpus, index=report_index, prevent_thread_lock=True)
    try:
        assert demo.local_url.startswith("http://127.0.0.1:")
        yield demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def app_url(served):
    return served.local_url.rstrip("/")


def check_passages(rows: list[dict], index, k: int) -> None:
    documents = read_documents(index)
    assert isinstance(rows, list) and len(rows) == k
    assert [r["rank"] for r in rows] == list(range(1, k + 1))
    for r in rows:
        text = documents[r["doc"]]["text"]
        assert r["title"] == "Mali attaques juillet 2025" and r["section"]
        assert r["text"] == text[r["start"] : r["end"]]
        s = r["sentence"]
        assert r["start"] <= s["start"] < s["end"] <= r["end"]
        assert s["text"] == text[s["start"] : s["end"]]
        assert {"score", "page", "dense_score", "keyword_score"} <= set(r)
    assert "JNIM" in rows[0]["sentence"]["text"]


def call_http(base: str, data: list, api: str = "retrieve") -> tuple[str, object]:
    """POST /gradio_api/call/<api>, then read the event stream: (event name, decoded data)."""
    posted = httpx.post(f"{base}/gradio_api/call/{api}", json={"data": data}, timeout=30)
    assert posted.status_code == 200, posted.text
    return read_events(base, api, posted.json()["event_id"])


def read_events(base: str, api: str, event_id: str) -> tuple[str, object]:
    """The event stream of a call: (the final event's name, its decoded data)."""
    stream = httpx.get(f"{base}/gradio_api/call/{api}/{event_id}", timeout=30).text
    event = data_line = None
    for line in stream.splitlines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event in ("complete", "error"):
            data_line = line.removeprefix("data: ")
            break
    return event, json.loads(data_line) if data_line else None


def test_retrieve_with_gradio_client(app_url, report_index):
    client = Client(app_url + "/", verbose=False)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/retrieve", "/ask", "/status"}
    check_passages(client.predict(QUESTION, 3, api_name="/retrieve"), report_index, 3)
    status = client.predict(api_name="/status")
    assert status["stale"] is False and status["documents"] == 1 and status["passages"] == 9


def test_status_reports_a_stale_index(tmp_path, report_corpus):
    import shutil

    from qa import build_index
    from ui.handlers import index_status

    corpus = tmp_path / "c"
    shutil.copytree(report_corpus, corpus)
    build_index(corpus, tmp_path / "idx")
    assert index_status(tmp_path / "idx", corpus)["stale"] is False
    (corpus / "nouveau.txt").write_text("Une note nouvelle.", encoding="utf-8")
    (corpus / "mali-attaques-juillet-2025.txt").unlink()
    status = index_status(tmp_path / "idx", corpus)
    assert status["stale"] is True and status["added"] == ["nouveau.txt"]
    assert status["removed"] == ["mali-attaques-juillet-2025.txt"]


def test_retrieve_with_plain_http(app_url, report_index):
    event, data = call_http(app_url, [QUESTION, 3])
    assert event == "complete"
    check_passages(data[0], report_index, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["", 3], "La question est vide"),
        (["x" * 2001, 3], "Question trop longue"),
        ([QUESTION, 0], "Le nombre de passages doit être un entier de 1 à 50"),
        ([QUESTION, "trois"], "Le nombre de passages"),
    ],
)
def test_retrieve_rejects_bad_input_in_french(app_url, data, message):
    event, payload = call_http(app_url, data)
    assert event == "error"
    assert message in payload["error"]


@pytest.mark.parametrize("path", ["/gradio_api/upload", "/upload", "/gradio_api/upload/"])
def test_uploads_are_refused(app_url, path):
    response = httpx.post(f"{app_url}{path}", files={"files": ("a.txt", b"hello", "text/plain")}, timeout=10)
    assert response.status_code == 403


def test_page_is_served_in_french_without_share(app_url):
    page = httpx.get(app_url + "/", timeout=10)
    assert page.status_code == 200
    assert "Questions-réponses sur les rapports" in page.text
    # French from the first byte: the lang a screen reader picks its voice from, the link preview's text
    assert re.search(r'<html\s+lang="fr"', page.text) and "Click to try" not in page.text
    assert int(page.headers["content-length"]) == len(page.content)
    config = httpx.get(app_url + "/config", timeout=10).json()
    assert config.get("footer_links") == ["api"]
    assert not config.get("share_url")


def test_analytics_are_off_in_the_served_app(app_url):
    config = httpx.get(app_url + "/config", timeout=10).json()
    assert config["analytics_enabled"] is False
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"  # for any Blocks or gradio_client made afterwards


def test_analytics_are_turned_off_by_building_the_app_not_by_an_import(report_index, report_corpus):
    """A fresh process: importing the app's modules sets nothing; building the app turns telemetry off."""
    code = (
        "import os, gradio.analytics, ui.handlers, ui.layout, ui.serving\n"
        "assert 'GRADIO_ANALYTICS_ENABLED' not in os.environ, 'set by an import'\n"
        f"demo = ui.layout.build_app({str(report_index)!r}, {str(report_corpus)!r})\n"
        "assert os.environ.get('GRADIO_ANALYTICS_ENABLED') == 'False'\n"
        "assert demo.analytics_enabled is False and not gradio.analytics.analytics_enabled()\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "GRADIO_ANALYTICS_ENABLED"}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_twenty_concurrent_http_clients_get_exact_answers(app_url, report_index):
    """The queue under concurrent load: no error, no dropped request, every answer the engine's own."""
    from concurrent.futures import ThreadPoolExecutor

    from qa import retrieve
    from tests.conftest import DATA

    questions = [q["q"] for q in json.loads((DATA / "mali-dev.json").read_text(encoding="utf-8"))["questions"]][:10]
    expected = {q: [(p.doc, p.start, p.end) for p in retrieve(q, k=3, index=report_index)] for q in questions}

    def client(n: int) -> list[bool]:
        out = []
        for i in range(3):
            q = questions[(n + i) % len(questions)]
            event, data = call_http(app_url, [q, 3])
            out.append(event == "complete" and [(r["doc"], r["start"], r["end"]) for r in data[0]] == expected[q])
        return out

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = [ok for batch in pool.map(client, range(20)) for ok in batch]
    assert len(results) == 60 and all(results)


@pytest.mark.parametrize("path", ["/gradio_api/file=/etc/passwd", "/file=/etc/passwd",
                                  "/gradio_api/file=../../../etc/passwd",
                                  "/gradio_api/file=%2Fetc%2Fpasswd", "/static/../../../../etc/passwd"])
def test_no_file_outside_the_app_is_served(app_url, path, report_corpus):
    response = httpx.get(app_url + path, timeout=10)
    assert "root:" not in response.text
    corpus_file = httpx.get(f"{app_url}/gradio_api/file={report_corpus / 'mali-attaques-juillet-2025.txt'}", timeout=10)
    assert corpus_file.status_code != 200  # not even the corpus: documents reach users through the index only


# --- The HTTP edge (ui.edge): only the routes the app needs take a body, bodies are capped, answers are French.

NEEDED = {"/gradio_api/queue/join", "/gradio_api/call/{api_name}", "/gradio_api/run/{api_name}",
          "/gradio_api/cancel", "/gradio_api/reset"}  # the page's events, the API, an example, stopping an event
REFUSED = "Adresse refusée"


def routes_taking_a_body(app) -> set[tuple[str, str]]:
    """(method, path) of every route of the Gradio app whose method carries a body, included routers too."""
    found, todo = set(), list(app.routes)
    while todo:
        route = todo.pop()
        todo += getattr(route, "routes", None) or getattr(getattr(route, "original_router", None), "routes", None) or []
        for method in getattr(route, "methods", None) or ():
            if method not in ("GET", "HEAD", "OPTIONS"):
                found.add((method, route.path.rstrip("/")))
    return found


def huge(megabytes: int = 300):
    """A streamed body: the test never holds more than one megabyte of it."""
    for _ in range(megabytes):
        yield b"x" * (1 << 20)


def rss_mb(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024


@pytest.fixture(scope="module")
def isolated(report_index, report_corpus, tmp_path_factory):
    """`qa serve` in its own process, with Gradio's temporary folder in a folder of the test's own: Gradio
    reads GRADIO_TEMP_DIR when it is imported, so it cannot be moved for an app served in this process."""
    temp = tmp_path_factory.mktemp("gradio-temp")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_TEMP_DIR": str(temp)}
    server = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--port", str(port), "--index", str(report_index),
                               "--corpus", str(report_corpus)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/config", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
            assert server.poll() is None, "qa serve stopped"
        yield base, server.pid, temp
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_every_route_taking_a_body_is_refused_unless_the_app_needs_it(served, isolated):
    base, pid, temp = isolated
    routes = routes_taking_a_body(served.app)
    assert {path for _, path in routes} >= NEEDED | {"/gradio_api/upload", "/gradio_api/process_recording",
                                                     "/gradio_api/component_server"}
    before, memory = sorted(temp.rglob("*")), rss_mb(pid)
    for method, path in sorted(routes) + [("POST", "/upload"), ("POST", "/gradio_api/nowhere"),
                                          ("PUT", "/gradio_api/queue/join"), ("DELETE", "/gradio_api/reset")]:
        filled = re.sub(r"\{[^}]+\}", "x", path).replace("call/x", "call/retrieve").replace("run/x", "run/predict")
        response = httpx.request(method, base + filled, content=huge(), timeout=60,
                                 headers={"content-type": "multipart/form-data; boundary=x"})
        expected = 413 if path in NEEDED and method == "POST" else 403  # needed: capped; the rest: refused unread
        assert response.status_code == expected, (method, path, response.text)
        assert (REFUSED if expected == 403 else "Requête trop volumineuse") in response.json()["detail"]
    declared = httpx.post(base + "/gradio_api/call/ask", content=huge(), timeout=60,
                          headers={"content-length": str(300 << 20)})
    assert declared.status_code == 413
    assert sorted(temp.rglob("*")) == before  # nothing written under Gradio's temporary folder
    assert rss_mb(pid) - memory < 30  # 300 MB posted to each route, none of it held


def test_a_get_with_a_body_is_refused(app_url):
    response = httpx.request("GET", app_url + "/config", content=huge(10), timeout=60)
    assert response.status_code == 413 and "ne prend pas de corps" in response.json()["detail"]


def test_a_hundred_turn_ask_fits_under_the_body_cap(app_url):
    """What a 100-turn /ask sends as chat messages (questions and answer sentences): far under 64 KB."""
    from ui.edge import BODY_LIMIT

    questions = [q["q"] for q in json.loads((DATA / "mali-dev.json").read_text(encoding="utf-8"))["questions"]]
    sentence = "Ces attaques, revendiquées par Jama’at Nusrat al-Islam wal-Muslimeen (JNIM), affilié à Al-Qaïda, " * 2
    history = [m for i in range(50) for m in ({"role": "user", "content": questions[i % len(questions)]},
                                              {"role": "assistant", "content": sentence})]
    body = json.dumps({"data": [QUESTION, history, 3]})
    assert len(body) < BODY_LIMIT / 2
    event, data = call_http(app_url, [QUESTION, history, 3], api="ask")
    assert event == "complete" and data[0]["passages"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": [QUESTION]}, "/retrieve attend 2 valeur(s) (question, k)\u202f; 1 reçue(s)."),
        ({"data": []}, "/retrieve attend 2 valeur(s)"),
        ({"data": {"question": QUESTION}}, 'une liste "data"'),
        ([QUESTION, 3], "Corps de requête illisible"),
        (b'{"data": [', "Corps de requête illisible"),
        (b'{"data": ["\xe9", 3]}', "Corps de requête illisible"),
    ],
)
def test_malformed_api_requests_are_refused_in_french(app_url, body, message):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{app_url}/gradio_api/call/retrieve", content=content, timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and message in response.json()["detail"]


@pytest.mark.parametrize("question", ["\\ud800", "Qui a \\udce9t\\udce9 ?"])
def test_a_question_that_is_not_unicode_text_is_refused_in_french_over_http(app_url, question):
    raw = ('{"data": ["' + question + '", 3]}').encode()  # JSON escapes: lone surrogates once decoded
    posted = httpx.post(f"{app_url}/gradio_api/call/retrieve", content=raw, timeout=30,
                        headers={"content-type": "application/json"})
    event, payload = read_events(app_url, "retrieve", posted.json()["event_id"])
    assert event == "error" and payload["error"].startswith("La question contient des caractères invalides")


def join(base: str, fn_index: int, data: list) -> list[dict]:
    """The page's way in: POST /gradio_api/queue/join, then the session's event stream until it closes."""
    session = os.urandom(6).hex()
    posted = httpx.post(f"{base}/gradio_api/queue/join", timeout=30,
                        json={"data": data, "fn_index": fn_index, "session_hash": session})
    assert posted.status_code == 200, posted.text
    done = []
    with httpx.stream("GET", f"{base}/gradio_api/queue/data?session_hash={session}", timeout=30) as stream:
        for line in stream.iter_lines():
            message = json.loads(line.removeprefix("data: ")) if line.startswith("data: ") else {}
            if message.get("msg") in ("process_completed", "unexpected_error"):
                done.append(message)
            if message.get("msg") == "close_stream":
                break
    return done


@pytest.mark.parametrize(
    ("k", "docs", "message"),
    [
        (0, [], "Valeur trop petite\u202f: le minimum est 1."),  # the slider's «Value 0 is less than minimum value 1.»
        (11, [], "Valeur trop grande\u202f: le maximum est 10."),
        ("3", [], "La requête n'a pas pu être traitée"),  # Gradio's slider fails on a text: {"error": null}
        (3, ["absent.txt"], "Valeur hors des choix proposés"),  # Gradio's dropdown: «Value: … is not in the list…»
    ],
)
def test_gradios_own_checks_answer_in_french(served, app_url, k, docs, message):
    validate = next(i for i, fn in served.fns.items() if fn.api_name == "validate")
    (done,) = join(app_url, validate, [QUESTION, None, k, docs])
    assert done["success"] is False and message in done["output"]["error"] and done["output"]["title"] == "Erreur"
    assert "Value" not in done["output"]["error"]


# French typography: ? ! ; : (not in a JSON example's "key": value) and » after a narrow no-break
# space, « before one; a plain space, a no-break space or none is wrong.
LOOSE_SPACING = re.compile(r'(?<![\u202f"])[?!;:»](?=\s|$|[.,)])|«(?!\u202f)')


def test_every_french_answer_of_the_edge_is_typeset(served, app_url):
    """What the app answers over HTTP, its own refusals and Gradio's translated texts alike, in French
    typography: each message read from a real response."""
    call = f"{app_url}/gradio_api/call/retrieve"
    json_headers = {"content-type": "application/json"}
    responses = [
        httpx.get(app_url + "/nulle-part", timeout=10),  # 404, FastAPI's, replaced
        httpx.get(app_url + "/gradio_api/queue/join", timeout=10),  # 405
        httpx.post(app_url + "/gradio_api/upload", content=b"x", timeout=10),  # 403, the edge's
        httpx.request("GET", app_url + "/config", content=b"x", timeout=10),  # 413, a GET with a body
        httpx.post(call, content=b"x" * (65 * 1024), headers=json_headers, timeout=10),  # 413, too large
        httpx.post(call, content=b"{", headers=json_headers, timeout=10),  # 400, not JSON
        httpx.post(call, json={"data": {}}, timeout=10),  # 400, no data list
        httpx.post(call, json={"data": [QUESTION]}, timeout=10),  # 400, a value missing
        httpx.post(app_url + "/gradio_api/queue/join", json={"data": [QUESTION]}, timeout=10),
    ]
    messages = [r.json()["detail"] for r in responses]
    assert [r.status_code for r in responses] == [404, 405, 403, 413, 413, 400, 400, 400, 400]
    validate = next(i for i, fn in served.fns.items() if fn.api_name == "validate")
    messages += [join(app_url, validate, [QUESTION, None, k, []])[0]["output"]["error"] for k in (0, 11, "3")]
    messages += [call_http(app_url, [question, 3])[1]["error"] for question in ("  ", "x" * 5000)]  # the handlers'
    assert all(isinstance(m, str) and m for m in messages), messages
    loose = [(m, LOOSE_SPACING.findall(m)) for m in messages if LOOSE_SPACING.search(m)]
    assert loose == []
    assert sum("\u202f" in m for m in messages) >= 8  # the check above is not vacuous


def test_http_errors_answer_in_french(app_url):
    assert httpx.get(app_url + "/nulle-part", timeout=10).json() == {"detail": "Introuvable."}
    assert "Méthode non autorisée" in httpx.get(app_url + "/gradio_api/queue/join", timeout=10).json()["detail"]
    missing = httpx.post(app_url + "/gradio_api/queue/join", json={"data": [QUESTION]}, timeout=10)
    assert missing.status_code == 400 and "Fonction inconnue" in missing.json()["detail"]


def test_a_full_queue_answers_in_french():
    """Gradio's «Queue is full. Max size is 1 and size is 1.» (HTTP 503), on an app with a one-place queue."""
    import gradio as gr

    from ui.serving import launch

    def slow(text: str) -> str:
        time.sleep(1.5)
        return text

    with gr.Blocks() as demo:
        gr.api(slow, api_name="slow")
    demo.queue(default_concurrency_limit=1, max_size=1)
    launch(demo, port=free_port(), prevent_thread_lock=True)
    try:
        base = demo.local_url.rstrip("/")
        answers = [httpx.post(f"{base}/gradio_api/call/slow", json={"data": ["x"]}, timeout=30) for _ in range(4)]
        full = [a for a in answers if a.status_code == 503]
        french = "Trop de questions en attente (1 au plus)\u202f: le serveur est occupé, réessayez dans quelques " \
                 "secondes."
        assert full and all(a.json() == {"detail": french} for a in full)
    finally:
        demo.close()


def test_api_calls_leave_no_session_behind(served, app_url):
    """Gradio keeps a session (a copy of the page's config) per call made without a session hash, up to
    10,000 of them: the edge drops it once the result is read."""
    sessions, queued = len(served.state_holder.session_data), len(served._queue.pending_event_ids_session)
    for _ in range(30):
        assert call_http(app_url, [QUESTION, 3])[0] == "complete"
    call_http(app_url, [QUESTION, 3])  # the last call's own session goes with the next one
    assert len(served.state_holder.session_data) <= sessions + 1  # not 31 more
    assert len(served._queue.pending_event_ids_session) <= queued + 1
