"""The index at scale: build time, disk, memory, latency and dense recall at 10^4 and 10^5 passages.

Usage: python benchmarks/scale.py PATH/piaf-dev.json [--sizes 10000 100000] [--workdir DIR] [--questions 200]
Prints figures for docs/scale.md; asserts nothing. PIAF v1.0 (etalab-ia/piaf-code, MIT licence,
(c) 2020 DINUM/Etalab): real French questions over French Wikipedia paragraphs.

Method. PIAF's articles are indexed for real (`build_index`, 479 passages). An N-passage corpus is
made of copies of them: copy 0 verbatim, later copies with numbers shifted and ~5% of words swapped for
other PIAF words (so BM25 sees distinct documents), written to files and read with `read_document` +
`chunk_document` as a build would. They are NOT embedded (multilingual-e5-small embeds a few passages/s
with their sentences on 2 cores: 10^5 passages would take hours): each copied passage and sentence gets
its original's real vector plus Gaussian noise (--noise per dimension, then L2-normalised); copy 0 keeps
the real vectors. `qa.index.writer.write_build` (the code every build uses) writes the index, with Flat and with
IVF-SQ8. Embedding throughput is measured apart on real passages and projected to N. Each index is then
measured in a fresh process: RSS around `load_index`, warm `retrieve(k=10)` latency on PIAF questions,
recall@10 of the FAISS index against exact search, and how often the top 10 holds the gold paragraph.

Caveats. Copies are not a real 10^5 corpus: BM25 statistics, dense score spread and the gold hit rate
are those of PIAF repeated, not of distinct reports; sigma 0.02 puts a copy at cosine ~0.93 of its
original. Build cost, disk, memory and latency follow counts and sizes, which are realistic (PIAF:
~1.35 passages per paragraph, ~3.3 sentences per passage). Timings are wall clock: run on an idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FILES = ("dense.faiss", "bm25", "sentences.npy", "vectors.npy", "passages.jsonl", "documents.jsonl")
_WORD = re.compile(r"[^\W\d_]{4,}")
_NUMBER = re.compile(r"\d+")


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmHWM: its peak since exec; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def vary(text: str, copy: int, rng: random.Random, vocab: list[str]) -> str:
    """The article with numbers shifted by `copy` and ~5% of words replaced; the title line kept."""
    title, _, body = text.partition("\n\n")

    def word(m: re.Match) -> str:
        if rng.random() >= 0.05:
            return m.group()
        new = rng.choice(vocab)
        return new.capitalize() if m.group()[0].isupper() else new

    body = _NUMBER.sub(lambda m: str(int(m.group()) + copy), body)
    return f"{title}\n\n{_WORD.sub(word, body)}"


def embedding_rate(idx, n: int = 100) -> tuple[float, float]:
    """Real embedding throughput: passages/s, each with its sentences (as a build embeds), and texts/s."""
    from qa import model as models
    from qa.chunking import indexed_sentences, indexed_text
    from qa.model.embedding import embedding_input

    encoder = models.load_model(None)
    sample = idx.passages[:: max(1, len(idx.passages) // n)][:n]
    models.embed_documents(encoder, ["passage de chauffe"])
    t0 = time.perf_counter()
    texts = [embedding_input(indexed_text(p)) for p in sample]
    models.embed_documents(encoder, texts)
    sentences = [embedding_input(s) for p in sample for s in indexed_sentences(p)]
    models.embed_documents(encoder, sentences)
    seconds = time.perf_counter() - t0
    return len(sample) / seconds, (len(texts) + len(sentences)) / seconds


def synthetic(n: int, idx, src: Path, corpus: Path, sigma: float, seed: int = 0):
    """Rows, passages and vectors of an n-passage corpus of PIAF copies written under `corpus`."""
    from qa.chunking import chunk_document
    from qa.documents import read_document
    from qa.index.ingest import document_row
    from qa.index.status import stat_record

    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(src.glob("*.txt"))}
    vocab = sorted({w.lower() for t in texts.values() for w in _WORD.findall(t)})
    per_doc: dict[str, list[int]] = {}
    for i, p in enumerate(idx.passages):
        per_doc.setdefault(p.doc, []).append(i)
    off = idx.sentence_offsets
    shutil.rmtree(corpus, ignore_errors=True)
    rng = random.Random(seed)
    rows, passages, pidx, sidx = [], [], [], []
    read_s, mismatched = 0.0, 0
    for copy, name in ((c, name) for c in itertools.count() for name in texts):
        if len(passages) >= n:
            break
        path = corpus / f"copie-{copy:04d}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(texts[name] if copy == 0 else vary(texts[name], copy, rng, vocab), encoding="utf-8")
        t0 = time.perf_counter()
        doc = read_document(path, corpus)
        parts = chunk_document(doc)
        read_s += time.perf_counter() - t0
        orig = per_doc[name]
        for j, p in enumerate(parts):  # a copy cut differently takes its nearest original's vectors
            o = orig[min(j, len(orig) - 1)]
            m = off[o + 1] - off[o]
            mismatched += j >= len(orig) or len(p.sentences) != m
            pidx.append(o)
            sidx.extend(off[o] + t % m for t in range(len(p.sentences)))
        rows.append({**document_row(doc), **stat_record(path)})  # as a build records it
        passages.extend(parts)
    cut = sum(len(p.sentences) for p in passages[:n])  # the last document keeps only its first passages
    passages, pidx, sidx = passages[:n], pidx[:n], sidx[:cut]
    gen = np.random.default_rng(seed)
    copied = np.array([not p.doc.startswith("copie-0000/") for p in passages])  # copy 0 keeps real vectors
    vectors = _noisy(idx.faiss.reconstruct_n(0, idx.faiss.ntotal)[pidx], sigma, gen, copied)
    sentences = _noisy(np.asarray(idx.sentence_vectors)[sidx], sigma, gen,
                       np.repeat(copied, [len(p.sentences) for p in passages]))
    return rows, passages, vectors, sentences, read_s, mismatched


def _noisy(vectors: np.ndarray, sigma: float, gen: np.random.Generator, flags: np.ndarray) -> np.ndarray:
    vectors = np.array(vectors, dtype=np.float32)
    vectors[flags] += sigma * gen.standard_normal((int(flags.sum()), vectors.shape[1]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def measure(index: str, spec_file: str) -> None:
    """In a fresh process: memory of `load_index`, warm retrieve latency, dense recall, gold hits (JSON)."""
    import bm25s  # noqa: F401 - libraries imported before the baseline: their code is not index memory
    import faiss

    from qa import retrieve
    from qa.index import load_index
    from qa.model.query_encoder import encode_question

    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    questions, prefixes = spec["questions"], spec["prefixes"]
    qvecs = np.stack([encode_question(None, q) for q in questions])  # also loads the encoder
    before, anon = rss_mb(), rss_mb("RssAnon")
    t0 = time.perf_counter()
    idx = load_index(index)
    load_s = time.perf_counter() - t0
    retrieve(questions[0], k=10, index=index)  # warm-up
    times, hits = [], 0
    for q, prefix in zip(questions, prefixes, strict=True):
        t0 = time.perf_counter()
        top = retrieve(q, k=10, index=index)
        times.append((time.perf_counter() - t0) * 1000)
        hits += any(prefix in p.text for p in top)
    after, peak = rss_mb(), rss_mb("VmHWM")
    exact = faiss.IndexFlatIP(qvecs.shape[1])
    exact.add(np.load(idx.path / "vectors.npy"))
    _, got = idx.faiss.search(qvecs, 10)
    _, want = exact.search(qvecs, 10)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)]))
    print(json.dumps({"load_s": load_s, "base": before, "rss": after - before, "anon": rss_mb("RssAnon") - anon,
                      "peak": peak, "recall": recall,
                      "p50": statistics.median(times), "p95": statistics.quantiles(times, n=20)[18],
                      "hits": hits / len(questions), "dense": idx.manifest["dense"]}))


def run_measure(index: Path, spec_file: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, __file__, "--measure", str(index), str(spec_file)],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"measurement of {index} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("piaf", help="PIAF piaf-dev.json")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workdir", help="kept between runs; the real PIAF index is reused")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.02, help="sigma per dimension of the copies' vector noise")
    args = parser.parse_args()

    from qa import build_index
    from qa.evaluate import write_piaf_corpus
    from qa.index import load_index
    from qa.index.dense import plan
    from qa.index.layout import current_build
    from qa.index.writer import write_build

    root = Path(args.workdir or tempfile.mkdtemp(prefix="qa-scale-"))
    print(f"# Scale benchmark, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, workdir {root}")
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    gold = write_piaf_corpus(args.piaf, root / "piaf" / "corpus")
    t0 = time.perf_counter()
    summary = build_index(root / "piaf" / "corpus", root / "piaf" / "index")
    print(f"real PIAF index: {summary.passages} passages ({summary.embedded_passages} embedded now), "
          f"{time.perf_counter() - t0:.1f} s")
    idx = load_index(root / "piaf" / "index")
    model = idx.manifest["model"]
    rate, text_rate = embedding_rate(idx)
    print(f"embedding, 100 real passages with their sentences: {rate:.1f} passages/s ({text_rate:.1f} texts/s)")

    chosen = random.Random(0).sample(gold, min(args.questions, len(gold)))
    text = {g.doc: (root / "piaf" / "corpus" / g.doc).read_text(encoding="utf-8") for g in chosen}
    spec = root / "questions.json"
    spec.write_text(json.dumps({"questions": [g.question for g in chosen],
                                "prefixes": [text[g.doc][g.start : g.start + 60] for g in chosen]}), encoding="utf-8")

    rows = ["| passages | dense | read+chunk s | write s (FAISS+BM25+files) | projected embedding | disk MB | load s "
            "| RSS MB (index; anon) | peak RSS MB | retrieve p50 ms | p95 ms | dense recall@10 vs exact "
            "| gold hit@10 |",
            "|---" * 13 + "|"]
    files = ["| passages | dense | " + " | ".join(FILES) + " |", "|---" * (2 + len(FILES)) + "|"]

    def add(n, build, read_s, write_s) -> float:
        m = run_measure(build.parent, spec)
        dense = m["dense"]["type"] + (f" (nlist {m['dense']['nlist']}, nprobe {m['dense']['nprobe']})"
                                      if "nlist" in m["dense"] else "")
        rows.append(f"| {n:,} | {dense} | {read_s} | {write_s} | {duration(n / rate)} | {size_mb(build):.0f} | "
                    f"{m['load_s']:.2f} | {m['rss']:.0f} ({m['anon']:.0f}) | {m['peak']:.0f} | {m['p50']:.1f} | "
                    f"{m['p95']:.1f} | {m['recall']:.3f} | {m['hits']:.3f} |")
        sizes = " | ".join(f"{size_mb(build / f):.1f}" for f in FILES)
        files.append(f"| {n:,} | {m['dense']['type']} | {sizes} |")
        print(rows[-1], flush=True)
        return m["base"]

    base = add(len(idx.passages), current_build(root / "piaf" / "index"), "–", "–")
    for n in args.sizes:
        corpus = root / f"synth-{n}" / "corpus"
        docs, passages, vectors, sentences, read_s, mismatched = synthetic(n, idx, root / "piaf" / "corpus", corpus,
                                                                           args.noise)
        print(f"{n:,} passages: {len(docs):,} documents, {len(sentences):,} sentences, read+chunk {read_s:.1f} s, "
              f"{mismatched} passages cut unlike their original (given the nearest one's vectors)", flush=True)
        for kind in ("flat", "ivf"):
            index = root / f"synth-{n}" / f"index-{kind}"
            shutil.rmtree(index, ignore_errors=True)
            t0 = time.perf_counter()
            build = write_build(index, corpus, model_id=model["id"], checksum=model["checksum"], documents=docs,
                                passages=passages, vectors=vectors, sentence_vectors=sentences, skipped=[],
                                dense=plan(n, kind))
            add(n, build, f"{read_s:.1f}", f"{time.perf_counter() - t0:.1f}")
        del docs, passages, vectors, sentences

    print("\n## Scale\n\n" + "\n".join(rows) + "\n\nDisk, MB per file:\n\n" + "\n".join(files))
    print(f"""
- First row: the real PIAF index. Other rows: copies of PIAF with SYNTHETIC vectors (real vector + Gaussian
  noise, sigma {args.noise} per dimension, L2-normalised); nothing was embedded for them. Embedding is projected
  as N / {rate:.1f} passages/s (measured: passage + its sentences, multilingual-e5-small, {os.cpu_count()} CPUs).
- read+chunk: read_document + chunk_document of the synthetic files; write: qa.index.writer.write_build (FAISS,
  BM25, vectors, passages, documents, manifest, fsync). Disk MB: the build folder (apparent sizes).
- Fresh process per index: RSS MB = VmRSS after load_index and the questions minus before (libraries and
  question encoder loaded: baseline {base:.0f} MB); in brackets its anonymous part (RssAnon): the rest is
  page cache of memory-mapped sentences.npy, as much as read-ahead brought in (read_ahead_kb of the disk).
  Peak RSS = VmHWM of that process.
- retrieve(k=10), hybrid, warm, {len(chosen)} PIAF questions. Dense recall@10: FAISS top 10 vs exact search
  on the same vectors. Gold hit@10: a top-10 passage holds the first 60 characters of the gold paragraph
  (original or an unaltered copy): an artificial haystack of near-duplicates, not a quality figure.""")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        measure(sys.argv[2], sys.argv[3])
    else:
        main()
