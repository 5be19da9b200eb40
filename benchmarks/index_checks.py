"""What checking every file of a build costs when an index is loaded, at ~10^5 passages.

Usage: python benchmarks/index_checks.py [--passages 100000] [--workdir DIR] [--repeat 3]
Prints a table for docs/operations.md ("Reliability"); asserts nothing.

Method. A synthetic corpus of N passages (words of the report, ~3.3 sentences and ~95 words per
passage, 5 passages per document, one file per document) gets random unit vectors instead of
embeddings (the model would take hours at this size); `qa.index.writer.write_build`, the code every
build uses, writes the index with its checksums. Each measure then runs in a fresh process (so the
in-process hash cache is empty): `load_index` as shipped (each file hashed before it is parsed, in
a background thread that runs ahead of the parsing), `load_index` with the hashing switched off
(sizes still compared: the baseline), both with the index's files in the page cache ("warm") and
after `posix_fadvise(DONTNEED)` on each of them ("cold": read from the disk again, as after a
reboot); hashing every file alone, on one thread; `index_status` (which hashes every file); and, in
a process that has loaded the index, a second load after the build cache is dropped (hashes cached
per file version: a stat per file) and the per-question check of a cached build (a stat per file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's qa, here and in the measuring processes (PYTHONPATH)
DIM = 384


def synthesise(n: int, workdir: Path) -> Path:
    """A corpus of n passages and its index, written by write_build; returns the index folder."""
    from qa.chunking import Passage
    from qa.files import file_sha256
    from qa.index.dense import plan
    from qa.index.status import stat_record
    from qa.index.writer import write_build

    words = (REPO / "corpus" / "mali-attaques-juillet-2025.txt").read_text(encoding="utf-8").split()
    rng, nrng = random.Random(0), np.random.default_rng(0)
    corpus, index = workdir / "corpus", workdir / "index"
    corpus.mkdir(parents=True)
    docs, passages = [], []
    for d in range((n + 4) // 5):
        doc, text, spans = f"rapport-{d:06d}.txt", "", []
        for _ in range(min(5, n - len(passages))):
            start, sentences = len(text), []
            for _ in range(rng.choice((2, 3, 3, 4, 4, 4))):
                s = len(text)
                text += " ".join(rng.choice(words) for _ in range(rng.randint(18, 40))) + ". "
                sentences.append((s, len(text) - 1))
            spans.append((start, len(text) - 1, tuple(sentences)))
            text = text[:-1] + "\n\n"
        path = corpus / doc
        path.write_text(text, encoding="utf-8")
        docs.append({"doc": doc, "title": doc, "sha256": file_sha256(path), "text": text, **stat_record(path)})
        passages += [Passage(doc, doc, "", s, e, text[s:e], sents) for s, e, sents in spans]
    sentences = sum(len(p.sentences) for p in passages)

    def unit(rows: int) -> np.ndarray:
        v = nrng.standard_normal((rows, DIM), dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    write_build(index, corpus, model_id="multilingual-e5-small", checksum=_model_checksum(), documents=docs,
                passages=passages, vectors=unit(len(passages)), sentence_vectors=unit(sentences), skipped=[],
                dense=plan(len(passages), "auto"))
    return index


def _model_checksum() -> str:
    """The installed model's checksum, so load_index accepts the synthetic index as this model's."""
    from qa.model import model_checksum

    return model_checksum(None)


def measure(mode: str, index: str) -> None:
    """One measure in this (fresh) process; prints JSON."""
    import faiss  # noqa: F401 - imported before the clock starts: the index's load is measured, not imports

    from qa.files import file_sha256
    from qa.index import index_status, integrity, load_index, loader
    from qa.index.layout import bm25s, current_build
    from qa.model import model_checksum

    bm25s()
    model_checksum(None)  # the model found and its files verified, once per process, before the clock starts
    build = current_build(Path(index))
    files = [p for p in build.rglob("*") if p.is_file()]
    if mode.endswith("-cold"):
        for path in files:  # drop the index's pages from the page cache: read from the disk again
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    if mode.startswith("unchecked"):
        integrity.problem = lambda build, name, files, hash_it=True: ""  # the baseline: no size nor hash check
    out: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "hash-only":
        for path in files:
            file_sha256(path)
    elif mode == "onnx":  # the 8-bit question encoder's file, as valid_file checks it once per process
        from qa.model.identity import cache_root

        q8 = sorted((cache_root() / "onnx").glob("*/model-q8.onnx"))
        out["mb"] = q8[0].stat().st_size / 1e6 if q8 else 0
        t0, c0 = time.perf_counter(), time.process_time()
        for path in q8[:1]:
            file_sha256(path)
    elif mode == "status":
        index_status(index)
    else:
        load_index(index)
    out["seconds"], out["cpu"] = time.perf_counter() - t0, time.process_time() - c0  # cpu: every thread
    if mode == "checked-warm":
        loader._cache.clear()
        t0 = time.perf_counter()
        load_index(index)
        out["reload"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(1000):
            load_index(index)
        out["cached_us"] = (time.perf_counter() - t0) * 1000
        manifest = loader._cache[build.resolve()].manifest
        t0 = time.perf_counter()
        assert integrity.problems(build, manifest["files"]) == []
        out["check_again"] = time.perf_counter() - t0
    print(json.dumps(out))


def run(mode: str, index: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, __file__, "--measure", mode, str(index)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--workdir", help="kept between runs: the synthetic index is reused")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per measure (the median is shown)")
    args = parser.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="qa-checks-")) / f"n{args.passages}"
    if not (root / "index" / "CURRENT").exists():
        t0 = time.perf_counter()
        synthesise(args.passages, root)
        print(f"synthetic index of {args.passages:,} passages written in {time.perf_counter() - t0:.0f} s")
    from qa.index.layout import current_build

    build = current_build(root / "index")
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    sizes = {name: e["size"] / 1e6 for name, e in manifest["files"].items()}
    print(f"# Index checks, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {root}")
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{manifest['counts']['passages']:,} passages, {manifest['counts']['sentences']:,} sentences, "
          f"{manifest['counts']['documents']:,} documents, dense {manifest['dense']['type']}; "
          f"{len(sizes)} files, {sum(sizes.values()):,.0f} MB: "
          + ", ".join(f"{name} {mb:,.0f}" for name, mb in sorted(sizes.items(), key=lambda kv: -kv[1])[:4]))

    modes = ("unchecked-warm", "checked-warm", "unchecked-cold", "checked-cold", "hash-only", "status", "onnx")
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for _ in range(args.repeat):  # interleaved, so a busy moment of the machine does not land on one mode
        for mode in modes:
            results[mode].append(run(mode, root / "index"))

    def med(mode: str, key: str = "seconds") -> float:
        return statistics.median(r[key] for r in results[mode])

    def both(mode: str, baseline: str = "") -> str:
        wall, cpu = med(mode), med(mode, "cpu")
        if not baseline:
            return f"{wall:.2f} s | {cpu:.2f} s"
        return f"{wall:.2f} s (+{wall - med(baseline):.2f}) | {cpu:.2f} s (+{cpu - med(baseline, 'cpu'):.2f})"

    rows = [
        ("load_index, page cache warm, no checks (baseline)", both("unchecked-warm")),
        ("load_index, page cache warm, every file hashed (as shipped)", both("checked-warm", "unchecked-warm")),
        ("load_index, page cache cold, no checks (baseline)", both("unchecked-cold")),
        ("load_index, page cache cold, every file hashed (as shipped)", both("checked-cold", "unchecked-cold")),
        (f"hashing every file alone, one thread, warm ({sum(sizes.values()) / med('hash-only'):,.0f} MB/s)",
         both("hash-only")),
        (f"index_status (qa index status) in a fresh process: every file hashed, "
         f"{manifest['counts']['documents']:,} corpus files stat'ed",
         both("status")),
        ("every file checked again in the same process (hashes cached: a stat per file)",
         f"{med('checked-warm', 'check_again') * 1000:.2f} ms | –"),
        ("load_index again in the same process (build cache dropped, hashes cached)",
         f"{med('checked-warm', 'reload'):.2f} s | –"),
        ("load_index of the cached build (each question: CURRENT read, a stat per file)",
         f"{med('checked-warm', 'cached_us'):.0f} µs | –"),
    ]
    if med("onnx", "mb"):
        rows.append((f"ONNX 8-bit question encoder ({med('onnx', 'mb'):.0f} MB), hashed once per process, warm",
                     both("onnx")))
    print(f"\n| {manifest['counts']['passages']:,} passages, median of {args.repeat} fresh processes "
          "| wall | CPU (all threads) |")
    print("|---|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        measure(sys.argv[2], sys.argv[3])
    else:
        main()
