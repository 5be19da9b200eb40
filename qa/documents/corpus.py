"""The files of a corpus folder, and what a build must list as skipped: links it does not follow and
folders it cannot read.

- Hidden files and folders ("." or "~$"), the corpus's own README and a qa index folder inside it
  are left out, silently: they are not documents.
- A symbolic link, to a file or a folder, is followed only when its target, fully resolved, lies
  inside the corpus folder (itself resolved) and not in a hidden part of it. Otherwise it is listed
  with a reason: «lien hors du corpus» (`ln -s /etc/passwd corpus/passwd.txt` publishes nothing),
  «lien cassé» (its target does not exist), «lien en boucle» (a → b → a, or a folder link to a
  folder holding it, which would repeat forever).
- A link to a folder of the corpus is not followed either (its files are read where they are, once)
  and is listed: «lien vers un dossier du corpus, lu à sa place». A link to a file of the corpus is
  read under the link's own name, as before.
- A folder that cannot be listed (permission denied, a failing disk) is listed with «dossier
  illisible (…)» and the rest of the corpus is read; only the corpus folder itself is required.

A file can still be swapped for a link between this scan and its reading: the rule protects a
corpus from what is put in it, not from someone racing the build on the same machine.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import CorpusError

HIDDEN = (".", "~$")


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
            if entry.name.startswith(HIDDEN):
                continue
            if not _utf8(entry.name):  # its id could be neither shown nor written in the manifest
                listing.skipped.append((folder / printable_name(entry.name), "nom de fichier illisible (pas en UTF-8)"))
                continue
            _take(entry, folder, real, corpus, root, listing, folders)
    listing.files.sort()
    listing.skipped.sort()
    return listing


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system could not decode, kept as lone surrogates
        return False
    return True


def printable_name(name: str) -> str:
    """A file name whose bytes are not UTF-8, written with escapes (b"bad\\xff.txt" -> "bad\\xff.txt")."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def iter_corpus_files(corpus: Path) -> list[Path]:
    """The documents of `corpus` (see `scan_corpus`), sorted."""
    return scan_corpus(corpus).files


def _take(entry: os.DirEntry, folder: Path, real: str, corpus: Path, root: str, listing: CorpusListing,
          folders: list[tuple[Path, str]]) -> None:
    """File one directory entry: a document, a folder to walk, a link's target, or a skipped entry."""
    path = folder / entry.name
    if entry.is_symlink():
        reason, target = _link_target(path, root)
        if reason is None and os.path.isdir(target):
            inside_itself = real == target or real.startswith(target.rstrip(os.sep) + os.sep)
            reason = "lien en boucle" if inside_itself else "lien vers un dossier du corpus, lu à sa place"
        if reason is not None:
            listing.skipped.append((path, reason))
        elif os.path.isfile(target) and not _own_readme(path, corpus):
            listing.files.append(path)
        return  # a link to a device, a pipe or a socket is no document
    try:
        is_dir = entry.is_dir(follow_symlinks=False)
        is_file = entry.is_file(follow_symlinks=False)
    except OSError:
        is_dir = is_file = False
    if is_dir and not _is_index(path):
        folders.append((path, os.path.join(real, entry.name)))
    elif is_file and not _own_readme(path, corpus):
        listing.files.append(path)


def _link_target(path: Path, root: str) -> tuple[str | None, str]:
    """(None, the resolved target) for a link the corpus may follow, else (the French reason, "")."""
    try:
        os.stat(path)  # follows the whole chain of links
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "lien en boucle", ""
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "lien cassé", ""
        return f"lien illisible ({exc.strerror or exc})", ""
    target = os.path.realpath(path)
    try:
        rel = os.path.relpath(target, root)
    except ValueError:  # another drive (Windows)
        return "lien hors du corpus", ""
    parts = Path(rel).parts
    if os.path.isabs(rel) or parts[:1] == (os.pardir,) or any(part.startswith(HIDDEN) for part in parts):
        return "lien hors du corpus", ""
    return None, target


def _own_readme(path: Path, corpus: Path) -> bool:
    return path.parent == corpus and path.name.lower() in ("readme.md", "readme.txt")


def _is_index(folder: Path) -> bool:
    """A qa index folder (a CURRENT pointer and builds); a folder that cannot be looked into is not one
    (listing it then says why it is skipped)."""
    try:
        return (folder / "CURRENT").is_file() and any(folder.glob("build-*"))
    except OSError:
        return False
