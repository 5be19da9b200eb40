"""The Ray build path: files read, cut and embedded on Ray give the plain build's index; a cluster
started in another process is joined with --ray-address; an oversized pool is refused at once; and
without a distributed build, nothing imports Ray.

The Ray tests (`-m cluster`) share one local Ray runtime (started once for this module) and each has a
timeout, because a mis-sized Ray Data job hangs rather than fails: HANG catches a hang, it does not time
a build (on a busy machine the module's fixtures alone took over 120 s). They need the `cluster` extra,
which the README's test command installs."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys

import numpy as np
import pytest

from qa import build_index, retrieve
from qa.index.layout import current_build
from tests.conftest import REPORT, ROOT, run_python
from tests.samples import write_mixed_corpus

HANG = 1800  # seconds: a Ray job that has not finished by then is stuck, however busy the machine
QUESTIONS = ("Qui a revendiqué les attaques ?", "Quelles armes ont été utilisées ?",
             "Vers quel pays les réfugiés ont-ils fui ?", "Combien de temps durent les sanctions de la CEDEAO ?")


def test_import_and_default_build_never_import_ray(tmp_path):
    (tmp_path / "c").mkdir()
    shutil.copy(REPORT, tmp_path / "c")
    code = ("import sys, qa; qa.build_index('c', 'index'); qa.retrieve('drones ?', index='index'); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    out = run_python(code, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]


def test_workers_without_the_cluster_extra_is_a_clear_error(tmp_path, report_corpus, monkeypatch):
    from qa.errors import ClusterUnavailableError, french_message

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ClusterUnavailableError) as refused:
        build_index(report_corpus, tmp_path / "index", workers=2)
    assert "pip install -e '.[cluster]'" in french_message(refused.value)


def test_bad_worker_counts_are_refused_before_any_work(tmp_path, report_corpus):
    from qa.errors import InputError

    for workers in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="workers must be a positive integer"):
            build_index(report_corpus, tmp_path / "index", workers=workers)
    assert not (tmp_path / "index").exists() or not list((tmp_path / "index").glob("build-*"))


@pytest.mark.cluster
def test_shards_missing_from_the_index_folder_are_a_storage_error(tmp_path):
    """On a cluster whose nodes do not share the index folder, the shards land elsewhere: a clear error."""
    pytest.importorskip("ray", reason="the cluster extra is not installed")
    from qa.errors import ClusterStorageError, french_message
    from qa.index.distributed import assemble
    from qa.index.ingest import ReadResult

    with pytest.raises(ClusterStorageError) as refused:
        assemble(tmp_path / ".tmp-shards-x", [ReadResult("0" * 64, {"doc": "a.txt"}, [])])
    assert "stockage partagé" in french_message(refused.value)


@pytest.mark.cluster
def test_pool_holding_every_cpu_is_refused():
    pytest.importorskip("ray", reason="the cluster extra is not installed")
    from qa.errors import french_message
    from qa.index.distributed import PoolTooLargeError, plan_pool

    assert plan_pool(2, 2.0) == 0.5  # two actors on two cores: half a CPU each, one CPU left for reads
    assert plan_pool(4, 16.0) == 1.0
    with pytest.raises(PoolTooLargeError, match="would hold all 2 CPUs") as refused:
        plan_pool(2, 2.0, cpus_per_worker=1.0)
    assert "moins de workers" in french_message(refused.value)
    with pytest.raises(PoolTooLargeError):
        plan_pool(64, 2.0)


@pytest.fixture(scope="module", autouse=True)
def _float32_documents():
    """Float32 products on both paths, set before Ray starts so the actors inherit it: bfloat16
    rounding moves with the batch (up to ~1e-3), which would hide a small difference in what each
    path embeds. bfloat16 itself is checked in tests/test_model.py."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QA_DOCUMENT_PRECISION", "fp32")
        yield


@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray runtime (2 CPUs) for every Ray test of this module."""
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed")
    from qa.index.distributed import connect

    started = connect(None)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory):
    """The report plus one document of each format and two files to skip."""
    corpus = write_mixed_corpus(tmp_path_factory.mktemp("mixed"))
    shutil.copy(REPORT, corpus)
    return corpus


@pytest.fixture(scope="module")
def plain_index(mixed_corpus, tmp_path_factory):
    index = tmp_path_factory.mktemp("plain") / "index"
    build_index(mixed_corpus, index, dense="ivf")
    return index


def _rows(index):
    return [json.loads(r) for r in (current_build(index) / "passages.jsonl").read_text(encoding="utf-8").splitlines()]


def assert_same_index(ours, plain):
    """Same documents, passages (doc, start, end, sentences, page), vectors within 1e-5, and answers."""
    assert _rows(ours) == _rows(plain)
    assert ((current_build(ours) / "documents.jsonl").read_text()
            == (current_build(plain) / "documents.jsonl").read_text())
    for name in ("vectors.npy", "sentences.npy"):
        a, b = (np.load(current_build(i) / name) for i in (ours, plain))
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5
    import faiss

    a, b = (faiss.read_index(str(current_build(i) / "dense.faiss")) for i in (ours, plain))
    queries = np.load(current_build(plain) / "vectors.npy")
    assert a.ntotal == b.ntotal and (a.search(queries, 5)[1] == b.search(queries, 5)[1]).all()
    for question in QUESTIONS:
        assert [(p.doc, p.start, p.end) for p in retrieve(question, k=5, index=ours)] == \
            [(p.doc, p.start, p.end) for p in retrieve(question, k=5, index=plain)]


@pytest.fixture(scope="module")
def ray_built(ray_runtime, mixed_corpus, tmp_path_factory):
    index = tmp_path_factory.mktemp("ray") / "index"
    return index, build_index(mixed_corpus, index, workers=2, dense="ivf")  # IVF: filled in parts on Ray


@pytest.mark.cluster
@pytest.mark.timeout(HANG)
def test_workers_build_equals_the_plain_build(ray_built, plain_index):
    index, summary = ray_built
    plain = json.loads((current_build(plain_index) / "manifest.json").read_text())
    assert sorted(summary.skipped) == sorted((s["path"], s["reason"]) for s in plain["skipped"])  # read on workers
    assert {path for path, _ in summary.skipped} == {"casse.pdf", "photo.jpg"}
    assert_same_index(index, plain_index)
    assert not list(index.glob(".tmp-shards-*"))  # shards are removed once assembled


@pytest.mark.cluster
@pytest.mark.timeout(HANG)
def test_incremental_build_on_workers_embeds_only_the_changed_file(ray_built, tmp_path, mixed_corpus):
    corpus = tmp_path / "c"
    shutil.copytree(mixed_corpus, corpus)
    shutil.copytree(ray_built[0], tmp_path / "ray")  # the copied files have new times but the same bytes
    (corpus / "segou.txt").write_text("Note de Ségou\n\nLe couvre-feu de Ségou a été levé le 30 juillet.\n",
                                      encoding="utf-8")
    summary = build_index(corpus, tmp_path / "ray", workers=2)
    assert summary.changed == ("segou.txt",) and summary.embedded_passages == 1 and len(summary.reused) == 5
    build_index(corpus, tmp_path / "plain")
    assert_same_index(tmp_path / "ray", tmp_path / "plain")


@pytest.mark.cluster
@pytest.mark.timeout(HANG)
def test_ivf_filled_in_three_parts_on_ray_equals_the_monolithic_build(ray_runtime):
    from qa.index import dense
    from qa.index.distributed import ray_map

    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((6_000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    params = dense.plan(len(vectors), "ivf")
    whole = dense.build(vectors, params)
    parts = dense.build(vectors, params, parts=3, pool_map=ray_map)
    queries = vectors[::53] + 0.01
    (d1, i1), (d2, i2) = whole.search(queries, 10), parts.search(queries, 10)
    assert parts.ntotal == len(vectors) and (i1 == i2).all() and np.allclose(d1, d2)


@pytest.mark.cluster
@pytest.mark.timeout(HANG)
def test_build_through_a_ray_head_started_in_another_process(tmp_path, report_corpus):
    """A head with token auth (Ray 2.60) in one process; `qa index build --ray-address` in another."""
    pytest.importorskip("ray", reason="the cluster extra is not installed")
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    head_code = ("import sys, ray; info = ray.init(num_cpus=2, include_dashboard=False); "
                 "print(info.address_info['gcs_address'], flush=True); sys.stdin.read()")
    head = subprocess.Popen([sys.executable, "-c", head_code], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = head.stdout.readline().strip()
        assert ":" in address, "the Ray head did not start"
        out = subprocess.run([sys.executable, "-m", "qa.cli", "index", "build", "--corpus", str(report_corpus),
                              "--index", str(tmp_path / "index"), "--ray-address", address],
                             env=env, capture_output=True, text=True, timeout=HANG)
        assert out.returncode == 0, out.stderr[-2000:]
        wrong = subprocess.run([sys.executable, "-m", "qa.cli", "index", "build", "--corpus", str(report_corpus),
                                "--index", str(tmp_path / "other"), "--ray-address", address],
                               env={**env, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True, timeout=HANG)
    finally:
        head.stdin.close()
        head.wait(timeout=60)
    build_index(report_corpus, tmp_path / "plain")  # in float32, like the head's build (the shared index may not be)
    assert_same_index(tmp_path / "index", tmp_path / "plain")
    assert wrong.returncode != 0 and "RAY_AUTH_MODE=token" in wrong.stderr  # no token: a clear French message
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").glob("build-*"))
