"""What `qa` costs a user's machine: the model cache on disk, `qa serve`'s memory, a one-shot `qa ask`.

Everything runs as a user would run it, in child processes, with QA_MODEL_CACHE in a fresh temporary
folder (the user's ~/.cache is never touched):

1. cache size: the model cache after a first run (`du` of QA_MODEL_CACHE), and what it holds;
2. `qa serve` memory, twice: a first run with an empty cache and no index (it converts the model,
   makes the question encoder, builds the index, then serves), and a restart (cache and index
   present). The resident memory (RSS) of the server's whole process tree (the first run's build
   runs in a child process) is sampled every 50 ms from the start; once the server answers, a few
   questions are asked over HTTP (/gradio_api/call/retrieve). "steady" is the tree's RSS a few seconds
   after the last answer, "peak" the highest sample of the run;
3. `qa ask` wall time: the median of 5 one-shot `python -m qa ask …` calls, index and cache present.

Usage: python benchmarks/footprint.py [--code DIR] [--corpus DIR] [--runs 5]
  --code DIR: measure the `qa` package under DIR instead of this checkout (e.g. the code before:
  git worktree add /tmp/before <commit> && python benchmarks/footprint.py --code /tmp/before).
Prints a Markdown table; asserts nothing. Takes ~2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["Qui a revendiqué les attaques ?", "Quelles villes ont été attaquées ?",
             "Quand les attaques ont-elles eu lieu ?", "Quelle est la réaction de l'armée malienne ?"]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask_http(base: str, question: str) -> str:
    """One /retrieve call over Gradio's HTTP API; returns the event name of its answer."""
    body = json.dumps({"data": [question, 3]}).encode()
    request = urllib.request.Request(f"{base}/gradio_api/call/retrieve", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{base}/gradio_api/call/retrieve/{event_id}", timeout=60) as response:
        stream = response.read().decode()
    return next((line.removeprefix("event: ") for line in stream.splitlines() if line.startswith("event: ")), "?")


def serve_run(env: dict[str, str], corpus: Path, index: Path, log: Path) -> dict[str, float]:
    """Start `qa serve`, wait for it, ask the questions, and return seconds to ready, steady and peak RSS (MB)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "qa", "serve", "--corpus", str(corpus), "--index", str(index),
               "--port", str(port)]
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=env["QA_BENCH_CWD"])
    peak, ready = 0.0, None
    try:
        while ready is None:
            peak = max(peak, tree_rss_mb(server.pid))
            if server.poll() is not None:
                raise RuntimeError(f"qa serve exited ({server.returncode}); see {log}")
            try:
                with urllib.request.urlopen(f"{base}/", timeout=1):
                    ready = time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        events = []
        for question in QUESTIONS:
            events.append(ask_http(base, question))
            peak = max(peak, tree_rss_mb(server.pid))
        samples = []
        for _ in range(60):  # 3 s after the last answer
            samples.append(tree_rss_mb(server.pid))
            time.sleep(0.05)
        peak = max(peak, *samples)
        if set(events) != {"complete"}:
            raise RuntimeError(f"answers: {events}; see {log}")
        return {"ready": ready, "steady": samples[-1], "peak": peak}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def ask_times(env: dict[str, str], index: Path, runs: int) -> list[float]:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qa", "ask", QUESTIONS[i % len(QUESTIONS)], "--index", str(index)],
                       env=env, cwd=env["QA_BENCH_CWD"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose qa is measured")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qa-footprint-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "QA_MODEL_CACHE": str(tmp / "cache"), "PYTHONPATH": str(args.code.resolve()),
               "QA_BENCH_CWD": str(tmp)}
        env.pop("QA_QUERY_ENCODER", None)
        index = tmp / "index"
        first = serve_run(env, args.corpus.resolve(), index, tmp / "first.log")
        cache = {str(p.relative_to(tmp / "cache")): round(p.stat().st_size / 1e6, 1)
                 for p in sorted((tmp / "cache").rglob("*")) if p.is_file() and p.stat().st_size > 1e6}
        size = folder_mb(tmp / "cache")
        restart = serve_run(env, args.corpus.resolve(), index, tmp / "restart.log")
        times = ask_times(env, index, args.runs)
    print(f"code: {args.code.resolve()}   corpus: {args.corpus}   {os.cpu_count()} cores\n")
    print("| what | measured |")
    print("|---|---|")
    print(f"| model cache | {size:.0f} MB |")
    print(f"| `qa serve` first run (empty cache, no index): ready after | {first['ready']:.0f} s |")
    for name, run in (("first run", first), ("restart", restart)):
        print(f"| `qa serve` {name}: RSS steady / peak | {run['steady'] / 1000:.2f} GB / {run['peak'] / 1000:.2f} GB |")
    print(f"| `qa serve` restart: ready after | {restart['ready']:.1f} s |")
    print(f"| `qa ask` wall time, median of {args.runs} | {statistics.median(times):.2f} s "
          f"({min(times):.2f}–{max(times):.2f}) |")
    print("\nfiles over 1 MB in the cache (MB):")
    for name, mb in cache.items():
        print(f"  {mb:8.1f}  {name}")


if __name__ == "__main__":
    main()
