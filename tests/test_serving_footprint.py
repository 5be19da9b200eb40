"""`qa serve` holds only what questions need: its first build runs in a child process, which says each step."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import ROOT, run_python


def test_a_first_build_runs_apart_and_talks(tmp_path, report_corpus):
    """The server process never imports torch: the build (document model, embedding) runs in `qa index build`,
    whose steps reach the server's stderr; then a question is answered with onnxruntime and tokenizers alone."""
    index = tmp_path / "index"
    code = ("import sys\nfrom ui.serving import ensure_index\nimport qa\n"
            f"ensure_index({str(index)!r}, {str(report_corpus)!r})\n"
            f"assert qa.ask('Qui a revendiqué les attaques ?', index={str(index)!r}).sentence is not None\n"
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
            "if m in sys.modules))")
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    lines = done.stderr.splitlines()
    for step in ("Index absent ou périmé : reconstruction…", "Lecture de 1 fichier(s) nouveau(x) ou modifié(s)…",
                 "Encodage de 22 textes (passages et phrases)…", "Écriture de l'index…"):
        assert step in lines, done.stderr
    assert any(line.startswith("Index prêt : 1 document(s), 9 passages") for line in lines)


def test_a_failed_first_build_stops_qa_serve_with_its_reason(tmp_path):
    (tmp_path / "corpus").mkdir()  # no readable document
    done = subprocess.run([sys.executable, "-m", "qa", "serve", "--port", "1"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Erreur : Corpus introuvable ou sans document lisible" in done.stderr
    assert "Traceback" not in done.stderr
