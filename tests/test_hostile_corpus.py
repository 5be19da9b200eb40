"""A hostile corpus: files built to stall or sink a build, links out of the corpus, a folder that
cannot be read. Each is skipped with its French reason while the rest is indexed; readers stay
linear and a zip bomb stays small in memory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import qa.documents
from qa.documents import Unreadable, read_document, scan_corpus
from qa.documents.pdf import compounds, joiners
from tests import hostile_files
from tests.conftest import REPORT, ROOT

BUDGET = 0.5  # seconds: the test's reading budget, far under the deep page's reading time


def _deny(monkeypatch, folder: Path) -> None:
    """Make `folder` unlistable. Tests run as root in CI, where permission bits stop nothing, so the
    refusal is emulated where the scan lists folders (os.scandir, as a permission error would come);
    as any other user the real permission bits refuse it first."""
    folder.chmod(0)
    real = os.scandir

    def scandir(path="."):
        if isinstance(path, str | os.PathLike) and Path(path) == folder:  # shutil.rmtree passes descriptors
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(qa.documents.os, "scandir", scandir)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One build over a corpus of hostile entries beside the report, with a reading budget of BUDGET."""
    from qa import build_index

    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / "rapport.txt")
    (corpus / "bombe.docx").write_bytes(hostile_files.zip_bomb_docx(700))
    (corpus / "menteuse.docx").write_bytes(hostile_files.zip_bomb_docx(700, declared=1000))
    (corpus / "profonde.html").write_bytes(hostile_files.nested_divs(200_000))  # seconds to read, > BUDGET
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "etc").symlink_to("/etc")
    (corpus / "cassé.txt").symlink_to(corpus / "absent.txt")
    (corpus / "boucle-a.txt").symlink_to(corpus / "boucle-b.txt")
    (corpus / "boucle-b.txt").symlink_to(corpus / "boucle-a.txt")
    (corpus / "alias.txt").symlink_to("rapport.txt")  # inside the corpus: read as before
    (corpus / "dossier-secret").mkdir()
    (corpus / "dossier-secret" / "note.txt").write_text("Note confidentielle sur Kayes.", encoding="utf-8")
    _deny(monkeypatch, corpus / "dossier-secret")
    monkeypatch.setattr(qa.documents, "READ_SECONDS", BUDGET)
    try:
        summary = build_index(corpus, root / "index")
        yield corpus, root / "index", summary
    finally:
        monkeypatch.undo()
        (corpus / "dossier-secret").chmod(0o755)


def test_every_hostile_entry_is_listed_with_its_reason_and_the_rest_is_indexed(hostile):
    _, _, summary = hostile
    skipped = dict(summary.skipped)
    assert skipped == {
        "bombe.docx": skipped["bombe.docx"], "menteuse.docx": skipped["menteuse.docx"],
        "profonde.html": f"lecture trop longue (> {BUDGET:g} s)",
        "passwd.txt": "lien hors du corpus", "etc": "lien hors du corpus", "cassé.txt": "lien cassé",
        "boucle-a.txt": "lien en boucle", "boucle-b.txt": "lien en boucle",
        "dossier-secret": "dossier illisible (Permission denied)",
    }
    assert skipped["bombe.docx"].startswith("bombe de décompression (word/document.xml")
    assert skipped["menteuse.docx"].startswith("archive ZIP incohérente")
    assert summary.documents == 2 and summary.added == ("alias.txt", "rapport.txt")


def test_nothing_outside_the_corpus_is_indexed_or_served(hostile):
    from qa import retrieve

    _, index, _ = hostile
    assert {d.doc for d in qa.Assistant(index).status().documents} == {"alias.txt", "rapport.txt"}
    passages = retrieve("root:x:0:0 daemon /bin/bash nologin", k=10, index=index)
    assert passages and not any("root:x:0" in p.text or "nologin" in p.text for p in passages)


def test_the_manifest_lists_skipped_links_and_folders_and_freshness_still_works(hostile, monkeypatch):
    from qa import check_freshness

    corpus, index, _ = hostile
    current = (index / "CURRENT").read_text(encoding="utf-8").strip()
    manifest = json.loads((index / current / "manifest.json").read_text(encoding="utf-8"))
    entries = {entry["path"]: entry for entry in manifest["skipped"]}
    assert entries["passwd.txt"] == {"path": "passwd.txt", "reason": "lien hors du corpus", "sha256": ""}
    assert entries["dossier-secret"]["sha256"] == "" and entries["bombe.docx"]["sha256"]
    _deny(monkeypatch, corpus / "dossier-secret")  # still unreadable: the check neither fails nor sees a change
    assert not check_freshness(index, corpus).stale
    (corpus / "autre-lien.txt").symlink_to("/etc/passwd")
    try:
        assert check_freshness(index, corpus).added == ("autre-lien.txt",)  # the next build will list it
    finally:
        (corpus / "autre-lien.txt").unlink()


def test_links_inside_the_corpus_keep_working_and_folder_links_are_listed(tmp_path):
    (tmp_path / "rapports").mkdir()
    (tmp_path / "rapports" / "a.txt").write_text("Texte.", encoding="utf-8")
    (tmp_path / "lien.txt").symlink_to(tmp_path / "rapports" / "a.txt")
    (tmp_path / "raccourci").symlink_to("rapports")
    (tmp_path / "rapports" / "haut").symlink_to("..")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "jeton.txt").write_text("secret", encoding="utf-8")
    (tmp_path / "jeton.txt").symlink_to(".cache/jeton.txt")  # a hidden file is not published through a link
    listing = scan_corpus(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in listing.files] == ["lien.txt", "rapports/a.txt"]
    assert {p.relative_to(tmp_path).as_posix(): r for p, r in listing.skipped} == {
        "raccourci": "lien vers un dossier du corpus, lu à sa place", "rapports/haut": "lien en boucle",
        "jeton.txt": "lien hors du corpus"}


def test_deep_nested_html_is_read_in_linear_time(tmp_path):
    """100,000 nested <div> (1.1 MB): the quadratic reader took over 11 minutes (and already failed on
    1,000 with a RecursionError); a linear one takes a few seconds."""
    (tmp_path / "deep.html").write_bytes(hostile_files.nested_divs(100_000))
    start = time.perf_counter()
    doc = read_document(tmp_path / "deep.html", tmp_path)
    assert time.perf_counter() - start < 20
    assert [doc.text[p.start : p.end] for p in doc.paragraphs] == ["Le texte du rapport est ici."]


def test_pathological_word_files_are_read_in_linear_time(tmp_path):
    """A 2,000-row vertically merged column (python-docx climbs the merge row by row for every cell:
    41 s and a RecursionError at 1,000 rows) and two styles based on each other (an endless loop)."""
    (tmp_path / "fusion.docx").write_bytes(hostile_files.merged_column_docx(2000))
    (tmp_path / "cycle.docx").write_bytes(hostile_files.style_cycle_docx())
    start = time.perf_counter()
    merged = read_document(tmp_path / "fusion.docx", tmp_path)
    cycle = read_document(tmp_path / "cycle.docx", tmp_path)
    assert time.perf_counter() - start < 10
    assert len(merged.paragraphs) == 2001 and "Région | Ville 1999" in merged.text  # its first paragraph, each row
    assert len(cycle.paragraphs) == 11 and not cycle.headings


BOMB_PEAK = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))  # a regression fails, the machine lives
from qa.documents import read_document, reader_libraries
reader_libraries()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_document(Path(sys.argv[1]), Path(sys.argv[1]).parent)
    reason = ""
except ValueError as exc:
    reason = str(exc)
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, reason)
"""


@pytest.mark.parametrize("declared", [None, 1000], ids=["honest", "lying"])
def test_a_docx_zip_bomb_is_refused_in_bounded_memory(tmp_path, declared):
    """About 1 MB on disk, 700 MB inflated (the old reader grew past 21 GB on such a file): refused
    from its zip directory, or while inflating in 1 MB steps when the directory lies, with the peak
    memory of the reading process under 100 MB above its libraries."""
    bomb = tmp_path / "bombe.docx"
    bomb.write_bytes(hostile_files.zip_bomb_docx(700, declared=declared))
    assert len(bomb.read_bytes()) < 1_200_000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", BOMB_PEAK, str(bomb)], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split(maxsplit=2)
    before, peak, reason = int(out[0]), int(out[1]), out[2].strip()
    assert reason.startswith("bombe de décompression" if declared is None else "archive ZIP incohérente")
    assert peak - before < 100_000  # kB


def test_zip64_and_a_bad_checksum_are_refused_before_python_docx_reads_the_archive(tmp_path):
    (tmp_path / "z64.docx").write_bytes(hostile_files.zip64_docx())
    with pytest.raises(Unreadable, match="archive ZIP64 non prise en charge"):
        read_document(tmp_path / "z64.docx", tmp_path)
    packed = hostile_files.zipped(hostile_files.plain_docx())
    at = packed.index(b"word/document.xml") + len("word/document.xml") + 5  # inside its deflated bytes
    (tmp_path / "abimé.docx").write_bytes(packed[:at] + bytes([packed[at] ^ 0xFF]) + packed[at + 1 :])
    with pytest.raises(Unreadable, match=r"^archive ZIP illisible \(word/document.xml"):
        read_document(tmp_path / "abimé.docx", tmp_path)


def test_a_reader_over_its_budget_is_killed_and_the_next_file_is_read(tmp_path):
    worker = qa.documents.Worker(seconds=BUDGET)
    deep, note = tmp_path / "deep.html", tmp_path / "note.txt"
    deep.write_bytes(hostile_files.nested_divs(200_000))
    note.write_text("Le JNIM a revendiqué l'attaque de Kayes.", encoding="utf-8")
    try:
        assert worker.read(note, tmp_path, note.read_bytes()).text.startswith("Le JNIM")  # started, warm
        start = time.perf_counter()
        with pytest.raises(Unreadable, match=r"lecture trop longue \(> 0.5 s\)"):
            worker.read(deep, tmp_path, deep.read_bytes())
        assert time.perf_counter() - start < BUDGET + 1  # killed at the budget, not waited for
        assert worker.read(note, tmp_path, note.read_bytes()).text.startswith("Le JNIM")  # a fresh worker
    finally:
        worker.close()


def test_a_file_name_that_is_not_utf8_is_listed_with_its_reason(tmp_path):
    """Bytes the file system cannot decode: the file is skipped (its id could not be written or
    shown), listed with the name's bytes escaped, and the rest of the corpus is read."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    (Path(os.fsdecode(os.fsencode(corpus) + b"/bad\xff.txt"))).write_text("Kayes et les drones.\n", encoding="utf-8")
    listing = scan_corpus(corpus)
    assert [p.name for p in listing.files] == [REPORT.name]
    skipped = [(p.name, reason) for p, reason in listing.skipped]
    assert skipped == [("bad\\xff.txt", "nom de fichier illisible (pas en UTF-8)")]


def test_pdf_lines_cut_by_hyphens_are_joined_in_linear_time():
    """The cut-word check searched the whole document's text once per line ending in a hyphen (its
    time grew with the square of the lines: `benchmarks/hostile_readers.py --only pdf`); the document's
    compounds are now read once."""
    lines = ["Les assaillants ont uti-"] + [f"lisé des drones (ligne {i}), puis uti-" for i in range(20_000)]
    text = " ".join(lines) + " Les sous-préfectures et l’arrière‐pays, c’est-à-dire le Nord."
    start = time.perf_counter()
    joins = joiners(lines, compounds(text))
    assert time.perf_counter() - start < 5
    assert joins == ["\x00"] * (len(lines) - 1)  # "uti-" + "lisé": a cut word, never a compound of this text
    assert {"sous-préfectures", "arrière-pays", "est-à", "à-dire"} <= compounds(text)
    assert joiners(["les uti-", "lisé et le Mali-", "du nord"], compounds("mali-du, uti")) == ["\x00", ""]
    # Compounds of letters beyond Latin-1, and one whose right part runs on past an apostrophe.
    known = compounds("la main-d’œuvre, un œil-de-bœuf, sa sœur-jumelle")
    assert joiners(["la main-", "d’œuvre a doublé", "par l’œil-", "de-bœuf, sa sœur-", "jumelle"], known) == [
        "", " ", "", ""]
