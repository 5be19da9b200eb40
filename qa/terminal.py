"""Text made inert for a terminal, and for the app's pages. Whatever the CLI prints that comes from a
document, a file name or the index goes through `clean` first, so a document cannot clear the screen,
move the cursor, set the window title, write the clipboard (OSC 52) or reorder a line (bidi overrides);
the CLI's own colours are added after cleaning, so they stay. The app (`ui.render.esc`) cleans what it
shows with the same rule before escaping it as HTML: a bidi override reorders a web page's line as it
does a terminal's, so a quote would read otherwise than it is written.

What is neutralised, each shown as a visible escape (``\\x1b``, ``\\u202e``) rather than dropped, so
the reader sees that the text held it:
- C0 control characters (U+0000–U+001F) but the tab, and the newline where a text keeps its lines
  (a passage); so ESC, which starts every escape sequence, and CR, which would overwrite a line;
- DEL (U+007F) and the C1 controls (U+0080–U+009F: CSI, OSC, DCS as single characters);
- lone surrogates: a file name's undecodable bytes, as Python reads them (``\\udce9`` shows as ``\\xe9``);
  printing them would raise UnicodeEncodeError;
- the bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which reorder what
  follows them on the line («Trojan Source»). The marks U+200E/U+200F, part of ordinary right-to-left
  text, stay.
"""

from __future__ import annotations

import json
import logging
import re
import sys

_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069"
_UNSAFE_LINE = re.compile(f"[{_CONTROLS}\n]")  # one line: a file name, a title, a message
_UNSAFE_TEXT = re.compile(f"[{_CONTROLS}]")  # a text that keeps its newlines: a passage, a table


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
