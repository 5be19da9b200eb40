"""A corpus folder read into `Document`s: which files are documents (`scan_corpus`), which reader
reads each (`read_document`), and the bounds a build reads them under (`read_in_worker`).

One reader per format, each returning the same `Document`, so the chunker never learns about
formats; readers never rewrite text after building it, so a citation is always found verbatim in
what was read. A file that cannot be used raises `Unreadable` (a `ValueError`) with a French reason
for the build summary; any reader failure becomes one, so one bad file never stops a build.

The corpus: hidden entries ("." or "~$"), its own README and a qa index inside it are not documents.
A link is followed only when its target, fully resolved, lies inside the corpus and not in a hidden
part of it (`ln -s /etc/passwd corpus/passwd.txt` publishes nothing); links left out and folders
that cannot be listed are listed with their reason, and the rest is read. This protects a corpus
from what is put in it, not from someone racing the build on the same machine.

The bounds: Python cannot stop a parser safely from inside (an exception raised by a signal or from
another thread lands anywhere; a deadline checked in our loops never reaches pypdf's or lxml's), but
a process can be killed. So a build reads each file in a worker process, killed past `READ_SECONDS`,
under an address-space cap (`READ_MEMORY_BYTES`: a file that needs gigabytes gets a `MemoryError`,
not the machine), where a crash in a C parser costs one file. The worker starts once (about 0.5 s,
libraries loaded before the clock runs), is reused, and exits after `IDLE_SECONDS` idle; it talks
JSON (no pickle) over a socket pair of its own, so nothing a library prints garbles a reply. POSIX
only: elsewhere files are read in this process, without the budget.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path

from qa.documents.document import Document, Heading, Span, Unreadable, content_hash, title_from_name
from qa.errors import CorpusError

__all__ = ["MAX_FILE_BYTES", "READERS_VERSION", "CorpusListing", "Document", "Heading", "Span", "Unreadable", "Worker",
           "content_hash", "read_bytes", "read_document", "read_in_worker", "scan_corpus", "title_from_name"]

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 50_000_000  # 50 MB: larger files are dumps or scans, not reports; skipped with a warning
READERS_VERSION = 2  # bump when a reader's output changes: an incremental build then re-reads everything
READ_SECONDS = 30.0  # one file's reading budget: past it, the file is skipped with a reason
READ_MEMORY_BYTES = 2_000_000_000  # the worker's address-space limit (libraries included, ~0.2 GB)
START_SECONDS = 60.0  # a worker's start (Python and the reading libraries), on a slow or loaded machine
IDLE_SECONDS = 60.0  # an idle worker exits; the next file starts another
HIDDEN = (".", "~$")
_SURROGATE = re.compile("[\ud800-\udfff]")  # what the file system could not decode (surrogateescape)


def _reader(suffix: str):
    """The reader for a file suffix, or None: each format's module and library load with its first file."""
    if suffix in (".txt", ".text", ".md", ".markdown"):
        from qa.documents.text import read_text_file as reader  # lazy: loaded for its format only
    elif suffix == ".pdf":
        from qa.documents.pdf import read_pdf as reader  # lazy: pypdf, loaded for its format only
    elif suffix in (".html", ".htm"):
        from qa.documents.html import read_html as reader  # lazy: bs4 and lxml, loaded for their format only
    elif suffix == ".docx":
        from qa.documents.docx import read_docx as reader  # lazy: python-docx, loaded for its format only
    else:
        return None
    return reader


def reader_libraries() -> None:
    """Load every reader and its libraries now (a reading worker does, before its time budget runs)."""
    import charset_normalizer  # noqa: F401 - lazy: what `text.decode` loads on an odd encoding, loaded ahead

    for suffix in (".txt", ".pdf", ".html", ".docx"):
        _reader(suffix)


def read_bytes(path: Path) -> bytes:
    """A file's bytes, refusing (before reading) one over MAX_FILE_BYTES."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _too_large(size)
    return path.read_bytes()


def _too_large(size: int) -> Unreadable:
    return Unreadable(f"fichier trop volumineux ({size // 1_000_000} Mo, limite {MAX_FILE_BYTES // 1_000_000} Mo)")


def read_document(path: Path, corpus: Path, data: bytes | None = None) -> Document:
    """Read one file (its bytes may be passed when already read). Raises `ValueError` with a French
    reason for a file that cannot be used: unknown format, too large, empty, binary or corrupt."""
    reader = _reader(path.suffix.lower())
    if reader is None:
        raise Unreadable(f"format non pris en charge ({path.suffix or 'sans extension'})")
    if data is None:
        data = read_bytes(path)
    elif len(data) > MAX_FILE_BYTES:
        raise _too_large(len(data))
    if not data.strip():
        raise Unreadable("fichier vide")
    try:
        doc = reader(data, path.relative_to(corpus).as_posix(), path)
    except Unreadable:
        raise
    except MemoryError:
        raise Unreadable("lecture trop gourmande en mémoire") from None
    except Exception as exc:  # noqa: BLE001 - a third-party parser's failure on one file must not stop the build
        raise Unreadable(f"fichier illisible ({type(exc).__name__}: {exc})") from exc
    if not doc.paragraphs:
        raise Unreadable("aucun texte lisible (document scanné ou vide ?)")
    return doc


@dataclass
class CorpusListing:
    """The documents to read, and the links and folders left out, each with its French reason."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan_corpus(corpus: Path) -> CorpusListing:
    """Every file under `corpus` that a user put there, and every entry left out with a reason, both
    sorted. Files of unknown formats are listed too, so a build can say it skipped them."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise CorpusError(f"Corpus folder not found: {corpus}")
    root = os.path.realpath(corpus)
    listing = CorpusListing()
    folders = [(corpus, root)]  # (folder as seen under the corpus, its real path)
    while folders:
        folder, real = folders.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            if folder == corpus:
                raise CorpusError(f"Corpus folder cannot be read: {corpus} ({exc.strerror or exc})") from exc
            listing.skipped.append((folder, f"dossier illisible ({exc.strerror or exc})"))
            continue
        for entry in entries:
            path = folder / entry.name
            readme = folder == corpus and entry.name.lower() in ("readme.md", "readme.txt")  # the corpus's own
            if entry.name.startswith(HIDDEN):
                continue
            if _SURROGATE.search(entry.name):  # bytes that are not UTF-8: its id could be neither shown nor written
                shown = entry.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                listing.skipped.append((folder / shown, "nom de fichier illisible (pas en UTF-8)"))
            elif entry.is_symlink():
                reason, target = _link_target(path, root)
                if reason is None and os.path.isdir(target):
                    inside_itself = real == target or real.startswith(target.rstrip(os.sep) + os.sep)
                    reason = "lien en boucle" if inside_itself else "lien vers un dossier du corpus, lu à sa place"
                if reason is not None:
                    listing.skipped.append((path, reason))
                elif os.path.isfile(target) and not readme:  # a link to a device, a pipe or a socket is no document
                    listing.files.append(path)
            elif _is(entry.is_dir) and not _is_index(path):
                folders.append((path, os.path.join(real, entry.name)))
            elif _is(entry.is_file) and not readme:
                listing.files.append(path)
    listing.files.sort()
    listing.skipped.sort()
    return listing


def _is(test) -> bool:
    """`entry.is_dir` or `entry.is_file`, links not followed; an entry that cannot be looked at is neither."""
    try:
        return test(follow_symlinks=False)
    except OSError:
        return False


def _link_target(path: Path, root: str) -> tuple[str | None, str]:
    """(None, the resolved target) for a link the corpus may follow, else (the French reason, "")."""
    try:
        target = os.path.realpath(path, strict=True)  # the whole chain of links, which must end somewhere
    except OSError as exc:
        reason = {errno.ELOOP: "lien en boucle", errno.ENOENT: "lien cassé", errno.ENOTDIR: "lien cassé"}
        return reason.get(exc.errno, f"lien illisible ({exc.strerror or exc})"), ""
    try:
        parts = Path(target).relative_to(root).parts
    except ValueError:  # outside the corpus, or on another drive (Windows)
        return "lien hors du corpus", ""
    return ("lien hors du corpus", "") if any(part.startswith(HIDDEN) for part in parts) else (None, target)


def _is_index(folder: Path) -> bool:
    """A qa index folder (a CURRENT pointer and builds); a folder that cannot be looked into is not one
    (listing it then says why it is skipped)."""
    try:
        return (folder / "CURRENT").is_file() and any(folder.glob("build-*"))
    except OSError:
        return False


class Worker:
    """One worker process, started on first use, restarted after a kill or a crash."""

    def __init__(self, seconds: float | None = None, memory: int | None = None) -> None:
        self.seconds, self.memory = seconds, memory  # None: the module's settings at each read
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def read(self, path: Path, corpus: Path, data: bytes) -> Document:
        """`read_document(path, corpus, data)` in the worker, under its bounds; raises `Unreadable` like it."""
        if os.name != "posix":
            return read_document(path, corpus, data)
        seconds = self.seconds if self.seconds is not None else READ_SECONDS
        with self._lock:
            for _attempt in range(2):
                if self._proc is not None and self._proc.poll() is not None:
                    self.close()  # it left after IDLE_SECONDS, or was killed
                if self._proc is None and not self._start():
                    return read_document(path, corpus, data)  # no worker can be started: read here
                try:
                    return self._ask(path, corpus, data, seconds)
                except ConnectionError:  # it had just left, idle: once more with a fresh one
                    self.close()
            raise Unreadable("lecture interrompue (le processus de lecture s'est arrêté)")

    def _ask(self, path: Path, corpus: Path, data: bytes, seconds: float) -> Document:
        deadline = time.monotonic() + seconds
        self._conn.send_bytes(json.dumps({"path": str(path), "corpus": str(corpus)}).encode())
        self._conn.send_bytes(data)  # the worker, idle, takes it whole
        try:
            if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                self.close()
                raise Unreadable(f"lecture trop longue (> {seconds:g} s)")
            reply = json.loads(self._conn.recv_bytes())
        except EOFError:
            code = self.close()
            raise Unreadable(f"lecture interrompue (le processus de lecture s'est arrêté, code {code})") from None
        if "reason" in reply:
            raise Unreadable(reply["reason"])
        doc_id, title, text, headings, paragraphs, sha256, pages = reply["document"]
        return Document(doc_id, title, text, tuple(Heading(*h) for h in headings), tuple(Span(*p) for p in paragraphs),
                        sha256, tuple(pages))

    def _start(self) -> bool:
        ours, theirs = Pipe()
        memory = self.memory if self.memory is not None else READ_MEMORY_BYTES
        code = f"from qa.documents import serve; serve({theirs.fileno()}, {memory}, {IDLE_SECONDS})"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),), env=env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            log.warning("No reading worker (%s): files are read in this process, without a time budget.", exc)
            return False
        finally:
            theirs.close()
        self._conn = ours
        try:
            if not ours.poll(START_SECONDS):
                raise TimeoutError(f"not ready after {START_SECONDS:g} s")
            ours.recv_bytes()  # ready: libraries loaded
        except (TimeoutError, EOFError) as exc:
            self.close()
            log.warning("The reading worker did not start (%s): files are read in this process.", exc)
            return False
        return True

    def close(self) -> int | None:
        """Stop the worker (killed: it may be stuck in a parser); returns its exit code."""
        code = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            code = self._proc.wait()
            self._proc = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return code


_SHARED = Worker()
atexit.register(_SHARED.close)
read_in_worker = _SHARED.read  # how a build reads a file: `read_document` in the shared worker, under the bounds


def serve(fd: int, memory: int, idle: float) -> None:
    """The worker's loop: read the files it is sent until its parent leaves or it idles too long."""
    import resource  # lazy: the worker's own setting, POSIX only

    conn = Connection(fd)
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    reader_libraries()  # loaded before the clock runs, so the budget is spent reading
    conn.send_bytes(b"ready")
    while conn.poll(idle):
        try:
            header, data = json.loads(conn.recv_bytes()), conn.recv_bytes()
        except EOFError:
            return  # the parent is gone
        try:
            doc = read_document(Path(header["path"]), Path(header["corpus"]), data)
            headings = [[h.start, h.end, h.text, h.level] for h in doc.headings]
            reply = {"document": [doc.doc_id, doc.title, doc.text, headings, [[p.start, p.end] for p in doc.paragraphs],
                                  doc.sha256, list(doc.pages)]}
        except Unreadable as exc:
            reply = {"reason": str(exc)}
        except MemoryError:
            reply = {"reason": "lecture trop gourmande en mémoire"}
        del data
        conn.send_bytes(json.dumps(reply).encode())

