"""Corruption: every file of a build truncated, emptied or with one bit flipped is refused with an
IndexCorruptError naming it, and `qa index status` says so; a damaged CURRENT or build is repaired by
`qa index build` (plain or --full) and by `qa serve`, never reused; a scrambled ONNX question encoder
in the cache is detected and made again."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa import IndexCorruptError, IndexNotFoundError, IndexVersionError, build_index, retrieve
from qa.assistant import Assistant
from qa.cli import main
from qa.errors import french_message
from qa.index import index_status, load_index
from qa.index.layout import current_build, read_manifest, write_manifest

QUESTION = "Qui a revendiqué les attaques ?"
# Every file of a build of the report (a test below checks that the list is complete).
FILES = ("manifest.json", "passages.jsonl", "documents.jsonl", "dense.faiss", "vectors.npy", "sentences.npy",
         "bm25/data.csc.index.npy", "bm25/indices.csc.index.npy", "bm25/indptr.csc.index.npy",
         "bm25/params.index.json", "bm25/vocab.index.json")


def _flip(at: float):
    """One bit flipped at a relative position of the file (0: first byte, 1: last), size unchanged."""
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[min(int(len(data) * at), len(data) - 1)] ^= 0x04
        path.write_bytes(bytes(data))
    return damage


DAMAGES = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "emptied": lambda p: p.write_bytes(b""),
    "first bit flipped": _flip(0),
    "middle bit flipped": _flip(0.5),
    "last bit flipped": _flip(1),
}


@pytest.fixture
def copy(tmp_path, report_index) -> Path:
    """The report's index, copied: each case damages its own."""
    target = tmp_path / "index"
    shutil.copytree(report_index, target)
    return target


def _status(index: Path, corpus: Path, capsys) -> tuple[int, str]:
    code = main(["index", "status", "--index", str(index), "--corpus", str(corpus)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_the_matrix_covers_every_file_of_a_build(report_index):
    build = current_build(report_index)
    assert sorted(p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()) == sorted(FILES)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_file_is_refused_and_named(copy, report_corpus, capsys, name, damage):
    DAMAGES[damage](current_build(copy) / name)
    with pytest.raises(IndexCorruptError) as refused:
        load_index(copy)
    assert refused.value.file == name and name in str(refused.value) and "qa index build" in str(refused.value)
    assert f"fichier endommagé : {name}" in french_message(refused.value)
    with pytest.raises(IndexCorruptError):
        retrieve(QUESTION, index=copy)  # never a passage from it
    code, said = _status(copy, report_corpus, capsys)
    assert code == 1 and "à jour" not in said and name in said
    assert "État : endommagé" in said or "Erreur : L'index est illisible" in said  # the manifest itself: an error


def test_every_single_bit_flip_of_the_manifest_is_refused(report_index, monkeypatch):
    build = current_build(report_index)
    raw = (build / "manifest.json").read_bytes()
    flipped = bytearray(raw)
    monkeypatch.setattr(Path, "read_bytes", lambda self: bytes(flipped))  # in memory: 8 flips per byte
    for i in range(len(raw)):
        for bit in range(8):
            flipped[i] ^= 1 << bit
            with pytest.raises(IndexCorruptError) as refused:
                read_manifest(build)
            assert refused.value.file == "manifest.json", (i, bit)
            flipped[i] ^= 1 << bit


def test_status_lists_every_damaged_file(copy, report_corpus, capsys):
    build = current_build(copy)
    _flip(0.5)(build / "vectors.npy")
    (build / "documents.jsonl").unlink()
    assert [name for name, _ in index_status(copy, report_corpus).damaged] == ["documents.jsonl", "vectors.npy"]
    code, said = _status(copy, report_corpus, capsys)
    assert code == 1
    assert "État : endommagé — relancez : qa index build" in said
    assert "  documents.jsonl : absent" in said and "  vectors.npy : contenu modifié" in said


def test_a_file_damaged_while_the_index_is_served_is_refused_at_the_next_question(copy):
    assert retrieve(QUESTION, index=copy)  # loaded and cached, sentence vectors memory-mapped
    path = current_build(copy) / "sentences.npy"
    with open(path, "r+b") as fh:  # in place: the mapping sees the new bytes at once
        fh.seek(path.stat().st_size - 7)
        fh.write(b"\x7f")
    with pytest.raises(IndexCorruptError, match="sentences.npy"):
        retrieve(QUESTION, index=copy)


def test_documents_deleted_after_loading_is_a_typed_error(copy):
    engine = Assistant(copy)
    assert engine.index.passages
    (current_build(copy) / "documents.jsonl").unlink()
    with pytest.raises(IndexCorruptError) as refused:
        engine.document("mali-attaques-juillet-2025.txt")  # what the source viewer reads, on first use
    assert refused.value.file == "documents.jsonl"


CURRENTS = {
    "garbage bytes": b"\xff\xfe\x00\x9cgarbage\x81",
    "empty": b"",
    "a path out of the index": b"build-1/../../etc\n",
    "text that names no build": "déjà vu\n".encode(),
}


def _damage_current(index: Path, content: str) -> None:
    if content == "a folder":
        (index / "CURRENT").unlink()
        (index / "CURRENT").mkdir()
    else:
        (index / "CURRENT").write_bytes(CURRENTS[content])


@pytest.mark.parametrize("content", [*sorted(CURRENTS), "a folder"])
def test_a_damaged_current_is_a_typed_error(copy, report_corpus, capsys, content):
    _damage_current(copy, content)
    with pytest.raises(IndexCorruptError) as refused:
        load_index(copy)
    assert refused.value.file == "CURRENT"
    code, said = _status(copy, report_corpus, capsys)
    assert code == 1 and "fichier endommagé : CURRENT" in said and "à jour" not in said


def _only_the_live_build(index: Path) -> None:
    """No debris: CURRENT, the lock and the live build, nothing else."""
    assert sorted(p.name for p in index.iterdir()) == sorted([".lock", "CURRENT", current_build(index).name])


@pytest.mark.parametrize(("content", "full"), [("garbage bytes", False), ("garbage bytes", True), ("a folder", False)],
                         ids=["garbage, build", "garbage, build --full", "a folder, build"])
def test_qa_index_build_repairs_a_damaged_current(copy, report_corpus, capsys, content, full):
    _damage_current(copy, content)
    argv = ["index", "build", "--corpus", str(report_corpus), "--index", str(copy)] + (["--full"] if full else [])
    assert main(argv) == 0
    assert "Tout est réencodé : index précédent endommagé (CURRENT), écarté." in capsys.readouterr().err
    _only_the_live_build(copy)
    assert retrieve(QUESTION, index=copy)[0].doc == "mali-attaques-juillet-2025.txt"
    code, said = _status(copy, report_corpus, capsys)
    assert code == 0 and "État : à jour" in said


def test_qa_index_build_never_reuses_a_damaged_build(copy, report_corpus):
    damaged = current_build(copy)
    original = np.load(damaged / "vectors.npy")
    vectors = original.copy()
    vectors[0] = -vectors[0]  # valid numpy, same size: only the checksum can tell
    np.save(damaged / "vectors.npy", vectors)
    summary = build_index(report_corpus, copy)
    assert summary.full_reason == "index précédent endommagé (vectors.npy), écarté"
    assert summary.embedded_passages == summary.passages and not summary.reused
    assert not damaged.exists()  # neither served nor kept as the previous build
    _only_the_live_build(copy)
    rebuilt = np.load(current_build(copy) / "vectors.npy")
    assert np.allclose(rebuilt, original, atol=1e-3) and not np.allclose(rebuilt[0], vectors[0], atol=1e-3)


def test_qa_serve_rebuilds_a_damaged_index(copy, report_corpus, capsys):
    from ui.serving import ensure_index  # lazy: Gradio loads only for this test

    _flip(0.5)(current_build(copy) / "dense.faiss")
    assert ensure_index(copy, report_corpus) == report_corpus
    assert "Index endommagé ou illisible : reconstruction…" in capsys.readouterr().err
    _only_the_live_build(copy)
    assert retrieve(QUESTION, index=copy)


def test_an_index_of_another_version_is_refused_then_rebuilt(copy, report_corpus, capsys):
    build = current_build(copy)
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    manifest["format"] = 2
    write_manifest(build, manifest)
    with pytest.raises(IndexVersionError) as refused:
        load_index(copy)
    assert "autre version de qa" in french_message(refused.value)
    code, said = _status(copy, report_corpus, capsys)
    assert code == 1 and "Erreur : L'index a été construit par une autre version de qa" in said
    summary = build_index(report_corpus, copy)
    assert summary.full_reason == "index construit par une autre version de qa"
    assert load_index(copy).manifest["format"] == 3


def test_missing_current_stays_not_found(copy):
    (copy / "CURRENT").unlink()
    with pytest.raises(IndexNotFoundError):
        load_index(copy)


# ------------------------------------------------------------------------------ the ONNX question encoder


def test_scrambled_onnx_weights_are_detected_and_made_again(report_index, caplog):
    """72 weight tensors of the cached 8-bit question encoder scrambled, size unchanged: onnxruntime
    loads it and its vectors are wrong, so only the recorded checksum can tell."""
    onnx = pytest.importorskip("onnx")
    from qa.files import file_sha256
    from qa.model import bundled
    from qa.model import query_encoder as qe

    model_dir = bundled.ensure_bundled_model()
    path = qe.onnx_cache_dir(model_dir) / qe.Q8_FILE  # made by the build of report_index
    encoder = qe.load_query_encoder(model_dir)
    before = encoder.encode(QUESTION)
    model = onnx.load(str(path))
    weights = {node.input[1] for node in model.graph.node if node.op_type == "MatMulNBits"}
    rng = np.random.default_rng(0)
    for tensor in model.graph.initializer:
        if tensor.name in weights:
            tensor.raw_data = rng.permutation(np.frombuffer(tensor.raw_data, np.uint8)).tobytes()
    size = path.stat().st_size
    onnx.save(model, str(path))
    assert len(weights) == 72 and path.stat().st_size == size
    scrambled = qe.QueryEncoder(qe.open_session(path), encoder.tokenizer, encoder.prompt, path=path,
                                   quantized=True).encode(QUESTION)
    assert float(scrambled @ before) < 0.95  # it runs, and answers wrong: what would have been served

    for cache in (qe._encoders, qe._question_encoders, qe._question_encoder_ids):
        cache.clear()  # a new process
    with caplog.at_level(logging.WARNING, logger="qa.model.query_encoder"):
        again = qe.load_query_encoder(model_dir)
    assert "differs from its record (checksum)" in caplog.text
    assert float(again.encode(QUESTION) @ before) > 0.9999
    record = json.loads((path.parent / qe.RECORD).read_text(encoding="utf-8"))
    assert record["files"][qe.Q8_FILE]["sha256"] == file_sha256(path)
