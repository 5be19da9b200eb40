"""Where index build time goes, and what faster document encoders would cost in quality.

Builds a PIAF index once (the shipped configuration), then re-encodes its passages and sentences
with each variant, swaps the vectors into the loaded index in memory and scores every question.
Variants: torch float32, torch with bfloat16 autocast (shipped on CPUs with native bfloat16), ONNX
float32, ONNX 8-bit weights (the question encoder's), ONNX dynamic int8 (made here), and sentence
vectors pooled from the passage's own token states ("late chunking": one pass per passage).

Usage: python benchmarks/build_speed.py PATH/piaf-dev.json [WORKDIR]   (prints figures; asserts nothing)
PIAF v1.0 (etalab-ia/piaf-code), MIT licence, (c) 2020 DINUM/Etalab.
"""

import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from qa import build_index
from qa import model as models
from qa.chunking import _header
from qa.evaluate.retrieval import format_table, score_mode, sentence_given_paragraph, write_piaf_corpus
from qa.index import load_index
from qa.model.embedding import embedded_texts
from qa.model.onnx_store import QueryEncoder, open_session
from qa.model.query_encoder import load_query_encoder

BATCH = 16  # what builds use (qa.model.embedding.embed_documents)


def late_chunked(st, idx, texts):
    """Sentence vectors as the mean of the passage's token states over each sentence's characters."""
    import torch

    tok, hf, prefix = st.tokenizer, st[0].auto_model, st.prompts["document"]
    per_passage = {}
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for b in range(0, len(order), BATCH):
        ids = order[b : b + BATCH]
        enc = tok([prefix + texts[i] for i in ids], padding=True, truncation=True, max_length=512,
                  return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping").numpy()
        with torch.inference_mode():
            states = hf(**enc).last_hidden_state.numpy()
        for j, i in enumerate(ids):
            p = idx.passages[i]
            base = len(prefix) + len(_header(p)) + 1
            o, valid = offsets[j], enc["attention_mask"][j].numpy().astype(bool) & (offsets[j][:, 1] > offsets[j][:, 0])
            vecs = []
            for s, e in p.sentences:
                sel = valid & (o[:, 0] < base + e - p.start) & (o[:, 1] > base + s - p.start)
                v = states[j][sel if sel.any() else valid].mean(0)
                vecs.append(v / np.linalg.norm(v))
            per_passage[i] = vecs
    return np.array([v for i in range(len(texts)) for v in per_passage[i]], dtype=np.float32)


def dynamic_int8(fp32: QueryEncoder, root: Path) -> QueryEncoder:
    """The float32 export quantised dynamically (int8 weights per channel, activations per batch)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = root / "model-int8-dynamic.onnx"
    quantize_dynamic(str(fp32.path), str(path), weight_type=QuantType.QInt8, per_channel=True)
    return QueryEncoder(open_session(path), fp32.tokenizer, fp32.prompt, path=path, quantized=True)


def main(piaf: str, workdir: str | None = None) -> None:
    root = Path(workdir or tempfile.mkdtemp(prefix="qa-build-speed-"))
    gold = write_piaf_corpus(piaf, root / "corpus")
    summary = build_index(root / "corpus", root / "index")
    paragraphs = len({(g.doc, g.start) for g in gold})
    idx = load_index(root / "index")
    st = models.load_model(None)
    _, location = models.resolve_model(None)
    texts, sentences, _ = embedded_texts(idx.passages)
    shipped = (idx.faiss.reconstruct_n(0, idx.faiss.ntotal), idx.sentence_vectors.copy())

    def timed(fn):
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0

    variants = {}
    for precision in ("fp32", "bf16"):
        with mock.patch.dict(os.environ, {"QA_DOCUMENT_PRECISION": precision}):
            pv, tp = timed(lambda: models.embed_documents(st, texts, batch_size=BATCH))
            sv, ts = timed(lambda: models.embed_documents(st, sentences, batch_size=BATCH))
        variants[f"torch {precision}"] = (pv, sv, tp, ts)
    encoders = {q: load_query_encoder(location, prompt=st.prompts["document"], quantized=q) for q in (False, True)}
    for quantized, enc in encoders.items():
        pv, tp = timed(lambda enc=enc: enc.encode_batch(texts, batch_size=BATCH))
        sv, ts = timed(lambda enc=enc: enc.encode_batch(sentences, batch_size=BATCH))
        variants["onnx 8-bit weights" if quantized else "onnx fp32"] = (pv, sv, tp, ts)
    enc = dynamic_int8(encoders[False], root)
    pv, tp = timed(lambda: enc.encode_batch(texts, batch_size=BATCH))
    sv, ts = timed(lambda: enc.encode_batch(sentences, batch_size=BATCH))
    variants["onnx int8 (dynamic)"] = (pv, sv, tp, ts)
    sv, ts = timed(lambda: late_chunked(st, idx, texts))  # one pass, float32, gives passage and sentence vectors
    variants["torch fp32, late-chunked sentences (one pass)"] = (variants["torch fp32"][0], sv, ts, 0.0)

    distinct = len(set(texts) | set(sentences))
    print(f"PIAF: {paragraphs} paragraphs, {len(texts)} passages, {len(sentences)} sentences "
          f"({distinct} distinct texts: a one-sentence passage is embedded once); shipped build "
          f"{summary.seconds:.1f} s end to end, model loading included "
          f"({paragraphs / summary.seconds:.1f} paragraphs/s), "
          f"document precision {models.document_precision()}\n")
    print("| variant | passages s | sentences s | paragraphs/s (encoding) | min cosine to shipped |")
    print("|---|---|---|---|---|")
    rows = []
    for name, (pv, sv, tp, ts) in variants.items():
        cos = min(float((pv * shipped[0]).sum(1).min()), float((sv * shipped[1]).sum(1).min()))
        print(f"| {name} | {tp:.1f} | {ts:.1f} | {paragraphs / (tp + ts):.1f} | {cos:.4f} |")
        idx.flat_vectors = np.ascontiguousarray(pv)  # what search reads for a flat index
        idx.sentence_vectors = sv
        row = score_mode(gold, root / "index", "hybrid")
        given = sentence_given_paragraph(gold, root / "index")
        rows.append(row.__class__(name, *list(row.__dict__.values())[1:-1],
                                  f"{name}: answer sentence given gold paragraph {given:.3f}"))
    print()
    print(format_table(rows))


if __name__ == "__main__":
    main(*sys.argv[1:3])
