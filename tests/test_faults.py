"""Faults: a build killed at any point leaves the previous index live and correct; a corrupt index is
refused with a rebuild hint and never answers; many threads get exactly the sequential answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import qa
from qa import IndexCorruptError, IndexModelMismatchError, ask, build_index, retrieve
from qa.errors import french_message
from qa.index.layout import current_build, write_manifest
from tests.conftest import DATA, ROOT

QUESTIONS = [q["q"] for q in json.loads((DATA / "mali-dev.json").read_text(encoding="utf-8"))["questions"]]


def _top(index: Path, question: str = "Qui a revendiqué les attaques ?") -> list[tuple[str, int, int]]:
    """A fresh assistant: the index read from disk, as a new process reads it."""
    return [(p.doc, p.start, p.end) for p in qa.Assistant(index).retrieve(question, k=5)]


@pytest.mark.parametrize("stage", ["embedded", "writing", "renamed"])
def test_build_killed_at_any_stage_leaves_the_previous_index_live(tmp_path, report_corpus, stage):
    corpus = tmp_path / "corpus"
    shutil.copytree(report_corpus, corpus)
    index = tmp_path / "index"
    build_index(corpus, index)
    live, before = current_build(index), _top(index)

    (corpus / "ajout.md").write_text("# Ajout\n\nUne note ajoutée sur les drones de Kayes.\n", encoding="utf-8")
    marker = tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The build runs in its own process, paused at `stage` by an observer (touch the marker, sleep) and killed there.
    pause = (f"import pathlib, sys, time\nfrom qa.index import layout\nfrom qa.cli import main\n"
             f"def pause(stage):\n    if stage == {stage!r}:\n"
             f"        pathlib.Path({str(marker)!r}).write_text(stage)\n        time.sleep(600)\n"
             f"layout.observe_stages(pause)\n"
             f"sys.exit(main(['index', 'build', '--corpus', {str(corpus)!r}, '--index', {str(index)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", pause], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert proc.poll() is None, "the build ended before reaching the stage"
            assert time.monotonic() < deadline, f"the build never reached {stage!r}"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert current_build(index) == live  # CURRENT never moved
    assert _top(index) == before
    leftovers = [p.name for p in index.iterdir()
                 if p.name.startswith(".tmp-") or (p.name.startswith("build-") and p != live)]
    assert leftovers or stage == "embedded"  # killed while writing: debris is there

    rebuilt = build_index(corpus, index)
    assert rebuilt.added == ("ajout.md",)
    names = sorted(p.name for p in index.iterdir() if p.name != ".lock")
    assert names == sorted(["CURRENT", live.name, rebuilt.index.name])  # debris cleaned by the next build
    assert retrieve("drones de Kayes note ajoutée", k=1, index=index)[0].doc == "ajout.md"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_manifest(build: Path, change) -> None:
    """Change a manifest and seal it again: what a writer of another model or version would record."""
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    change(manifest)
    write_manifest(build, manifest)


CORRUPTIONS = {
    "truncated FAISS file": lambda b: _truncate(b / "dense.faiss"),
    "truncated sentence vectors": lambda b: _truncate(b / "sentences.npy"),
    "invalid manifest JSON": lambda b: (b / "manifest.json").write_text("{ pas du json", encoding="utf-8"),
    "invalid passage line": lambda b: (b / "passages.jsonl").write_text(
        (b / "passages.jsonl").read_text(encoding="utf-8").replace('"doc"', "doc", 1), encoding="utf-8"),
    "one passage missing": lambda b: (b / "passages.jsonl").write_text(
        "".join((b / "passages.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8"),
    "vector count differs": lambda b: np.save(b / "sentences.npy", np.load(b / "sentences.npy")[:-1]),
    "manifest of a 768-dimension model": lambda b: _edit_manifest(b, lambda m: m["model"].update(dimension=768)),
    "manifest of other weights": lambda b: _edit_manifest(b, lambda m: m["model"].update(checksum="0" * 64)),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_index_is_refused_with_a_rebuild_hint(tmp_path, report_index, corruption):
    copy = tmp_path / "index"
    shutil.copytree(report_index, copy)
    CORRUPTIONS[corruption](current_build(copy))
    with pytest.raises(IndexCorruptError, match="rebuild") as refused:
        retrieve("Qui a revendiqué les attaques ?", index=copy)  # never any passage
    assert "qa index build" in french_message(refused.value)
    with pytest.raises(IndexCorruptError):
        ask("Qui a revendiqué les attaques ?", index=copy)
    if corruption == "manifest of other weights":
        assert isinstance(refused.value, IndexModelMismatchError)
        assert "autre modèle" in french_message(refused.value)


def test_cli_reports_a_corrupt_index_in_french(tmp_path, report_index, capsys):
    from qa.cli import main

    copy = tmp_path / "index"
    shutil.copytree(report_index, copy)
    _truncate(current_build(copy) / "dense.faiss")
    assert main(["ask", "drones ?", "--index", str(copy)]) == 1
    assert ("Erreur : L'index est illisible ou incohérent (fichier endommagé : dense.faiss). "
            "Reconstruisez-le : qa index build") in capsys.readouterr().err


def _answer_key(answer: qa.Answer) -> tuple:
    return (answer.abstained, answer.sentence and answer.sentence.text,
            tuple((p.doc, p.start, p.end, p.sentence.start, round(p.score, 6)) for p in answer.passages))


def test_twenty_threads_get_the_sequential_answers(report_index):
    questions = (QUESTIONS * 4)[:50]
    sequential = [_answer_key(ask(q, index=report_index)) for q in questions]

    def client(_: int) -> list[tuple]:
        return [_answer_key(ask(q, index=report_index)) for q in questions]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(client, range(20)))  # raises here if any thread raised
    assert len(results) == 20 and all(r == sequential for r in results)
