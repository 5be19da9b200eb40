"""The app under load from a second process: C concurrent clients × R requests to the /retrieve API.

Starts `qa serve` on a free loopback port in a subprocess (the server), then runs the clients as
threads here (the load generator), each with its own HTTP connection, calling
POST /gradio_api/call/retrieve and reading the event stream, as any program would. Prints errors,
latency p50/p95 per request and throughput; checks every answer against the server's first answer to
the same question.

Usage: python benchmarks/load.py [--clients 20] [--requests 50] [--index DIR] [--corpus DIR] [--questions FILE]
(prints figures; asserts nothing). Default questions: tests/data/mali-dev.json.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--index", default="index")
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--questions", default=str(ROOT / "tests" / "data" / "mali-dev.json"))
    args = ap.parse_args()
    questions = [q["q"] for q in json.loads(Path(args.questions).read_text(encoding="utf-8"))["questions"]]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--port", str(port), "--index", args.index,
                               "--corpus", args.corpus], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(base + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        with httpx.Client(timeout=120) as c:
            reference = {q: call(c, base, q, 5)[1] for q in questions}

        def client(n: int) -> list[tuple[float, bool]]:
            out = []
            with httpx.Client(timeout=120) as c:
                for i in range(args.requests):
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
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            results = [r for batch in pool.map(client, range(args.clients)) for r in batch]
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    times = sorted(t for t, _ in results)
    errors = sum(not ok for _, ok in results)
    print(f"# /retrieve under load, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, index {args.index}")
    print("| clients | requests | errors or wrong answers | p50 ms | p95 ms | throughput req/s |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.clients} | {len(results)} | {errors} | {statistics.median(times):.0f} | "
          f"{times[int(0.95 * (len(times) - 1))]:.0f} | {len(results) / wall:.1f} |")


if __name__ == "__main__":
    main()
