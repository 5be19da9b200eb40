"""Trace a sentence-transformers model to one ONNX file and check it against torch.

The graph holds the model's whole pipeline (transformer, mean pooling over the attention mask, L2
normalisation): inputs input_ids and attention_mask (int64, dynamic batch and sequence axes), output
sentence_embedding (float32, batch x dim). `qa.model.onnx_export` calls `export_into` under its cache
lock. torch, sentence-transformers, onnx and numpy are imported inside the functions, for lazy loading.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from qa.files import temporary_sibling
from qa.model.onnx_store import (
    DEFAULT_MAX_LENGTH,
    PROBES,
    QueryEncoder,
    QueryEncoderUnavailable,
    load_tokenizer,
    open_session,
    query_prompt,
    release_memory,
)

logger = logging.getLogger(__name__)

OPSET = 17
EXPORT_MIN_COSINE = 0.9999  # an export whose vectors stray further from torch's is refused
PLACEHOLDER_ROWS = 11  # the word-embedding table while tracing; the real one is put in afterwards (_put_table)


def export_onnx(model_dir: Path | str, out_path: Path | str) -> None:
    """Export the sentence-transformers model at `model_dir` to one ONNX file, checked against torch.

    Inputs input_ids and attention_mask (int64, dynamic batch and sequence axes); output
    sentence_embedding (float32, batch x dim): mean pooling and L2 normalisation are in the graph.
    Written atomically. Raises QueryEncoderUnavailable.
    """
    export_into(Path(model_dir).expanduser().resolve(), Path(out_path))


def export_into(model_dir: Path, out_path: Path) -> dict[str, Any]:
    """Export, check against torch, install atomically; returns what the record keeps (max_seq_length, ...).

    The word-embedding table (250,037 x 384 floats for e5-small: most of the weights) is traced as a
    placeholder of PLACEHOLDER_ROWS rows and put into the graph afterwards, and the torch model is let
    go before onnxruntime loads the export: the exporter would otherwise hold three copies of the table
    at once (a 2.2 GB peak for e5-small, 1.4 GB this way).
    """
    torch, np, sentence_transformer = _export_libraries()
    try:
        model = sentence_transformer(  # not memory-mapped: a float16 file's mapping would outlive its upcast
            str(model_dir), device="cpu", local_files_only=True,
            model_kwargs={"attn_implementation": "eager", "disable_mmap": True},
        )
    except Exception as exc:  # noqa: BLE001
        raise QueryEncoderUnavailable(f"Cannot load {model_dir} for the ONNX export: {exc}") from exc
    module = _pooled_module(model, torch)
    max_length = int(model.max_seq_length or DEFAULT_MAX_LENGTH)
    texts, reference = _torch_reference(model, model_dir, max_length)
    release_memory()
    table = module.inner.get_input_embeddings().weight.detach()
    module.inner.set_input_embeddings(torch.nn.Embedding(PLACEHOLDER_ROWS, table.shape[1]))
    del model
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_sibling(out_path) as tmp:
        _trace(module, tmp, torch, model_dir)
        del module
        release_memory()
        _put_table(tmp, table.numpy(), np)
        del table
        release_memory()
        worst = _check_export(tmp, texts, reference, model_dir, max_length, np)
        os.replace(tmp, out_path)
    logger.info("Exported %s to %s (min cosine to torch %.6f).", model_dir, out_path, worst)
    return {
        "max_seq_length": max_length,
        "opset": OPSET,
        "torch": torch.__version__,
        "min_cosine_to_torch": round(worst, 7),
    }


def _export_libraries() -> tuple[Any, Any, Any]:
    """(torch, numpy, SentenceTransformer), or QueryEncoderUnavailable naming what is missing."""
    try:  # lazy: only a first run exports
        import numpy as np  # lazy: a heavy library, loaded on first use
        import torch  # lazy: a heavy library, loaded on first use
        from sentence_transformers import SentenceTransformer  # lazy: a heavy library, loaded on first use
    except ImportError as exc:
        raise QueryEncoderUnavailable(f"Exporting to ONNX needs torch and sentence-transformers: {exc}") from exc
    try:
        import onnx  # noqa: F401 - torch.onnx.export needs it
    except ImportError as exc:
        raise QueryEncoderUnavailable("Exporting to ONNX needs the onnx package (`pip install onnx`).") from exc
    return torch, np, SentenceTransformer


def _trace(module: Any, path: Path, torch: Any, model_dir: Path) -> None:
    """torch.onnx.export of the pooled module: dynamic batch and sequence axes, a padded batch traced."""
    dummy_ids = torch.tensor([[0, 5, 6, 7, 2], [0, 5, 6, 2, 1]], dtype=torch.int64)  # padded: traces the mask path
    dummy_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.int64)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings and the legacy-exporter notice
            torch.onnx.export(
                module,
                (dummy_ids, dummy_mask),
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,  # the TorchScript exporter: needs onnx only, not onnxscript
            )
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "no ONNX model"
        raise QueryEncoderUnavailable(f"Exporting {model_dir} to ONNX failed: {exc}") from exc


def _put_table(path: Path, table: Any, np: Any) -> None:
    """Replace the traced placeholder of the word-embedding table in the ONNX file by the real table.

    The table is appended to the file as a second serialised ModelProto holding only it as an
    initializer of the graph: protobuf reads consecutive messages as their merge, repeated fields
    (the initializers) concatenated. Its bytes go straight from the array to the file, where putting
    it into the graph and serialising that would hold two more copies of it.
    """
    import onnx  # lazy: a heavy library, loaded on first use

    proto = onnx.load(str(path))
    found = [i for i in proto.graph.initializer if list(i.dims) == [PLACEHOLDER_ROWS, table.shape[1]]]
    if len(found) != 1:
        raise QueryEncoderUnavailable(f"The ONNX export of {path.name} has no single word-embedding table to fill.")
    name = found[0].name
    proto.graph.initializer.remove(found[0])
    onnx.save(proto, str(path))
    data = np.ascontiguousarray(table, dtype="<f4")
    tensor = onnx.TensorProto(name=name, data_type=onnx.TensorProto.FLOAT, dims=data.shape).SerializeToString()
    tensor += _field(9, data.nbytes)  # raw_data, its bytes to follow
    graph = _field(5, len(tensor) + data.nbytes)  # GraphProto.initializer
    with open(path, "ab") as fh:
        fh.write(_field(7, len(graph) + len(tensor) + data.nbytes) + graph + tensor)  # ModelProto.graph
        fh.write(memoryview(data).cast("B"))


def _field(number: int, length: int) -> bytes:
    """A length-delimited protobuf field's key and length, as varints."""
    out = bytearray()
    for value in (number << 3 | 2, length):
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def _pooled_module(model: Any, torch: Any) -> Any:
    """transformer -> mean pooling -> L2 normalisation as one nn.Module; other pipelines are refused."""
    from sentence_transformers.models import Normalize, Pooling, Transformer  # lazy: only a first run exports

    modules = list(model)
    kinds = [type(m).__name__ for m in modules]
    if len(modules) not in (2, 3) or not isinstance(modules[0], Transformer) or not isinstance(modules[1], Pooling):
        raise QueryEncoderUnavailable(f"Unsupported sentence-transformers pipeline for ONNX: {kinds}.")
    if len(modules) == 3 and not isinstance(modules[2], Normalize):
        raise QueryEncoderUnavailable(f"Unsupported sentence-transformers pipeline for ONNX: {kinds}.")
    pooling = modules[1]
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None:  # older sentence-transformers: boolean flags
        mode = "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else "other"
    if mode != "mean" or not getattr(pooling, "include_prompt", True):
        raise QueryEncoderUnavailable(f"Only mean pooling over all tokens is exported (pooling {mode!r}).")
    transformer = modules[0].auto_model.eval()

    class MeanPooledNormalized(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            tokens = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            # Normalisation is applied even without a Normalize module: embed_query asks for it.
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return MeanPooledNormalized(transformer).eval()


def _torch_reference(model: Any, model_dir: Path, max_length: int) -> tuple[list[str], Any]:
    """The probes (with the query prompt) and torch's vectors of them, after checking that tokenizer.json
    tokenises them as sentence-transformers does."""
    tokenizer = load_tokenizer(model_dir, max_length)
    prompt = query_prompt(model_dir)
    texts = [prompt + t for t in PROBES]
    theirs = model.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    ours = [e.ids for e in tokenizer.encode_batch(texts)]
    for text, a, b in zip(texts, theirs, ours, strict=True):
        if list(a) != b[: len(a)] or any(i != tokenizer.padding["pad_id"] for i in b[len(a) :]):
            raise QueryEncoderUnavailable(
                f"tokenizer.json of {model_dir} does not tokenise like sentence-transformers (text {text[:40]!r})."
            )
    reference = model.encode(  # prompt="": the prompt is already in the texts, and no default prompt applies
        texts, prompt="", convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    return texts, reference


def _check_export(path: Path, texts: list[str], reference: Any, model_dir: Path, max_length: int, np: Any) -> float:
    """The worst cosine of the export's vectors of the probes (batched and alone) to torch's; raises if too low."""
    try:
        session = open_session(path)
    except ImportError as exc:
        raise QueryEncoderUnavailable("onnxruntime is not installed (`pip install onnxruntime`).") from exc
    except Exception as exc:  # noqa: BLE001
        raise QueryEncoderUnavailable(f"onnxruntime cannot load the fresh export of {model_dir}: {exc}") from exc
    encoder = QueryEncoder(session, load_tokenizer(model_dir, max_length), "", path=path, quantized=False)
    vectors = np.concatenate([encoder.encode_batch(texts), encoder.encode_batch(texts[:1])])  # batched and alone
    cosines = np.sum(vectors * np.concatenate([reference, reference[:1]]), axis=1)
    worst = float(cosines.min())
    if not worst >= EXPORT_MIN_COSINE:
        raise QueryEncoderUnavailable(f"The ONNX export of {model_dir} strays from torch (cosine {worst:.6f}).")
    return worst
