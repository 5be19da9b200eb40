"""The Ray build path (issue 8, in progress): same passages and vectors as the plain build; an
oversized pool refused at once; and without it, nothing imports Ray. The Ray tests run where the
`cluster` extra is installed (`pip install -e '.[cluster]'`); the import test runs everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from qa import build_index, retrieve
from qa.storage import current_build
from tests.conftest import REPORT, ROOT


def test_import_and_default_build_never_import_ray(tmp_path):
    (tmp_path / "c").mkdir()
    shutil.copy(REPORT, tmp_path / "c")
    code = ("import sys, qa; qa.build_index('c', 'index'); qa.retrieve('drones ?', index='index'); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]


def test_workers_without_the_cluster_extra_is_a_clear_error(tmp_path, report_corpus, monkeypatch):
    from qa.errors import ClusterUnavailableError, french_message

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ClusterUnavailableError) as refused:
        build_index(report_corpus, tmp_path / "index", workers=2)
    assert "pip install -e '.[cluster]'" in french_message(refused.value)


def test_pool_holding_every_cpu_is_refused():
    from qa.distributed import PoolTooLargeError, plan_pool

    assert plan_pool(2, 2.0) == 0.5  # two actors on two cores: half a CPU each, one CPU left for reads
    assert plan_pool(4, 16.0) == 1.0
    with pytest.raises(PoolTooLargeError, match="would hold all 2 CPUs"):
        plan_pool(2, 2.0, cpus_per_worker=1.0)
    with pytest.raises(PoolTooLargeError):
        plan_pool(64, 2.0)


def _rows(index):
    return [(r["doc"], r["start"], r["end"]) for r in map(json.loads, (current_build(index) / "passages.jsonl").read_text(encoding="utf-8").splitlines())]


def test_workers_build_equals_the_plain_build(tmp_path, report_index, report_corpus):
    pytest.importorskip("ray", reason="the cluster extra is not installed")
    corpus = tmp_path / "c"
    shutil.copytree(report_corpus, corpus)
    (corpus / "note.md").write_text("# Note\n\nLe JNIM a attaqué Kayes avec des drones.\n", encoding="utf-8")
    plain = build_index(corpus, tmp_path / "plain")
    started = time.monotonic()
    ray_built = build_index(corpus, tmp_path / "ray", workers=2)
    assert time.monotonic() - started < 90
    assert ray_built.passages == plain.passages and _rows(tmp_path / "ray") == _rows(tmp_path / "plain")
    for name in ("vectors.npy", "sentences.npy"):
        a, b = (np.load(current_build(tmp_path / i) / name) for i in ("plain", "ray"))
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-5)
    for question in ("Qui a revendiqué les attaques ?", "Quelles armes ont été utilisées ?"):
        ours = [(p.doc, p.start) for p in retrieve(question, k=5, index=tmp_path / "ray")]
        assert ours == [(p.doc, p.start) for p in retrieve(question, k=5, index=tmp_path / "plain")]
    assert not list((tmp_path / "ray").glob(".shards-*"))  # shards are removed once assembled
