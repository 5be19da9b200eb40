"""Shared fixtures: the report's index is built once per run, in a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REPORT = ROOT / "corpus" / "mali-attaques-juillet-2025.txt"


def run_python(code: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter that imports this checkout: what a process imports, and
    how long it lives, are only seen from outside."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory):
    """Convert the bundled model into a temporary cache, never the user's ~/.cache (subprocesses inherit it)."""
    old = os.environ.get("QA_MODEL_CACHE")
    os.environ["QA_MODEL_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    yield
    if old is None:
        os.environ.pop("QA_MODEL_CACHE", None)
    else:
        os.environ["QA_MODEL_CACHE"] = old


@pytest.fixture(autouse=True)
def _off_the_real_index(tmp_path, monkeypatch):
    """Tests run in a temporary folder so they never read or write the user's `index/`."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def report_corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copy(REPORT, folder / REPORT.name)
    return folder


@pytest.fixture(scope="session")
def report_index(report_corpus, tmp_path_factory) -> Path:
    from qa import build_index

    index = tmp_path_factory.mktemp("index") / "index"
    build_index(report_corpus, index)
    return index
