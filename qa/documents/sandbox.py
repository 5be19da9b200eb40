"""Read a file under a time budget and a memory cap: in a worker process that is killed past them.

Pure Python cannot safely stop a parser from outside: an exception raised by a signal or from
another thread lands anywhere (inside a lock, an import, a C library's callback), and a cooperative
deadline would need a check in every loop, third-party parsers' included (pypdf, bs4, python-docx,
lxml). A process can be killed cleanly. So each file is read by a worker process; past
`READ_SECONDS` the worker is killed and the file skipped with a French reason, and the next file
gets a fresh worker. A worker also reads under an address-space limit (`READ_MEMORY_BYTES`), so a
file that would need gigabytes is refused with a `MemoryError` instead of exhausting the machine,
and a crash in a C parser skips one file instead of ending the build.

The worker is started once and reused (about 0.5 s to start, with the reading libraries loaded
before the clock runs; then a fraction of a millisecond per file for the round trip, see
docs/security.md); it exits by itself after `IDLE_SECONDS` without work. Requests and replies are
JSON (no pickle) over two pipes of its own, so anything a library prints cannot garble them. POSIX
only (select on pipes); elsewhere files are read in this process, without the budget.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from qa.documents.document import Document, Heading, Span, Unreadable

log = logging.getLogger(__name__)

READ_SECONDS = 30.0  # one file's reading budget: past it, the file is skipped with a reason
READ_MEMORY_BYTES = 2_000_000_000  # the worker's address-space limit (libraries included, ~0.2 GB)
START_SECONDS = 60.0  # a worker's start (Python and the reading libraries), on a slow or loaded machine
IDLE_SECONDS = 60.0  # an idle worker exits; the next file starts another
_FRAME = struct.Struct(">Q")


def too_long(seconds: float) -> str:
    return f"lecture trop longue (> {seconds:g} s)"


def read_in_worker(path: Path, corpus: Path, data: bytes) -> Document:
    """`qa.documents.read_document(path, corpus, data)` in the shared worker, under the budget.
    Raises `Unreadable` with a French reason, like the reader itself."""
    return _SHARED.read(path, corpus, data)


class Worker:
    """One worker process, started on first use, restarted after a kill or a crash."""

    def __init__(self, seconds: float | None = None, memory: int | None = None) -> None:
        self.seconds, self.memory = seconds, memory  # None: the module's settings at each read
        self._proc: subprocess.Popen | None = None
        self._requests = self._replies = -1
        self._lock = threading.Lock()

    def read(self, path: Path, corpus: Path, data: bytes) -> Document:
        from qa.documents import read_document  # lazy: qa.documents imports this module

        if os.name != "posix":
            return read_document(path, corpus, data)
        seconds = self.seconds if self.seconds is not None else READ_SECONDS
        with self._lock:
            for attempt in (1, 2):
                if not self._alive() and not self._start():
                    return read_document(path, corpus, data)  # no worker can be started: read here
                try:
                    return self._ask(path, corpus, data, seconds)
                except BrokenPipeError:  # it had just left, idle: once more with a fresh one
                    self.close()
                    if attempt == 2:
                        raise Unreadable("lecture interrompue (le processus de lecture s'est arrêté)") from None
        raise AssertionError("unreachable")

    def _ask(self, path: Path, corpus: Path, data: bytes, seconds: float) -> Document:
        deadline = time.monotonic() + seconds
        header = json.dumps({"path": str(path), "corpus": str(corpus)}).encode()
        try:
            _send(self._requests, header, deadline)
            _send(self._requests, data, deadline)
            reply = json.loads(_receive(self._replies, deadline))
        except TimeoutError:
            self.close()
            raise Unreadable(too_long(seconds)) from None
        except EOFError:
            code = self.close()
            raise Unreadable(f"lecture interrompue (le processus de lecture s'est arrêté, code {code})") from None
        if "reason" in reply:
            raise Unreadable(reply["reason"])
        return document_from_json(reply["document"])

    def _alive(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            self.close()  # it left after IDLE_SECONDS, or was killed
        return self._proc is not None

    def _start(self) -> bool:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        memory = self.memory if self.memory is not None else READ_MEMORY_BYTES
        code = f"from qa.documents.sandbox import serve; serve({request_r}, {reply_w}, {memory}, {IDLE_SECONDS})"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(request_r, reply_w), env=env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except OSError as exc:
            log.warning("No reading worker (%s): files are read in this process, without a time budget.", exc)
            return False
        finally:
            os.close(request_r)
            os.close(reply_w)
        self._requests, self._replies = request_w, reply_r
        try:
            _receive(self._replies, time.monotonic() + START_SECONDS)  # ready: libraries loaded
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
        for fd in (self._requests, self._replies):
            if fd >= 0:
                os.close(fd)
        self._requests = self._replies = -1
        return code


_SHARED = Worker()
atexit.register(_SHARED.close)


def serve(requests: int, replies: int, memory: int, idle: float) -> None:
    """The worker's loop: read the files it is sent until its parent leaves or it idles too long."""
    import resource  # lazy: the worker's own setting, POSIX only

    from qa.documents import read_document, reader_libraries  # lazy: runs in the worker only

    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    reader_libraries()  # loaded before the clock runs, so the budget is spent reading
    _send(replies, b"ready", None)
    while select.select([requests], [], [], idle)[0]:
        try:
            header, data = json.loads(_receive(requests, None)), _receive(requests, None)
        except EOFError:
            return  # the parent is gone
        try:
            reply = {"document": document_to_json(read_document(Path(header["path"]), Path(header["corpus"]), data))}
        except Unreadable as exc:
            reply = {"reason": str(exc)}
        except MemoryError:
            reply = {"reason": "lecture trop gourmande en mémoire"}
        del data
        _send(replies, json.dumps(reply).encode(), None)


def document_to_json(doc: Document) -> dict:
    return {"doc_id": doc.doc_id, "title": doc.title, "text": doc.text, "sha256": doc.sha256,
            "headings": [[h.start, h.end, h.text, h.level] for h in doc.headings],
            "paragraphs": [[p.start, p.end] for p in doc.paragraphs], "pages": list(doc.pages)}


def document_from_json(row: dict) -> Document:
    return Document(row["doc_id"], row["title"], row["text"], tuple(Heading(*h) for h in row["headings"]),
                    tuple(Span(*p) for p in row["paragraphs"]), row["sha256"], tuple(row["pages"]))


def _send(fd: int, payload: bytes, deadline: float | None) -> None:
    view = memoryview(_FRAME.pack(len(payload)) + payload)
    while view:
        _wait(fd, deadline, write=True)
        view = view[os.write(fd, view[: 1 << 20]):]


def _receive(fd: int, deadline: float | None) -> bytes:
    (size,) = _FRAME.unpack(_read_exact(fd, _FRAME.size, deadline))
    return _read_exact(fd, size, deadline)


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        _wait(fd, deadline, write=False)
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _wait(fd: int, deadline: float | None, *, write: bool) -> None:
    """Block until `fd` is ready, or raise TimeoutError at `deadline` (None: no deadline)."""
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    ready = select.select([], [fd], [], timeout)[1] if write else select.select([fd], [], [], timeout)[0]
    if not ready:
        raise TimeoutError
