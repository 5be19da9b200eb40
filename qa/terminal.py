"""What the engine says on a terminal, and text made inert for it and for the app's pages.

Stage lines and a progress bar: the engine calls `stage` before each step that can take a while (the
model's conversion, the question encoder's ONNX export and 8-bit weights, reading the corpus, embedding,
writing the index) and `bar` around embedding. Nothing is shown unless a face asked for it (`report()`:
`qa index build`, and `qa serve`'s first build, which runs it), so the library and the tests stay quiet.

Whatever the CLI prints from a document, a file name or the index goes through `clean` first, so a
document cannot clear the screen, move the cursor, set the window title, write the clipboard (OSC 52)
or reorder a line (bidi overrides); the CLI's own colours are added after. The app (`ui.render.esc`)
cleans with the same rule before escaping as HTML: a bidi override reorders a web page's line too.
Neutralised, each shown as a visible escape (``\\x1b``, ``\\u202e``) so the reader sees it was there:
C0 controls but the tab (and the newline where a text keeps its lines), so ESC and CR; DEL and the C1
controls (CSI, OSC, DCS as single characters); lone surrogates (a file name's undecodable bytes, which
would raise UnicodeEncodeError; ``\\udce9`` shows as ``\\xe9``); the bidi embeddings, overrides and
isolates (U+202A–U+202E, U+2066–U+2069, «Trojan Source»). The marks U+200E/U+200F stay.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

_on = {"stages": False}
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069"
_UNSAFE_LINE = re.compile(f"[{_CONTROLS}\n]")  # one line: a file name, a title, a message
_UNSAFE_TEXT = re.compile(f"[{_CONTROLS}]")  # a text that keeps its newlines: a passage, a table


def report(on: bool = True) -> None:
    """Show the stage lines on stderr (or stop showing them)."""
    _on["stages"] = on


def stage(message: str) -> None:
    """One French line on stderr, when reports are on."""
    if _on["stages"]:
        print(message, file=sys.stderr, flush=True)


def bar(total: int, unit: str, *, show: bool) -> Any:
    """A tqdm bar of `total` `unit` on stderr, in French (count, elapsed time, time left), or None when
    not `show`n (`build_index(show_progress=…)`: the CLI shows it on a terminal). The caller updates and
    closes it."""
    if not show:
        return None
    from tqdm import tqdm  # lazy: only builds show a bar

    form = "{percentage:3.0f} % |{bar}| {n_fmt}/{total_fmt}{unit} · écoulé {elapsed} · reste {remaining}"
    return tqdm(total=total, file=sys.stderr, unit=f" {unit}", dynamic_ncols=True, bar_format=form)


def _escape(match: re.Match) -> str:
    code = ord(match[0])
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as Python's surrogateescape holds it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: object, *, newlines: bool = False) -> str:
    """`text` (any object, as str() shows it) safe to print: control characters, lone surrogates and
    bidi overrides replaced by visible escapes. Tabs stay; newlines stay only with `newlines=True`."""
    return (_UNSAFE_TEXT if newlines else _UNSAFE_LINE).sub(_escape, str(text))


def json_text(value: object) -> str:
    """`value` as indented JSON (non-ASCII letters as they are) that is safe to print: the characters
    `clean` neutralises are written as JSON escapes (``\\u001b``), so a program reads the same data."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return _UNSAFE_TEXT.sub(lambda m: f"\\u{ord(m[0]):04x}", text)  # json.dumps already escaped C0 in strings


class CleanFormatter(logging.Formatter):
    """A log formatter whose lines are cleaned: log messages may quote file names."""

    def format(self, record: logging.LogRecord) -> str:
        return clean(super().format(record), newlines=True)


def configure_output(level: int) -> None:
    """The CLI's output streams: logging at `level` through `CleanFormatter`, and stdout / stderr that
    write a character the terminal's encoding lacks (a Latin-1 terminal and «’») as an escape, not a crash."""
    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig: a program that set up logging itself keeps its own
        handler = logging.StreamHandler()
        handler.setFormatter(CleanFormatter("%(levelname)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(level)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
