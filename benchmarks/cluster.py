"""Archive scale (issue 8): the distributed build's throughput, and search at 10^6 passages.

Usage:
  python benchmarks/cluster.py throughput PATH/piaf-dev.json [--passages 3000] [--workers 2] [--workdir DIR]
  python benchmarks/cluster.py ivf [--n 1000000] [--queries 200]
  python benchmarks/cluster.py bm25 PATH/piaf-dev.json [--n 1000000] [--workdir DIR]

Prints figures for docs/scale.md; asserts nothing. Run on an idle machine: timings are wall clock.
PIAF v1.0 (etalab-ia/piaf-code, MIT licence, (c) 2020 DINUM/Etalab): real French Wikipedia paragraphs.

- throughput: PIAF's articles copied k times (~--passages passages; each copy's titles are marked, so
  its headed texts are new to the encoder and cost the same to embed as the originals) are built with
  `build_index(full=True)` in a fresh process, plain and with --workers. Each
  row gives passages/s (a passage is embedded with its sentences, as every build does), the peak of
  the summed RSS of the build's process tree (driver, Ray daemons and actors; shared pages count
  more than once), and the largest vector difference between the two builds. Ray's fixed cost is
  the difference of the two paths on one small article. A projection to 10^6 and 10^7 passages on
  1, 4 and 16 nodes follows from the measured per-core rate and Ray's efficiency: on paper.
- ivf: 10^6 synthetic 384-d vectors around 10^4 Gaussian centres (neighbours inside a cluster differ
  by noise only: harsh on recall), the structure `qa.index.dense.plan` picks (IVF4096,SQ8, nprobe 32):
  build time, size on disk, RSS after loading it in a fresh process, one-question p50/p95, and
  recall@10 against exact search. Memory in GiB (RSS) and GB (disk, 10^9 bytes).
- bm25: 10^6 synthetic passages whose tokens are PIAF paragraphs' analysed tokens with 30 % replaced
  by words drawn from a Zipf law over 500k words (a large archive's long vocabulary tail); indexed
  with the engine's BM25 settings, then loaded in a fresh process with and without mmap: load time,
  RSS added, and the engine's keyword scoring (`qa.search` path) on PIAF questions, first pass and warm
  (the files were just written, so the first pass reads the page cache, not the disk).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # child interpreters import this checkout's qa


# ---------------------------------------------------------------- memory of a process tree

def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def tree_rss_mb(pid: int) -> float:
    """Summed VmRSS of `pid` and all its descendants."""
    tree, todo, total = _children(), [pid], 0.0
    while todo:
        p = todo.pop()
        todo.extend(tree.get(p, ()))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def run_tracked(cmd: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    """Run `cmd`, sampling its process tree's RSS every 0.25 s; returns (result, peak MB)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), peak[0]


def last_json(done: subprocess.CompletedProcess, what: str) -> dict:
    """The JSON a child interpreter printed last; its stderr's tail if it failed."""
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV)


# What the child interpreters below start with: their own resident memory, in MB.
CHILD = """
import json, sys, time
from pathlib import Path
def rss():
    return next(int(l.split()[1]) / 1024
                for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
"""


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


# ---------------------------------------------------------------- throughput: plain vs Ray

BUILD = """
import json, sys, time
from qa import build_index
t = time.perf_counter()
s = build_index(sys.argv[1], sys.argv[2], full=True, workers=int(sys.argv[3]) or None)
print(json.dumps({"seconds": time.perf_counter() - t, "passages": s.passages, "embedded": s.embedded_passages}))
"""


def timed_build(corpus: Path, index: Path, workers: int) -> dict:
    result, peak = run_tracked([sys.executable, "-c", BUILD, str(corpus), str(index), str(workers)], env=ENV)
    return {**last_json(result, "build"), "peak_mb": peak}


def throughput(args: argparse.Namespace) -> None:
    from qa.chunking import chunk_document
    from qa.documents import read_document
    from qa.evaluate import write_piaf_corpus
    from qa.index.layout import current_build

    work = Path(args.workdir or tempfile.mkdtemp(prefix="qa-cluster-"))
    articles = work / "articles"
    shutil.rmtree(articles, ignore_errors=True)
    write_piaf_corpus(args.piaf, articles)
    files = sorted(articles.glob("*.txt"))
    per_copy = sum(len(chunk_document(read_document(f, articles))) for f in files)
    copies = max(1, math.ceil(args.passages / per_copy))
    corpus, small = work / "corpus", work / "small"
    for folder in (corpus, small):
        shutil.rmtree(folder, ignore_errors=True)
    for c in range(copies):  # a distinct title per copy: every passage and sentence is new to the encoder,
        (corpus / f"copie-{c:02d}").mkdir(parents=True)  # which embeds each distinct text once
        for f in files:
            title, rest = f.read_text(encoding="utf-8").split("\n", 1)
            (corpus / f"copie-{c:02d}" / f.name).write_text(f"{title} (copie {c})\n{rest}", encoding="utf-8")
    small.mkdir()
    shutil.copy(files[0], small)
    print(f"{copies} copies of PIAF's {len(files)} articles: {copies * per_copy} passages; "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}", flush=True)

    on_ray, runs = f"--workers {args.workers}", {}

    def index(name: str) -> Path:
        return work / "index" / name.replace(" ", "_")

    for name, folder, workers in (("plain, small", small, 0), (f"{on_ray}, small", small, args.workers),
                                  ("plain", corpus, 0), (on_ray, corpus, args.workers)):
        r = runs[name] = timed_build(folder, index(name), workers)
        print(f"  {name}: {r['passages']} passages in {r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB", flush=True)
    plain, ray = runs["plain"], runs[on_ray]
    a, b = (np.load(current_build(index(name)) / "vectors.npy") for name in ("plain", on_ray))
    fixed = runs[f"{on_ray}, small"]["seconds"] - runs["plain, small"]["seconds"]
    rate_plain = plain["passages"] / plain["seconds"]

    print("\n| build | passages | seconds | passages/s | vs plain | peak memory (process tree) |")
    print("|---|---|---|---|---|---|")
    for name, r in (("plain", plain), (f"Ray, {on_ray}", ray)):
        rate = r["passages"] / r["seconds"]
        print(f"| {name} | {r['passages']} | {r['seconds']:.0f} | {rate:.2f} | {rate / rate_plain:.2f} | "
              f"{r['peak_mb'] / 1024:.1f} GiB |")
    print(f"\nRay's fixed cost (one article, {on_ray} minus plain): {fixed:.1f} s. "
          f"Largest vector difference, plain vs Ray: {np.abs(a - b).max():.2g}.")

    project(rate_plain, ray["passages"], ray["seconds"], fixed, os.cpu_count())


def project(rate_plain: float, passages: int, ray_seconds: float, fixed: float, cores: int) -> None:
    """Hours for 10^5-10^7 passages on n nodes: Ray's fixed cost once, then the measured per-core rate
    times Ray's efficiency (its throughput once started, over the plain build's). On paper: it assumes
    throughput grows with cores, and leaves out the final assembly on one machine."""
    fixed = max(0.0, fixed)
    per_core = rate_plain / cores
    efficiency = passages / max(1e-9, ray_seconds - fixed) / rate_plain
    print(f"\nProjection (on paper): {per_core:.2f} passages/s per core x {efficiency:.2f} (Ray's efficiency once "
          f"started) x cores, plus {fixed:.0f} s of start-up; the assembly on one machine is not included.")
    print("\n| passages | 1 node, 2 cores | 4 nodes, 2 cores | 16 nodes, 2 cores | 16 nodes, 16 cores |")
    print("|---|---|---|---|---|")
    for n in (10**5, 10**6, 10**7):
        cells = []
        for nodes, node_cores in ((1, 2), (4, 2), (16, 2), (16, 16)):
            seconds = fixed + n / (nodes * node_cores * per_core * efficiency)
            cells.append(f"{seconds / 60:.0f} min" if seconds < 3600 else
                         f"{seconds / 3600:.1f} h" if seconds < 72 * 3600 else f"{seconds / 86400:.1f} d")
        print(f"| {n:.0e} | " + " | ".join(cells) + " |")


# ---------------------------------------------------------------- IVF at 10^6

LOAD_FAISS = CHILD + """
import faiss
before = rss(); t = time.perf_counter()
index = faiss.read_index(sys.argv[1])
print(json.dumps({"load_s": time.perf_counter() - t, "rss_mb": rss() - before}))
"""


def clustered(n: int, dim: int, centres: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        block = c[rng.integers(0, centres, b - a)] + 0.03 * rng.standard_normal((b - a, dim)).astype(np.float32)
        out[a:b] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def ivf(args: argparse.Namespace) -> None:
    import faiss

    from qa.index import dense

    print("| index | vectors | build | disk | RSS after load (load time) | 1 question p50 / p95 | recall@10 |")
    print("|---|---|---|---|---|---|---|")
    vectors = clustered(args.n, 384, 10_000)
    params = dense.plan(args.n, "ivf")  # what "auto" picks above qa.dense.FLAT_MAX
    if args.nlist:
        params = {**params, "nlist": args.nlist}
    if args.train_per_list:
        dense.TRAIN_PER_LIST = args.train_per_list
    t = time.perf_counter()
    index = dense.build(vectors, params)
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dense.faiss"
        faiss.write_index(index, str(path))
        disk = path.stat().st_size / 1e9
        loaded = last_json(child(LOAD_FAISS, str(path)), "loading the index")
    rng = np.random.default_rng(1)
    queries = (vectors[rng.choice(args.n, args.queries, replace=False)]
               + 0.01 * rng.standard_normal((args.queries, 384)).astype(np.float32))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    faiss.omp_set_num_threads(os.cpu_count())
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(index.search(q.reshape(1, -1), 10)[1][0])
        times.append((time.perf_counter() - t) * 1000)
    exact = faiss.IndexFlatIP(384)
    exact.add(vectors)
    truth = exact.search(queries, 10)[1]
    recall = np.mean([len(set(f) & set(g)) / 10 for f, g in zip(found, truth, strict=True)])
    print(f"| {params['type']} nlist {params['nlist']} ({dense.TRAIN_PER_LIST} training points per list), nprobe "
          f"{params['nprobe']} | {args.n:.0e} | {build_s:.0f} s | "
          f"{disk:.2f} GB | {loaded['rss_mb'] / 1024:.2f} GiB ({loaded['load_s']:.1f} s) | "
          f"{pct(times, 50):.2f} / {pct(times, 95):.2f} ms | {recall:.3f} |")


# ---------------------------------------------------------------- BM25 at 10^6

QUERY_BM25 = CHILD + """
import numpy as np
from qa.index.layout import bm25s as _bm25s
from qa.french import analyze
from qa.search import CANDIDATES, _top
bm25s = _bm25s()
questions = json.loads(Path(sys.argv[2]).read_text())
before = rss(); t = time.perf_counter()
bm25 = bm25s.BM25.load(sys.argv[1], mmap=sys.argv[3] == "mmap", show_progress=False)
load_s, load_mb = time.perf_counter() - t, rss() - before
passes = []
for _ in range(2):  # first pass (pages read from disk when mmapped), then warm
    times = []
    for q in questions:
        t = time.perf_counter()
        ids = bm25.get_tokens_ids(analyze(q, question=True) or analyze(q))
        if ids:
            _top(np.asarray(bm25.get_scores_from_ids(ids), dtype=np.float32), CANDIDATES)
        times.append((time.perf_counter() - t) * 1000)
    passes.append(times)
print(json.dumps({"load_s": load_s, "load_mb": load_mb, "after_mb": rss() - before, "passes": passes}))
"""


def bm25(args: argparse.Namespace) -> None:
    from qa.french import analyze
    from qa.index.layout import BM25_PARAMS
    from qa.index.layout import bm25s as _bm25s

    data = json.loads(Path(args.piaf).read_text(encoding="utf-8"))["data"]
    paragraphs = [p["context"] for a in data for p in a["paragraphs"]]
    questions = [q["question"] for a in data for p in a["paragraphs"] for q in p["qas"]][: args.queries]
    base = [analyze(p) for p in paragraphs]
    rng = np.random.default_rng(0)
    vocab = [f"mot{r}" for r in range(500_000)]
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.07
    cdf = np.cumsum(zipf / zipf.sum())
    t = time.perf_counter()
    corpus = []
    for i in range(args.n):
        tokens = list(base[i % len(base)])
        swap = np.flatnonzero(rng.random(len(tokens)) < 0.3)
        for j, w in zip(swap, np.searchsorted(cdf, rng.random(len(swap))), strict=True):
            tokens[j] = vocab[min(w, len(vocab) - 1)]
        corpus.append(tokens)
    make_s = time.perf_counter() - t
    work = Path(args.workdir or tempfile.mkdtemp(prefix="qa-bm25-"))
    folder = work / "bm25"
    bm25s = _bm25s()
    t = time.perf_counter()
    model = bm25s.BM25(**BM25_PARAMS)
    model.index(corpus, show_progress=False)
    index_s = time.perf_counter() - t
    model.save(str(folder), show_progress=False)
    disk = sum(p.stat().st_size for p in folder.iterdir()) / 1e9
    tokens = sum(map(len, corpus))
    del corpus, model
    (work / "questions.json").write_text(json.dumps(questions, ensure_ascii=False), encoding="utf-8")
    print(f"{args.n:.0e} passages, {tokens / args.n:.0f} tokens each: made in {make_s:.0f} s, indexed in "
          f"{index_s:.0f} s, {disk:.2f} GB on disk; {len(questions)} PIAF questions")
    print("\n| load | load time | RSS after load | RSS after queries | first pass p50 / p95 | warm p50 / p95 |")
    print("|---|---|---|---|---|---|")
    for mode in ("mmap", "memory"):
        r = last_json(child(QUERY_BM25, str(folder), str(work / "questions.json"), mode), f"BM25, {mode}")
        first, warm = r["passes"]
        print(f"| {mode} | {r['load_s']:.2f} s | {r['load_mb']:.0f} MB | {r['after_mb']:.0f} MB | "
              f"{statistics.median(first):.1f} / {pct(first, 95):.1f} ms | {statistics.median(warm):.1f} / "
              f"{pct(warm, 95):.1f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("throughput", help="plain vs Ray build of PIAF copies")
    t.add_argument("piaf")
    t.add_argument("--passages", type=int, default=3000)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--workdir")
    v = sub.add_parser("ivf", help="IVF-SQ8 at 10^6 synthetic vectors")
    v.add_argument("--n", type=int, default=1_000_000)
    v.add_argument("--queries", type=int, default=200)
    v.add_argument("--nlist", type=int, help="other than the plan's (e.g. 4096, the previous plan at 10^6)")
    v.add_argument("--train-per-list", type=int, help="other than qa.dense.TRAIN_PER_LIST (e.g. 256)")
    pr = sub.add_parser("projection", help="the projection table again, from a throughput run's figures")
    pr.add_argument("--plain-rate", type=float, required=True, help="plain build, passages/s")
    pr.add_argument("--ray-passages", type=int, required=True)
    pr.add_argument("--ray-seconds", type=float, required=True)
    pr.add_argument("--fixed", type=float, required=True, help="Ray's fixed cost, s")
    pr.add_argument("--cores", type=int, default=os.cpu_count())
    b = sub.add_parser("bm25", help="BM25 at 10^6 synthetic passages, mmap vs memory")
    b.add_argument("piaf")
    b.add_argument("--n", type=int, default=1_000_000)
    b.add_argument("--queries", type=int, default=200)
    b.add_argument("--workdir")
    args = parser.parse_args()
    if args.command == "projection":
        project(args.plain_rate, args.ray_passages, args.ray_seconds, args.fixed, args.cores)
    else:
        {"throughput": throughput, "ivf": ivf, "bm25": bm25}[args.command](args)


if __name__ == "__main__":
    main()
