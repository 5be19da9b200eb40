"""The app under load from a second process: latency, errors and the server's memory (RSS).

Starts `qa serve` on a free loopback port in a subprocess (the server), then, from this process (the
load generator, one HTTP connection per client thread), as any program or page would:

1. **API load**: C clients × R questions to /retrieve (POST /gradio_api/call/retrieve, then its event
   stream), every answer checked against the server's first answer to the same question; errors,
   latency p50/p95 and throughput.
2. **Soak**: the same load repeated S more times, the server's RSS after each round.
3. **Chat**: N chat sessions of T turns each, through the page's own route (POST
   /gradio_api/queue/join to the chat's event, then /gradio_api/queue/data), the state kept by the
   server; the bytes each turn sends back (turn 1, 10, 50, T) and the RSS after the sessions.

RSS is read from /proc/<pid>/status (VmRSS) after each phase, the peak from VmHWM.

Usage: python benchmarks/load.py [--clients 20] [--requests 50] [--soak 9] [--chats 20] [--turns 100]
       [--index DIR] [--corpus DIR] [--questions FILE] [--code DIR]
(prints figures; asserts nothing). Default questions: tests/data/mali-dev.json. `--code` serves another
checkout's qa/ and ui/ (to measure before a change).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def call(client: httpx.Client, base: str, question: str, k: int) -> tuple[str, object]:
    """One /retrieve call: (event name, data)."""
    event_id = client.post(f"{base}/gradio_api/call/retrieve", json={"data": [question, k]}).json()["event_id"]
    event = None
    for line in client.get(f"{base}/gradio_api/call/retrieve/{event_id}").text.splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event in ("complete", "error"):
            return event, json.loads(line[6:])
    return event or "no event", None


def chat_turn(client: httpx.Client, base: str, fn_index: int, session: str, question: str) -> tuple[bool, int]:
    """One chat turn as the page sends it: (answered, bytes of the answer's event)."""
    client.post(f"{base}/gradio_api/queue/join", json={"data": [question, None, 3, []], "fn_index": fn_index,
                                                       "session_hash": session, "event_data": None})
    with client.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ") and '"process_completed"' in line:
                return '"success":true' in line.replace(" ", ""), len(line.encode())
    return False, 0


def rss(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Vm")}
    return values["VmRSS"] / 1024, values["VmHWM"] / 1024


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    code = Path(args.code).resolve()  # run from there: `python -m qa` takes the working folder's qa/ first
    index, corpus = Path(args.index).resolve(), Path(args.corpus).resolve()
    server = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--port", str(port), "--index", str(index),
                               "--corpus", str(corpus)], cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(base + "/", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"server did not start: {server.stderr.read().decode()[-2000:]}")
        time.sleep(0.5)


def api_round(base: str, questions: list[str], reference: dict, clients: int, requests: int) -> tuple[list, float]:
    """C clients × R /retrieve calls: ([(milliseconds, right answer)], seconds)."""

    def client(n: int) -> list[tuple[float, bool]]:
        out = []
        with httpx.Client(timeout=120) as c:
            for i in range(requests):
                q = questions[(n + i) % len(questions)]
                t0 = time.perf_counter()
                try:
                    event, data = call(c, base, q, 5)
                    ok = event == "complete" and data == reference[q]
                except httpx.HTTPError:
                    ok = False
                out.append(((time.perf_counter() - t0) * 1000, ok))
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = [r for batch in pool.map(client, range(clients)) for r in batch]
    return results, time.perf_counter() - t0


def chat_sessions(base: str, questions: list[str], chats: int, turns: int) -> tuple[dict[int, int], int]:
    """N concurrent chat sessions of T turns: ({turn: bytes of its answer event in session 0}, errors)."""
    fns = httpx.get(base + "/config", timeout=30).json()["dependencies"]
    fn_index = next(d["id"] for d in fns if d.get("api_name") == "ask_turn")
    sizes: dict[int, int] = {}

    def session(n: int) -> int:
        errors, name = 0, f"load{n:04d}{os.urandom(3).hex()}"
        with httpx.Client(timeout=120) as c:
            for t in range(1, turns + 1):
                ok, size = chat_turn(c, base, fn_index, name, questions[(n + t) % len(questions)])
                errors += not ok
                if n == 0:
                    sizes[t] = size
        return errors

    with ThreadPoolExecutor(max_workers=chats) as pool:
        errors = sum(pool.map(session, range(chats)))
    return sizes, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--soak", type=int, default=9, help="rounds of the same load after the first")
    ap.add_argument("--chats", type=int, default=20)
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--index", default="index")
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--questions", default=str(ROOT / "tests" / "data" / "mali-dev.json"))
    ap.add_argument("--code", default=str(ROOT), help="the checkout whose qa/ and ui/ are served")
    args = ap.parse_args()
    questions = [q["q"] for q in json.loads(Path(args.questions).read_text(encoding="utf-8"))["questions"]]

    server, base = start_server(args)
    memory = []
    try:
        with httpx.Client(timeout=120) as c:
            reference = {q: call(c, base, q, 5)[1] for q in questions}
        memory.append(("started, one call per question", 0, *rss(server.pid)))
        results, wall = api_round(base, questions, reference, args.clients, args.requests)
        memory.append((f"{args.clients} × {args.requests} /retrieve", len(results), *rss(server.pid)))
        total = len(results)
        for n in range(args.soak):
            more, _ = api_round(base, questions, reference, args.clients, args.requests)
            total += len(more)
            memory.append((f"soak round {n + 1}", total, *rss(server.pid)))
        sizes, chat_errors = chat_sessions(base, questions, args.chats, args.turns) if args.turns else ({}, 0)
        if sizes:
            memory.append((f"{args.chats} chats × {args.turns} turns", args.chats * args.turns, *rss(server.pid)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    times = sorted(t for t, _ in results)
    errors = sum(not ok for _, ok in results)
    print(f"# The app under load, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, index {args.index}, "
          f"code {args.code}")
    print("| clients | requests | errors or wrong answers | p50 ms | p95 ms | throughput req/s |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.clients} | {len(results)} | {errors} | {statistics.median(times):.0f} | "
          f"{times[int(0.95 * (len(times) - 1))]:.0f} | {len(results) / wall:.1f} |")
    print("\n| after | requests (or turns) | RSS MB | peak MB |\n|---|---|---|---|")
    for label, count, current, peak in memory:
        print(f"| {label} | {count} | {current:.0f} | {peak:.0f} |")
    if sizes:
        shown = sorted({1, 10, 50, args.turns} & set(sizes))
        print(f"\nChat: {chat_errors} error(s); bytes sent back per turn: "
              + ", ".join(f"turn {t}: {sizes[t]:,}" for t in shown))


if __name__ == "__main__":
    main()
