"""Incremental builds: only new or changed documents are embedded (encoder calls counted), deleted
ones drop out, and the result matches a full rebuild of the same folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import qa.index.build
from qa import build_index, retrieve
from qa.chunking import indexed_text
from qa.index.layout import current_build, write_manifest
from tests import samples


@pytest.fixture
def embedded(monkeypatch):
    """Passages given to the encoder (header + text), per build (a spy: the real encoder still runs)."""
    calls: list[list[str]] = []
    real = qa.index.build.embed_passages

    def spy(encoder, passages, **kwargs):
        calls.append([indexed_text(p) for p in passages])
        return real(encoder, passages, **kwargs)

    monkeypatch.setattr(qa.index.build, "embed_passages", spy)
    return calls


def _passages(index):
    rows = [json.loads(line)
            for line in (current_build(index) / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    return [(r["doc"], r["start"], r["end"]) for r in rows]


def _vectors(index):
    build = current_build(index)
    return np.load(build / "vectors.npy"), np.load(build / "sentences.npy")


def test_add_edit_delete_reembed_only_what_changed(tmp_path, embedded, monkeypatch):
    # float32 products: bfloat16 rounding moves with the batch (~1e-3, tests/test_model.py), and the
    # full rebuild below must give the incremental build's vectors to 1e-5
    monkeypatch.setenv("QA_DOCUMENT_PRECISION", "fp32")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "cedeao.md").write_text(samples.MARKDOWN, encoding="utf-8")
    (corpus / "segou.txt").write_bytes(samples.CP1252_TEXT.encode("cp1252"))
    (corpus / "nioro.html").write_text(samples.HTML, encoding="utf-8")
    index = tmp_path / "index"

    first = build_index(corpus, index)
    assert sorted(first.added) == ["cedeao.md", "nioro.html", "segou.txt"] and not first.reused
    assert first.embedded_passages == first.passages and not first.full_reason

    embedded.clear()
    samples.write_docx(corpus / "humanitaire.docx")
    added = build_index(corpus, index)
    assert added.added == ("humanitaire.docx",) and sorted(added.reused) == ["cedeao.md", "nioro.html", "segou.txt"]
    new_rows = [p for p in _passages(index) if p[0] == "humanitaire.docx"]
    assert added.embedded_passages == len(new_rows)
    assert len(embedded[0]) == len(new_rows)  # passages: only the new document's
    assert all("Sahel" in t or "réfugiés" in t or "Région" in t or "ONG" in t for t in embedded[0])

    embedded.clear()
    (corpus / "cedeao.md").write_text(samples.MARKDOWN.replace("six mois", "neuf mois"), encoding="utf-8")
    edited = build_index(corpus, index)
    assert edited.changed == ("cedeao.md",) and len(edited.reused) == 3
    assert len(embedded[0]) == sum(1 for p in _passages(index) if p[0] == "cedeao.md")
    assert len(embedded) == 1 and any("neuf mois" in t for t in embedded[0])

    embedded.clear()
    (corpus / "nioro.html").unlink()
    removed = build_index(corpus, index)
    assert removed.removed == ("nioro.html",) and removed.embedded_passages == 0 and embedded == []
    assert all(p[0] != "nioro.html" for p in _passages(index))
    assert retrieve("gendarmerie de Nioro incendiée", k=5, index=index)[0].doc != "nioro.html"

    # the same folder built from scratch gives the same index
    full = build_index(corpus, tmp_path / "full", full=True)
    assert full.embedded_passages == full.passages
    assert _passages(index) == _passages(tmp_path / "full")
    for mine, theirs in zip(_vectors(index), _vectors(tmp_path / "full"), strict=False):
        assert mine.shape == theirs.shape and np.allclose(mine, theirs, atol=1e-5)
    for question in ("Combien de temps durent les sanctions de la CEDEAO ?",
                     "Vers quel pays les réfugiés ont-ils fui ?",
                     "Quelle mesure le gouverneur de Ségou a-t-il prise ?"):
        ours = [(p.doc, p.start, p.end, p.sentence.start) for p in retrieve(question, k=4, index=index)]
        assert ours == [(p.doc, p.start, p.end, p.sentence.start)
                        for p in retrieve(question, k=4, index=tmp_path / "full")]
    assert (retrieve("Combien de temps durent les sanctions de la CEDEAO ?", k=1, index=index)[0]
            .sentence.text.count("neuf"))


def test_changed_settings_or_full_flag_reembed_everything(tmp_path, embedded, capsys):
    from qa.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "segou.txt").write_bytes(samples.CP1252_TEXT.encode("cp1252"))
    (corpus / "cedeao.md").write_text(samples.MARKDOWN, encoding="utf-8")
    index = tmp_path / "index"
    build_index(corpus, index)

    manifest_path = current_build(index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["chunking"]["max_words"] = 999  # as if built by a version of qa that cut passages differently
    write_manifest(manifest_path.parent, manifest)
    embedded.clear()
    rebuilt = build_index(corpus, index)
    assert "découpage" in rebuilt.full_reason and rebuilt.embedded_passages == rebuilt.passages and not rebuilt.reused

    embedded.clear()
    assert main(["index", "build", "--corpus", str(corpus), "--index", str(index)]) == 0
    out = capsys.readouterr()
    assert "0 ajouté(s), 0 modifié(s), 0 supprimé(s), 2 réutilisé(s)" in out.out and "(0 encodés)" in out.out
    assert embedded == []

    assert main(["index", "build", "--full", "--corpus", str(corpus), "--index", str(index)]) == 0
    out = capsys.readouterr()
    assert "Tout est réencodé : reconstruction complète demandée (--full)." in out.err
    assert len(embedded[0]) == rebuilt.passages


def test_unreadable_previous_build_is_not_reused(tmp_path, embedded):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "segou.txt").write_bytes(samples.CP1252_TEXT.encode("cp1252"))
    index = tmp_path / "index"
    build_index(corpus, index)
    (current_build(index) / "vectors.npy").write_bytes(b"not numpy")
    embedded.clear()
    again = build_index(corpus, index)
    assert again.full_reason == "index précédent endommagé (vectors.npy), écarté"
    assert again.embedded_passages == again.passages == 1


def test_ivf_index_is_recorded_and_searchable(tmp_path):
    corpus = samples.write_mixed_corpus(tmp_path / "corpus")
    summary = build_index(corpus, tmp_path / "index", dense="ivf")
    assert summary.dense == "ivf-sq8"
    manifest = json.loads((current_build(tmp_path / "index") / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["dense"]["type"] == "ivf-sq8" and manifest["dense"]["nprobe"] >= 1
    top = retrieve(samples.QUESTIONS["humanitaire.docx"], k=1, index=tmp_path / "index")[0]
    assert top.doc == "humanitaire.docx"
    with pytest.raises(ValueError, match="dense index kind"):
        build_index(corpus, tmp_path / "other", dense="hnsw")


def test_document_filter_over_an_ivf_index_scores_exactly(tmp_path, monkeypatch):
    """At scale the approximate index returns only the global top; inside a filter, scores are exact."""
    import qa.search

    corpus = samples.write_mixed_corpus(tmp_path / "corpus")
    build_index(corpus, tmp_path / "flat", dense="flat")
    build_index(corpus, tmp_path / "ivf", dense="ivf")
    monkeypatch.setattr(qa.search, "CANDIDATES", 2)  # as if the corpus were large: the top 2 only
    question, doc = samples.QUESTIONS["humanitaire.docx"], ["presse/nioro.html"]
    flat = [(p.start, round(p.dense_score, 5))
            for p in retrieve(question, k=3, index=tmp_path / "flat", docs=doc, mode="dense")]
    ivf = [(p.start, round(p.dense_score, 5))
           for p in retrieve(question, k=3, index=tmp_path / "ivf", docs=doc, mode="dense")]
    assert ivf == flat and all(score > 0 for _, score in ivf)


def test_dense_structure_follows_corpus_size():
    from qa.index import dense

    assert dense.plan(dense.FLAT_MAX) == {"type": "flat"}
    for n in (dense.FLAT_MAX + 1, 10**6, 10**7):
        p = dense.plan(n)
        assert p["type"] == "ivf-sq8" and p["nlist"] & (p["nlist"] - 1) == 0  # a power of two
        assert n >= 39 * p["nlist"]  # FAISS needs ~39 training points per list
    assert dense.plan(10, "ivf")["nlist"] == 1 and dense.plan(10**6, "flat") == {"type": "flat"}


def test_ivf_trained_once_and_filled_in_parts_equals_the_monolithic_build():
    """The distributed build's recipe: train once, add parts with their global ids, merge_from."""
    from qa.index import dense

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((6_000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    params = dense.plan(len(vectors), "ivf")
    whole = dense.build(vectors, params)
    trained = dense.trained_empty(dense.training_sample(vectors, params), params)
    bounds = [0, 1_700, 4_100, 6_000]  # three uneven parts
    parts = [dense.add_part(trained, vectors[a:b], a) for a, b in zip(bounds, bounds[1:], strict=False)]
    merged = dense.merge_parts(trained, parts)
    assert merged.ntotal == whole.ntotal == len(vectors)
    queries = vectors[::97] + 0.01
    d1, i1 = whole.search(queries, 10)
    d2, i2 = merged.search(queries, 10)
    assert (i1 == i2).all() and np.allclose(d1, d2)


def test_unchanged_files_are_not_read_again(tmp_path, monkeypatch, embedded):
    """Freshness and incremental builds trust size and times (as git does), so a large corpus is not
    re-read at every app start; a touched file is hashed once and found unchanged."""
    import os

    import qa.index.status
    from qa import check_freshness

    corpus = samples.write_mixed_corpus(tmp_path / "corpus")
    build_index(corpus, tmp_path / "index")
    hashed: list[str] = []
    real = qa.index.status.file_hash
    monkeypatch.setattr(qa.index.status, "file_hash", lambda path: hashed.append(path.name) or real(path))
    assert not check_freshness(tmp_path / "index").stale and hashed == []

    later = os.stat(corpus / "segou.txt").st_mtime_ns + 5_000_000_000
    os.utime(corpus / "segou.txt", ns=(later, later))  # touched, same bytes
    assert not check_freshness(tmp_path / "index").stale and hashed == ["segou.txt"]
    embedded.clear()
    again = build_index(corpus, tmp_path / "index")
    assert again.embedded_passages == 0 and "segou.txt" in again.reused and embedded == []
    hashed.clear()
    assert not check_freshness(tmp_path / "index").stale and hashed == []  # its new mtime is recorded

    (corpus / "segou.txt").write_bytes(samples.CP1252_TEXT.replace("vingt et une", "vingt-deux").encode("cp1252"))
    assert check_freshness(tmp_path / "index").changed == ("segou.txt",)


def test_skipped_files_left_untouched_are_not_read_again(tmp_path, monkeypatch):
    """A file skipped last time (corrupt PDF, photo) is skipped again from its recorded stat without
    being parsed; once it changes, it is read again."""
    import qa.index.build

    corpus = samples.write_mixed_corpus(tmp_path / "corpus")
    first = build_index(corpus, tmp_path / "index")
    read: list[str] = []
    real = qa.index.build.read_one
    monkeypatch.setattr(qa.index.build, "read_one", lambda path, root: read.append(path.name) or real(path, root))
    again = build_index(corpus, tmp_path / "index")
    assert read == [] and again.skipped == first.skipped and {p for p, _ in again.skipped} == {"casse.pdf", "photo.jpg"}
    (corpus / "casse.pdf").write_bytes(b"%PDF-1.7\n% still not a PDF, but another one")
    third = build_index(corpus, tmp_path / "index")
    assert read == ["casse.pdf"] and third.skipped == first.skipped
