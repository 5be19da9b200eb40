from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from qa import CorpusError, IndexCorruptError, IndexNotFoundError, build_index, check_freshness
from qa.assistant import Assistant
from qa.index import load_index
from qa.index.layout import current_build, seal, write_manifest

from .conftest import REPORT


def test_build_writes_a_complete_manifest(report_index):
    build = current_build(report_index)
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == 3
    assert manifest["model"]["id"] == "multilingual-e5-small"
    assert manifest["model"]["dimension"] == 384
    assert len(manifest["model"]["checksum"]) == 64
    assert manifest["counts"]["documents"] == 1
    assert manifest["counts"]["passages"] == 9
    doc = manifest["documents"]["mali-attaques-juillet-2025.txt"]
    assert doc["passages"] == 9
    import hashlib

    assert doc["sha256"] == hashlib.sha256(REPORT.read_bytes()).hexdigest()
    assert manifest["chunking"]["max_words"] == 120
    assert "jusqu" in manifest["analyzer"]["elisions"]
    assert manifest["versions"]["faiss-cpu"]
    assert not list(build.rglob("*.pkl")) and not list(build.rglob("*.pickle"))
    files = sorted(p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file())
    files.remove("manifest.json")
    assert sorted(manifest["files"]) == files  # every other file of the build, with its size and sha256
    for name in files:
        assert manifest["files"][name] == {"size": (build / name).stat().st_size,
                                           "sha256": hashlib.sha256((build / name).read_bytes()).hexdigest()}
    assert manifest["manifest_sha256"] == seal(manifest)


def test_save_load_round_trip(report_index, report_corpus):
    engine = Assistant(report_index)
    idx = engine.index
    assert len(idx.passages) == idx.faiss.ntotal == 9
    text = (report_corpus / REPORT.name).read_text(encoding="utf-8")
    for p in idx.passages:
        assert p.text == text[p.start : p.end]
    # stored vectors are the passages' own: unit norm, and each passage is its own nearest neighbour
    vectors = idx.faiss.reconstruct_n(0, idx.faiss.ntotal)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    _, ids = idx.faiss.search(vectors, 1)
    assert list(ids[:, 0]) == list(range(9))
    assert idx.sentence_vectors.shape == (idx.sentence_offsets[-1], 384)
    assert engine.document("mali-attaques-juillet-2025.txt")["text"] == text
    assert engine.index is idx  # loaded once, then reused
    assert load_index(report_index) is not idx  # the loader itself keeps nothing


def test_fresh_index_is_not_stale(report_index):
    assert not check_freshness(report_index).stale


def test_editing_adding_removing_documents_makes_index_stale(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    (corpus / "autre.md").write_text("# Autre\n\nUn court texte sur Gao.\n", encoding="utf-8")
    build_index(corpus, tmp_path / "index")
    assert not check_freshness(tmp_path / "index").stale

    edited = REPORT.read_text(encoding="utf-8").replace("sept localités", "huit localités")
    (corpus / REPORT.name).write_text(edited, encoding="utf-8")
    (corpus / "autre.md").unlink()
    (corpus / "nouveau.txt").write_text("Une note nouvelle.", encoding="utf-8")
    fresh = check_freshness(tmp_path / "index")
    assert fresh.stale
    assert fresh.changed == (REPORT.name,)
    assert fresh.removed == ("autre.md",)
    assert fresh.added == ("nouveau.txt",)
    assert not fresh.model_changed
    assert load_index(tmp_path / "index").freshness == fresh  # detected on load too, and logged


def test_index_built_with_other_settings_is_stale(tmp_path, report_index, report_corpus):
    copy = tmp_path / "index"
    shutil.copytree(report_index, copy)
    manifest_path = current_build(copy) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["chunking"]["max_words"] = 80
    write_manifest(manifest_path.parent, manifest)  # sealed, as another version of qa would write it
    fresh = check_freshness(copy, report_corpus)
    assert fresh.settings_changed and fresh.stale and not (fresh.added or fresh.changed or fresh.removed)


def test_rebuild_swaps_atomically_and_cleans_leftovers(tmp_path, report_corpus):
    index = tmp_path / "index"
    build_index(report_corpus, index)
    first = current_build(index)
    (index / ".tmp-leftover").mkdir()  # as if a build had been killed
    build_index(report_corpus, index)
    second = current_build(index)
    assert second != first and first.exists()  # the previous build stays for readers still opening it
    assert not (index / ".tmp-leftover").exists()
    build_index(report_corpus, index)
    third = current_build(index)
    assert not first.exists()  # older builds go
    assert sorted(p.name for p in index.iterdir() if not p.name.startswith(".")) == sorted(
        ["CURRENT", second.name, third.name]
    )
    assert len(load_index(index).passages) == 9


def test_missing_index_names_the_build_command(tmp_path):
    with pytest.raises(IndexNotFoundError, match="qa index build"):
        load_index(tmp_path / "nowhere")


def test_inconsistent_index_is_refused(tmp_path, report_index):
    copy = tmp_path / "index"
    shutil.copytree(report_index, copy)
    build = current_build(copy)
    lines = (build / "passages.jsonl").read_text(encoding="utf-8").splitlines()
    (build / "passages.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(copy)


def test_corpus_without_readable_document_is_an_error(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "vide.txt").write_text("   ", encoding="utf-8")
    with pytest.raises(CorpusError):
        build_index(tmp_path / "c", tmp_path / "index")
    with pytest.raises(CorpusError):
        build_index(tmp_path / "absent", tmp_path / "index")
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_unreadable_file_is_skipped_not_fatal(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    (corpus / "casse.txt").write_bytes(b"\xff\xfe\x00\x00binaire")
    summary = build_index(corpus, tmp_path / "index")
    assert summary.documents == 1 and summary.passages == 9
    assert [path for path, _ in summary.skipped] == ["casse.txt"]
    assert not check_freshness(tmp_path / "index").stale  # a skipped file is not "added"
    (corpus / "casse.txt").write_text("Réparé : un texte lisible.", encoding="utf-8")
    assert check_freshness(tmp_path / "index").changed == ("casse.txt",)  # fixed since: rebuild to read it


def test_unreadable_document_counts_as_changed_not_a_crash(tmp_path, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    build_index(corpus, tmp_path / "index")
    import builtins
    import os

    os.chmod(corpus / REPORT.name, 0o600)  # a permission change: what makes a file unreadable for real
    real = builtins.open

    def failing(file, *args, **kwargs):  # an I/O error on this one file (as root, permissions cannot provoke one)
        if str(file).endswith(REPORT.name):
            raise PermissionError(13, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing)
    fresh = check_freshness(tmp_path / "index")
    assert fresh.changed == (REPORT.name,) and not fresh.removed