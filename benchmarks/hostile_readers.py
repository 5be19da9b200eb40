"""How long and how much memory hostile files cost the readers, and what the reading worker costs.

Each case runs `qa.documents.read_document` in its own process, under a timeout and an address-space
cap (so a quadratic or exploding reader is stopped, not left to sink the machine), and reports the
seconds spent reading and the peak memory added by the read (resident, over the libraries' own).

Usage: python benchmarks/hostile_readers.py [--code DIR] [--timeout S] [--memory GB] [--only TEXT]
  --code DIR: read with the `qa` package under DIR instead of this checkout, e.g. the code before the
  bounds: git archive bc31b22 qa | tar -x -C /tmp/before && python benchmarks/hostile_readers.py --code /tmp/before
  --only TEXT: only the cases whose name holds TEXT (e.g. "pdf").
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's qa and tests, not an installed copy

CASES = {  # name: (file name, the expression writing its bytes, with tests.hostile_files as h)
    "html, 1k nested div": ("deep.html", "h.nested_divs(1_000)"),
    "html, 2k nested div": ("deep.html", "h.nested_divs(2_000)"),
    "html, 4k nested div": ("deep.html", "h.nested_divs(4_000)"),
    "html, 8k nested div": ("deep.html", "h.nested_divs(8_000)"),
    "html, 100k nested div": ("deep.html", "h.nested_divs(100_000)"),
    "docx, 1k-row merged column": ("merged.docx", "h.merged_column_docx(1_000)"),
    "docx, 2k-row merged column": ("merged.docx", "h.merged_column_docx(2_000)"),
    "docx, basedOn style cycle": ("cycle.docx", "h.style_cycle_docx()"),
    "docx, zip bomb (700 MB)": ("bomb.docx", "h.zip_bomb_docx(700)"),
    "docx, lying zip (700 MB)": ("bomb.docx", "h.zip_bomb_docx(700, declared=1000)"),
    "pdf, 5k hyphen-cut lines": ("cut.pdf", "h.hyphenated_pdf(5_000)"),
    "pdf, 20k hyphen-cut lines": ("cut.pdf", "h.hyphenated_pdf(20_000)"),
}

CHILD = """
import json, resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
from tests import hostile_files as h
import qa.documents
from qa.documents import read_document
import bs4, docx, pypdf  # the libraries' own memory is not the file's
print(qa.documents.__file__, file=sys.stderr)
path = Path(sys.argv[1])
path.write_bytes(eval(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    doc = read_document(path, path.parent)
    outcome = f"read: {len(doc.paragraphs)} paragraphs"
except ValueError as exc:
    outcome = f"skipped: {exc}"
except MemoryError:
    outcome = "MemoryError"
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "mb": (peak - before) / 1024, "bytes": path.stat().st_size, "outcome": outcome}))
"""


def run_case(name: str, code: Path, timeout: float, memory: int, folder: Path) -> dict:
    file_name, expression = CASES[name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), str(ROOT)])}
    args = [sys.executable, "-c", CHILD, str(folder / file_name), expression, str(memory)]
    start = time.perf_counter()
    try:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=folder)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "mb": None, "bytes": None, "outcome": f"stopped after {timeout:g} s"}
    if done.returncode:
        return {"seconds": time.perf_counter() - start, "mb": None, "bytes": None,
                "outcome": f"crashed ({done.stderr.strip().splitlines()[-1:]})"}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.stderr.startswith(str(code)), done.stderr  # the qa package asked for, not another
    return row


def worker_cost(folder: Path) -> list[tuple[str, float]]:
    """Reading in this process vs through the reading worker (qa.documents.Worker), per file."""
    from qa.documents import Worker, read_bytes, read_document

    small = folder / "small.txt"
    small.write_text("Le JNIM a revendiqué les attaques de Kayes et de Nioro du Sahel.\n\n" * 40, encoding="utf-8")
    large = folder / "large.txt"
    large.write_text("Le JNIM a revendiqué les attaques de Kayes et de Nioro du Sahel.\n\n" * 15_000, encoding="utf-8")
    worker, rows = Worker(), []
    start = time.perf_counter()
    worker.read(small, folder, read_bytes(small))
    rows.append(("worker start (Python, qa, reading libraries) + first file", time.perf_counter() - start))
    for path, n in ((small, 300), (large, 10)):
        data = read_bytes(path)
        for label, read in (("in process", read_document), ("in the worker", worker.read)):
            start = time.perf_counter()
            for _ in range(n):
                read(path, folder, data)
            seconds = (time.perf_counter() - start) / n
            rows.append((f"{path.stat().st_size // 1000} kB text, {label}, per file", seconds))
    worker.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="folder holding the qa package to measure")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--memory", type=float, default=3.0, help="address-space cap of each case, GB")
    parser.add_argument("--only", default="", help="only the cases whose name holds this text")
    args = parser.parse_args()
    print(f"qa from {args.code}; each case capped at {args.timeout:g} s and {args.memory:g} GB of address space\n")
    print(f"| {'case':<28} | {'file':>9} | {'seconds':>8} | {'peak MB':>8} | outcome")
    print(f"|{'-' * 30}|{'-' * 11}:|{'-' * 9}:|{'-' * 9}:|---------")
    with tempfile.TemporaryDirectory() as tmp:
        for name in (n for n in CASES if args.only in n):
            row = run_case(name, args.code.resolve(), args.timeout, int(args.memory * 1e9), Path(tmp))
            size = f"{row['bytes'] / 1e6:.2f} MB" if row["bytes"] else "-"
            seconds = f"{row['seconds']:.2f}" if row["seconds"] is not None else "-"
            mb = f"{row['mb']:.0f}" if row["mb"] is not None else "-"
            print(f"| {name:<28} | {size:>9} | {seconds:>8} | {mb:>8} | {row['outcome'][:90]}", flush=True)
        if args.code.resolve() == ROOT and not args.only:
            print("\n| reading worker | seconds |\n|---|---:|")
            for label, seconds in worker_cost(Path(tmp)):
                print(f"| {label} | {seconds:.5f} |")


if __name__ == "__main__":
    main()
