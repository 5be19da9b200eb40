"""The app served on a loopback port: /retrieve through gradio_client and plain HTTP; the chat's event and its
French refusals; its HTTP edge (`ui.serving.Edge`): routes that take a body refused unless needed, bodies capped;
what the package ships and what `ui/` leaves alone in Gradio."""

from __future__ import annotations

import html
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

import qa
from qa.index import load_index
from ui.serving import BODY_LIMIT, STATIC

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
    documents = load_index(index).documents()
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


def test_page_is_served_without_share_with_its_own_look_and_script(app_url):
    page = httpx.get(app_url + "/", timeout=10)
    assert page.status_code == 200
    assert "Questions-réponses sur les rapports" in page.text
    config = httpx.get(app_url + "/config", timeout=10).json()
    assert config.get("footer_links") == ["api"]
    assert not config.get("share_url")
    # the page's CSS and script, read from the files that ship with the package
    assert (STATIC / "app.css").read_text(encoding="utf-8") in config["css"]
    assert config["js"] == (STATIC / "app.js").read_text(encoding="utf-8")


def test_the_page_files_ship_with_the_package():
    """`pip install .` copies a package's non-Python files only when its package-data names them."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["ui"]
    files = [p.relative_to(ROOT / "ui").as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert {"static/app.js", "static/app.css"} <= set(files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)] == []


# What the app used to patch in Gradio (issue 25): its private state, its test ids, its English texts.
GRADIO_INSIDES = ("data-testid", "session_data", "state_holder", "Queue is full", "not in the list of choices",
                  "Click to try", "currently busy", "number input for", "'s message", "toast-")


def test_ui_leaves_gradio_alone():
    """No private attribute (of Gradio or of anything), no selector on Gradio's own test ids, no English
    text of Gradio's matched: `ui/` uses Gradio's public parameters only. Docstrings may say why."""
    import ast

    found = []
    for path in sorted((ROOT / "ui").rglob("*")):
        if path.suffix == ".py":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                          if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and ast.get_docstring(node)}
            found += [(path.name, node.lineno, node.attr) for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__")]
            texts = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                     and isinstance(node.value, str) and id(node) not in docstrings]
        elif path.suffix in (".js", ".css"):
            texts = [path.read_text(encoding="utf-8")]
        else:
            continue
        found += [(path.name, word) for word in GRADIO_INSIDES for text in texts if word in text]
    assert found == []
    assert sum(1 for _ in (ROOT / "ui").rglob("*.py")) >= 5  # the walk reads the package


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


# --- The HTTP edge (ui.serving.Edge): only the routes the app needs take a body, bodies are capped.

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
    questions = [q["q"] for q in json.loads((DATA / "mali-dev.json").read_text(encoding="utf-8"))["questions"]]
    sentence = "Ces attaques, revendiquées par Jama’at Nusrat al-Islam wal-Muslimeen (JNIM), affilié à Al-Qaïda, " * 2
    history = [m for i in range(50) for m in ({"role": "user", "content": questions[i % len(questions)]},
                                              {"role": "assistant", "content": sentence})]
    body = json.dumps({"data": [QUESTION, history, 3]})
    assert len(body) < BODY_LIMIT / 2
    event, data = call_http(app_url, [QUESTION, history, 3], api="ask")
    assert event == "complete" and data[0]["passages"]


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
    ("question", "k", "message"),
    [
        ("   ", 3, "La question est vide\u202f: écrivez une question sur le rapport."),
        (QUESTION, 0, "Le nombre de passages doit être un entier de 1 à 10."),
        (QUESTION, 11, "Le nombre de passages doit être un entier de 1 à 10."),
    ],
)
def test_the_chat_refuses_in_french_as_a_reply_not_an_error(served, app_url, question, k, message):
    """The page's event answers a refusal as its reply (said under the conversation by the page's script),
    not as an error (which Gradio would show in a toast whose close button is named «Close»)."""
    ask_turn = next(i for i, fn in served.fns.items() if fn.api_name == "ask_turn")
    (done,) = join(app_url, ask_turn, [question, [], k, []])
    assert done["success"] is True
    reply = next(value for value in done["output"]["data"] if isinstance(value, dict) and "id" in value)
    assert reply["refusal"] == message


def test_the_chat_replies_with_one_turn_of_html(served, app_url, report_index):
    ask_turn = next(i for i, fn in served.fns.items() if fn.api_name == "ask_turn")
    (done,) = join(app_url, ask_turn, [QUESTION, [], 3, []])
    box, reply, _ = done["output"]["data"]  # the session's state stays on the server
    expected = qa.ask(QUESTION, k=3, index=report_index)
    assert box == "" and reply["keep"] == 100
    assert reply["turn"].startswith('<article class="qa-turn"><div class="qa-user">Qui a revendiqué les attaques ?')
    assert reply["turn"].count('class="card"') == 3 and html.escape(expected.sentence.text) in reply["turn"]


# French typography: ? ! ; : (not in a JSON example's "key": value) and » after a narrow no-break
# space, « before one; a plain space, a no-break space or none is wrong.
LOOSE_SPACING = re.compile(r'(?<![\u202f"])[?!;:»](?=\s|$|[.,)])|«(?!\u202f)')


def test_every_french_answer_of_the_edge_is_typeset(served, app_url):
    """What the app answers over HTTP, the edge's own refusals and the handlers' alike, in French
    typography: each message read from a real response."""
    call = f"{app_url}/gradio_api/call/retrieve"
    responses = [
        httpx.post(app_url + "/gradio_api/upload", content=b"x", timeout=10),  # 403
        httpx.request("GET", app_url + "/config", content=b"x", timeout=10),  # 413, a GET with a body
        httpx.post(call, content=b"x" * (65 * 1024), headers={"content-type": "application/json"}, timeout=10),
    ]
    messages = [r.json()["detail"] for r in responses]
    assert [r.status_code for r in responses] == [403, 413, 413]
    ask_turn = next(i for i, fn in served.fns.items() if fn.api_name == "ask_turn")
    messages += [join(app_url, ask_turn, [question, [], 3, []])[0]["output"]["data"][1]["refusal"]
                 for question in ("  ", "x" * 5000)]  # the chat's
    messages += [call_http(app_url, [question, 3])[1]["error"] for question in ("  ", "x" * 5000)]  # the API's
    assert all(isinstance(m, str) and m for m in messages), messages
    loose = [(m, LOOSE_SPACING.findall(m)) for m in messages if LOOSE_SPACING.search(m)]
    assert loose == []
    assert sum("\u202f" in m for m in messages) >= 6  # the check above is not vacuous
