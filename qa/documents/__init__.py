"""Read a file into a `Document`: its text, title, headings, paragraphs and pages, all as offsets.

One reader per format (`text` for .txt/.md, `pdf`, `html`, `docx`), each returning the same
`Document`; the chunker never learns about formats. Readers never rewrite text after building it:
every span points into `Document.text` (for PDF, HTML and DOCX, the text as extracted), so a citation
can always be found verbatim in what was read.

A file that cannot be used raises `ValueError` with a short French reason (shown to users in the
build summary); `read_document` turns any reader failure into one, so one bad file never stops a build.
"""

from __future__ import annotations

from pathlib import Path

from qa.documents.corpus import CorpusListing, iter_corpus_files, scan_corpus
from qa.documents.document import Document, Heading, Span, Unreadable, content_hash, title_from_name

__all__ = [
    "MAX_FILE_BYTES", "READERS_VERSION", "SUFFIXES", "CorpusListing", "Document", "Heading", "Span", "Unreadable",
    "content_hash", "iter_corpus_files", "read_bytes", "read_document", "scan_corpus", "title_from_name",
]

MAX_FILE_BYTES = 50_000_000  # 50 MB: larger files are dumps or scans, not reports; skipped with a warning
READERS_VERSION = 2  # bump when a reader's output changes: an incremental build then re-reads everything


def _readers():
    from qa.documents import docx, html, pdf, text  # lazy: pypdf, python-docx and bs4 load for their formats only

    return {
        ".txt": text.read_text_file, ".text": text.read_text_file,
        ".md": text.read_markdown_file, ".markdown": text.read_markdown_file,
        ".pdf": pdf.read_pdf, ".html": html.read_html, ".htm": html.read_html, ".docx": docx.read_docx,
    }


SUFFIXES = (".txt", ".text", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx")


def reader_libraries() -> None:
    """Load every reader's libraries now (a reading worker does, before its time budget runs)."""
    import bs4  # noqa: F401 - lazy: loaded here on purpose, ahead of the first file
    import charset_normalizer  # noqa: F401 - lazy: as above
    import docx  # noqa: F401 - lazy: as above
    import pypdf  # noqa: F401 - lazy: as above

    _readers()


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
    reader = _readers().get(path.suffix.lower())
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
