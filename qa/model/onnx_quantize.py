"""8-bit weights for the ONNX question encoder: the same vectors (cosine >= 0.999), a quarter of the bytes.

A short question is memory-bound on a small CPU: each one streams every weight matrix once (84 MB
in float32 for e5-small). onnxruntime's MatMulNBits stores them as 8-bit blocks (one scale per 128
weights, symmetric) and, at accuracy level 4, multiplies with int8 activations quantised per block
(dynamic int8, by contrast, scales activations per tensor: cosine 0.99 and R@1 lost). On PIAF
questions, retrieval p50 went from 11.4 to 9.3 ms at equal retrieval quality (docs/performance.md).
Documents stay with torch: bfloat16 autocast embeds them faster than these weights do.

MatMulNBits leaves the word-embedding table (250,037 x 384 floats for e5-small: 384 MB, most of the
file) alone, and its own quantiser for Gather needs opset 21, which breaks the export's ReduceL2: the
table is stored here in int8 rows with one float32 scale per row (`quantize_tables`), read back by
Gather -> Cast -> Mul. A question reads a few dozen rows, so it costs nothing in speed; the file goes
from 407 to 120 MB at the same fidelity (worst cosine to float32 0.99933 against 0.99931 on the probes).

The quantised file is checked against the float32 export (itself checked against torch) before
it is kept; `qa.model.onnx_export` calls `quantize_weights` under its cache lock and records the result
(including a refusal, so that other weights whose 8-bit vectors stray are not quantised at every start).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from qa.files import temporary_sibling
from qa.model.onnx_store import (
    DEFAULT_MAX_LENGTH,
    FP32_FILE,
    PROBES,
    Q8_FILE,
    QueryEncoder,
    QueryEncoderUnavailable,
    file_entry,
    load_tokenizer,
    open_session,
    query_prompt,
    release_memory,
    write_record,
)

logger = logging.getLogger(__name__)

BITS = 8
BLOCK_SIZE = 128
ACCURACY_LEVEL = 4  # int8 activations: the fast path on AVX2/AVX512-VNNI CPUs
MIN_COSINE = 0.999  # to the float32 export (measured 0.9995 on questions); 4-bit weights lost 0.6 point of R@1
TABLE_MIN_ROWS = 4096  # a Gather over a float table this tall (the word embeddings) is stored in int8 rows


class QuantizationFailed(QueryEncoderUnavailable):
    """The 8-bit file cannot be made here; the float32 export may still serve."""


class QuantizationRefused(QuantizationFailed):
    """The 8-bit vectors strayed from float32: remembered for these weights and settings."""


def settings() -> str:
    """What the 8-bit file depends on besides the weights; a change makes it again."""
    import onnxruntime  # lazy: `import qa` stays light

    return (f"bits={BITS} block={BLOCK_SIZE} accuracy_level={ACCURACY_LEVEL} tables=int8-rows "
            f"onnxruntime={onnxruntime.__version__}")


def recorded_usable(record: dict[str, Any]) -> bool:
    """Whether the export record's 8-bit entry was made with today's settings; raises the refusal it records."""
    q8 = record.get("q8") or {}
    if q8.get("settings") != settings():
        return False
    if "refused" in q8:
        raise QuantizationRefused(q8["refused"])
    return True


def quantize_into_record(model_dir: Path, folder: Path, record: dict[str, Any]) -> None:
    """Make the 8-bit file from the folder's float32 export and record it, or record why it was refused.

    Called by qa.model.onnx_export under the folder's lock."""
    logger.info("Quantising the ONNX model of %s to 8-bit weights (once; about 5 s).", model_dir)
    record["files"].pop(Q8_FILE, None)
    max_length = int(record.get("max_seq_length") or DEFAULT_MAX_LENGTH)
    try:
        worst = quantize_weights(model_dir, folder / FP32_FILE, folder / Q8_FILE, max_length=max_length)
    except QuantizationRefused as exc:  # deterministic for these weights and settings: not tried again
        record["q8"] = {"settings": settings(), "refused": str(exc)}
        write_record(folder, record)
        raise
    record["q8"] = {"settings": settings(), "min_cosine_to_fp32": round(worst, 7)}
    record["files"][Q8_FILE] = file_entry(folder, Q8_FILE)
    write_record(folder, record)


def quantize_weights(model_dir: Path, fp32_path: Path, out_path: Path, *,
                     max_length: int = DEFAULT_MAX_LENGTH) -> float:
    """Write the 8-bit-weight model of `fp32_path` to `out_path` atomically; returns its worst cosine to float32.

    Raises QuantizationRefused when the vectors stray, QuantizationFailed for any other failure.
    """
    import onnx  # lazy: a heavy library, loaded on first use

    quantizer, config = _quantizer_classes()
    job = None
    with temporary_sibling(out_path) as tmp:
        try:
            algo = config(block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=ACCURACY_LEVEL, bits=BITS)
            graph = onnx.load(str(fp32_path))
            quantize_tables(graph)  # first: the quantiser then copies a graph without the float32 table
            job = quantizer(graph, algo_config=algo)
            graph = None
            job.process()
            job.model.save_model_to_file(str(tmp), use_external_data_format=False)
        except Exception as exc:  # noqa: BLE001 - any quantiser failure means "no 8-bit model"
            raise QuantizationFailed(f"Quantising {fp32_path} to 8-bit weights failed: {exc}") from exc
        finally:
            job = None  # the float32 graph it holds, before the sessions of the check
            release_memory()
        try:
            worst = _worst_cosine(model_dir, fp32_path, tmp, max_length)
        except Exception as exc:  # noqa: BLE001 - a kernel or session failure: no 8-bit model here
            raise QuantizationFailed(f"Cannot run the 8-bit model made from {fp32_path}: {exc}") from exc
        if not worst >= MIN_COSINE:
            raise QuantizationRefused(
                f"8-bit weights stray from the float32 export of {model_dir} (cosine {worst:.6f} < {MIN_COSINE})."
            )
        os.replace(tmp, out_path)
    return worst


def quantize_tables(model: Any) -> int:
    """Store each embedding table of an onnx ModelProto (a 2-D float32 initializer of at least TABLE_MIN_ROWS
    rows read only by Gather on axis 0) in int8, symmetric, one float32 scale per row: each Gather becomes
    Gather(int8) -> Cast -> Mul by Gather(scales). Edits `model` in place; returns how many tables."""
    import numpy as np  # lazy: `import qa` stays light
    from onnx import TensorProto, helper, numpy_helper  # lazy: a heavy library, loaded on first use

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in inits:
                readers.setdefault(name, []).append((node, k))
    done = 0
    for name, uses in readers.items():
        init = inits[name]
        gathers = all(n.op_type == "Gather" and k == 0 and all(a.i == 0 for a in n.attribute if a.name == "axis")
                      for n, k in uses)
        if not gathers or init.data_type != TensorProto.FLOAT or len(init.dims) != 2 or init.dims[0] < TABLE_MIN_ROWS:
            continue
        table = numpy_helper.to_array(init)
        graph.initializer.remove(init)
        init = inits[name] = None  # the graph's copy of the table goes now, before the int8 rows are made
        scale = np.empty((len(table), 1), dtype=np.float32)
        rows = np.empty(table.shape, dtype=np.int8)
        for a in range(0, len(table), 8192):  # in slices, to bound the temporaries
            part = table[a : a + 8192]
            scale[a : a + 8192] = np.abs(part).max(axis=1, keepdims=True) / 127.0
            scale[a : a + 8192][scale[a : a + 8192] == 0] = 1.0
            rows[a : a + 8192] = np.clip(np.rint(part / scale[a : a + 8192]), -127, 127)
        del table
        graph.initializer.extend([numpy_helper.from_array(rows, f"{name}_int8"),
                                  numpy_helper.from_array(scale, f"{name}_scale")])
        for node, _ in uses:
            out, ids, at = node.output[0], node.input[1], list(graph.node).index(node)
            graph.node.remove(node)
            for j, new in enumerate([
                helper.make_node("Gather", [f"{name}_int8", ids], [f"{out}_int8"], name=f"{node.name}_int8", axis=0),
                helper.make_node("Cast", [f"{out}_int8"], [f"{out}_float"], name=f"{node.name}_cast",
                                 to=TensorProto.FLOAT),
                helper.make_node("Gather", [f"{name}_scale", ids], [f"{out}_scale"], name=f"{node.name}_scale", axis=0),
                helper.make_node("Mul", [f"{out}_float", f"{out}_scale"], [out], name=f"{node.name}_mul"),
            ]):
                graph.node.insert(at + j, new)
        done += 1
    return done


def _worst_cosine(model_dir: Path, fp32_path: Path, path: Path, max_length: int) -> float:
    """Worst cosine between float32 and quantised vectors of the probes, batched and alone (one session at a time)."""
    import numpy as np  # lazy: `import qa` stays light

    tokenizer = load_tokenizer(model_dir, max_length)
    prompt = query_prompt(model_dir)
    texts = list(PROBES)
    reference = QueryEncoder(open_session(fp32_path), tokenizer, prompt, path=fp32_path, quantized=False)
    theirs = reference.encode_batch(texts)
    reference = None
    release_memory()
    ours = QueryEncoder(open_session(path), tokenizer, prompt, path=path, quantized=True)
    cosines = np.concatenate([
        np.sum(ours.encode_batch(texts) * theirs, axis=1),
        [float(np.dot(ours.encode(t), v)) for t, v in zip(texts, theirs, strict=True)],
    ])
    return float(cosines.min())


def _quantizer_classes() -> tuple[Any, Any]:
    """(MatMulNBitsQuantizer, DefaultWeightOnlyQuantConfig), imported without letting them configure logging.

    The module calls logging.basicConfig(level=INFO) at import and logs a line per tensor: the root
    logger is restored and the module's logger kept to warnings, so the CLI's output stays clean.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import (  # lazy: a heavy library, loaded on first use
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )
    except ImportError as exc:  # onnx-ir, onnx or a recent onnxruntime missing
        raise QuantizationFailed(f"8-bit weights need onnxruntime's MatMulNBits quantiser: {exc}") from exc
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)  # its per-tensor lines inherit it
    return MatMulNBitsQuantizer, DefaultWeightOnlyQuantConfig
