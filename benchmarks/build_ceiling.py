"""How fast a PIAF build could possibly be on this machine: the arithmetic it needs against the
fastest matrix products the CPU does.

Reads and cuts the PIAF articles exactly as a build does (`qa.index.ingest.read_one`), takes the distinct
texts a build embeds (`qa.model.embedding.embedded_texts`: every passage and every sentence under its header),
tokenises them with the document prompt and pads them in batches the way `qa.model.embedding.embed_documents`
does. From the model's shape it counts the floating-point operations of the encoder's matrix
products (the linear layers, and attention's two products over the padded length). It then times
torch's matrix products at the encoder's own shapes in float32, bfloat16 and int8 (best of 5), and
gives the shortest encoding time those rates allow: every other cost (layer norms, GELU, softmax,
tokenising, reading, writing the index) counted as zero. It is a lower bound on time, so an upper
bound on paragraphs/s. Last, it times the real encoding of those texts (`qa.model.embedding.embed_documents`,
median of 3 interleaved rounds) in float32, in bfloat16 (the shipped precision on this CPU), and in
bfloat16 with batches grouped by characters as sentence-transformers groups them (builds before
2026-11-25), and model loading in a fresh process.

Usage: python benchmarks/build_ceiling.py PATH/piaf-dev.json [WORKDIR]   (prints figures; asserts nothing)
PIAF v1.0 (etalab-ia/piaf-code, MIT licence, (c) 2020 DINUM/Etalab).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from qa import model as models
from qa.evaluate.retrieval import write_piaf_corpus
from qa.index.ingest import read_one
from qa.model.embedding import embedded_texts

BATCH = 16  # qa.model.embedding.embed_documents' default, what builds use
TARGET = 25.0  # paragraphs/s asked by issue 4


def by_characters(texts: list[str]) -> list[list[int]]:
    """Batches as sentence-transformers' encode makes them (longest first by characters), as builds did before."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    return [order[b : b + BATCH] for b in range(0, len(order), BATCH)]


def products(batches: list[list[int]], lengths: list[int], layers: int, d: int, f: int) -> tuple[int, int, int, int]:
    """Floating-point operations of the encoder's matrix products over these padded batches:
    (d x d projections, feed-forward pair, attention, padded tokens)."""
    padded = [(max(lengths[i] for i in b), len(b)) for b in batches]
    tokens = sum(n * k for n, k in padded)
    # Per layer and token: Q, K, V and output projections (d x d each), the feed-forward pair (d x f, f x d).
    square, wide = 2 * tokens * layers * 4 * d * d, 2 * tokens * layers * 2 * d * f
    # Per layer and sequence of padded length n: scores Q K^T and their product with V, n*n*d each.
    attention = sum(2 * layers * 2 * n * n * d * k for n, k in padded)
    return square, wide, attention, tokens


def rate(dtype: str, m: int, k: int, n: int, repeats: int = 5) -> float:
    """Best GFLOP/s (GOP/s for int8) of an (m, k) x (k, n) product in torch on this machine's threads."""
    import torch

    if dtype == "int8":
        a = torch.randint(-127, 128, (m, k), dtype=torch.int8)
        b = torch.randint(-127, 128, (k, n), dtype=torch.int8)
        run = lambda: torch._int_mm(a, b)  # noqa: E731  (what an int8 linear layer's product is)
    else:
        kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        a, b = torch.randn(m, k, dtype=kind), torch.randn(k, n, dtype=kind)
        run = lambda: a @ b  # noqa: E731
    run()
    best = min(_seconds(run) for _ in range(repeats))
    return 2 * m * k * n / best / 1e9


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def load_seconds() -> float:
    """Wall time of importing the engine and loading the model in a fresh interpreter, as a build does."""
    code = "from qa import model; model.load_model(None)"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   cwd=Path(__file__).resolve().parents[1])
    return time.perf_counter() - t0


def main(piaf: str, workdir: str | None = None) -> None:
    root = Path(workdir or tempfile.mkdtemp(prefix="qa-build-ceiling-"))
    gold = write_piaf_corpus(piaf, root / "corpus")
    paragraphs = len({(g.doc, g.start) for g in gold})
    passages = []
    for path in sorted((root / "corpus").iterdir()):
        passages += read_one(path, root / "corpus").passages
    texts, sentences, unique = embedded_texts(passages)

    st = models.load_model(None)
    config = st[0].auto_model.config
    layers, d, f = config.num_hidden_layers, config.hidden_size, config.intermediate_size
    prompt = st.prompts["document"]
    ids = st.tokenizer([prompt + t for t in unique], truncation=True, max_length=st.max_seq_length)["input_ids"]
    lengths = [len(x) for x in ids]  # what the encoder sees: prompt and special tokens included
    grouped = {"tokens": models.document_batches(st, unique, BATCH), "characters": by_characters(unique)}
    work = {name: products(batches, lengths, layers, d, f) for name, batches in grouped.items()}
    square, wide, attention, padded_total = work["tokens"]
    lengths_sorted = sorted(max(lengths[i] for i in b) for b in grouped["tokens"])
    rows_per_batch = BATCH * lengths_sorted[len(lengths_sorted) // 2]  # the median batch's rows
    print(f"PIAF: {paragraphs} paragraphs, {len(passages)} passages, {len(sentences)} sentences, "
          f"{len(unique)} distinct texts embedded; {sum(lengths):,} tokens, {padded_total:,} once padded in "
          f"batches of {BATCH} grouped by token count ({work['characters'][3]:,} grouped by characters, as "
          f"before); model {layers} layers, d={d}, ffn={f}")
    print(f"matrix products: {(square + wide) / 1e12:.2f} TFLOP in linear layers, "
          f"{attention / 1e12:.2f} TFLOP in attention\n")

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"matrix product rates at the encoder's shapes ({rows_per_batch} rows)")
    bounds = {}
    for dtype in ("fp32", "bf16", "int8"):
        r_square, r_wide = rate(dtype, rows_per_batch, d, d), rate(dtype, rows_per_batch, d, f)
        r_narrow = rate(dtype, rows_per_batch, f, d)
        for grouping, (square, wide, attention, _) in work.items():
            # The feed-forward pair: two products of equal work, one at each rate.
            bounds[dtype, grouping] = (square / r_square + wide / 2 / r_wide + wide / 2 / r_narrow
                                       + attention / r_square) / 1e9
        print(f"- {dtype}: {r_square:.0f} (d x d), {r_wide:.0f} (d x ffn), {r_narrow:.0f} (ffn x d) GFLOP/s")

    # Median of 3 interleaved rounds: this machine's timings drift by 10-20 % from one minute to the next.
    runs = {("fp32", "tokens"): [], ("bf16", "tokens"): [], ("bf16", "characters"): []}
    models.embed_documents(st, ["passage de chauffe"])
    for _ in range(3):
        for (precision, grouping), seconds in runs.items():
            as_before = mock.patch.object(models, "document_batches", lambda _m, texts, _b: by_characters(texts))
            with mock.patch.dict(os.environ, {"QA_DOCUMENT_PRECISION": precision}), \
                    (as_before if grouping == "characters" else contextlib.nullcontext()):
                seconds.append(_seconds(lambda: models.embed_documents(st, unique)))
    load = load_seconds()

    print(f"\nmodel loading in a fresh process (imports included): {load:.1f} s. "
          f"{TARGET:.0f} paragraphs/s means the whole build in {paragraphs / TARGET:.1f} s.\n")
    print("| products in | encoding, lower bound s | paragraphs/s at most (encoding only) "
          "| at most, with model loading | encoding measured s | paragraphs/s measured (encoding only) "
          "| share of the bound reached |")
    print("|---|---|---|---|---|---|---|")
    names = {("fp32", "tokens"): "fp32", ("bf16", "tokens"): "bf16 (shipped on this CPU)",
             ("bf16", "characters"): "bf16, batches grouped by characters (before)"}
    for (dtype, grouping), name in names.items():
        bound, seen = bounds[dtype, grouping], statistics.median(runs[dtype, grouping])
        print(f"| {name} | {bound:.1f} | {paragraphs / bound:.1f} | {paragraphs / (bound + load):.1f} | {seen:.1f} "
              f"| {paragraphs / seen:.1f} | {bound / seen:.0%} |")
    bound = bounds["int8", "tokens"]
    print(f"| int8 | {bound:.1f} | {paragraphs / bound:.1f} | {paragraphs / (bound + load):.1f} | – | – | – |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
