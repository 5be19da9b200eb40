"""Bounds on a zip-based file (.docx) checked before any library inflates it: a zip bomb is refused.

A .docx is a zip archive; python-docx inflates every part into memory, and Python's `zipfile`
inflates a member in one call when read whole, whatever size its directory entry declares. So, in
order, with the French reason a build shows:
1. the end-of-directory record: a central directory over `MAX_DIRECTORY_BYTES` (a million entries
   would cost gigabytes as `ZipInfo` objects), or ZIP64 (never needed by a document under the
   50 MB file cap), is refused before `zipfile` reads it;
2. the directory's declared sizes: over `MAX_UNZIPPED_BYTES` in all, a member inflating more than
   `MAX_RATIO` times its compressed size (past `RATIO_FLOOR`), or a method other than stored and
   deflate (what Word writes), is refused without inflating anything;
3. the actual sizes, since a directory can lie: each member is inflated here in 1 MB steps and
   thrown away, stopping as soon as it passes its declared size or the bounds above. Inflating is
   fast (about 0.3 GB/s) and bounded by (2), so this costs milliseconds for a real document;
4. the XML parts' tags ("<" counted while inflating): over `MAX_XML_TAGS`, python-docx's tree alone
   would pass ~0.3 GB (a file crafted just under the ratio can pack ~1M tags in 1 MB).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from qa.documents.document import Unreadable

MAX_UNZIPPED_BYTES = 200_000_000  # all members inflated: text, styles and images of a large report fit
MAX_RATIO = 100  # a member inflating more than this many times its compressed size is a bomb ...
RATIO_FLOOR = 1_000_000  # ... once it passes 1 MB (tiny members compress very well and cost nothing)
MAX_XML_TAGS = 1_000_000  # python-docx's tree costs ~0.3 kB a tag: ~0.3 GB; a 1,000-page report has ~0.5M
MAX_DIRECTORY_BYTES = 1_000_000  # about 10,000 entries; a real .docx has tens to hundreds
_END = b"PK\x05\x06"
_LOCAL = b"PK\x03\x04"
_STEP = 1 << 20


def check_zip(data: bytes) -> None:
    """Raise `Unreadable` with a French reason when the archive in `data` breaks a bound; read nothing else."""
    entries, directory_size = _end_record(data)
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        raise Unreadable("archive ZIP64 non prise en charge")
    if directory_size > MAX_DIRECTORY_BYTES:
        raise Unreadable(f"répertoire d'archive trop grand ({directory_size // 1000} ko, limite "
                         f"{MAX_DIRECTORY_BYTES // 1000} ko)")
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise Unreadable(f"archive ZIP illisible ({exc})") from None
    total = 0
    for info in infos:
        _check_declared(info)
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise _too_big(total)
    total = tags = 0
    for info in infos:
        size, xml_tags = _inflated(data, info, MAX_UNZIPPED_BYTES - total)
        total, tags = total + size, tags + xml_tags
        if tags > MAX_XML_TAGS:
            raise Unreadable(f"document Word trop complexe (plus de {MAX_XML_TAGS:,} balises XML)".replace(",", " "))


def _end_record(data: bytes) -> tuple[int, int]:
    """(entries, central directory size) from the end-of-central-directory record, found as zipfile
    finds it: at the very end, else the last one in the trailing 64 KB (an archive comment)."""
    at = len(data) - 22 if data[-22:-18] == _END else data.rfind(_END, max(0, len(data) - 65_557))
    if at < 0 or len(data) < at + 22:
        raise Unreadable("archive ZIP illisible (fin de répertoire introuvable)")
    _disk, _start_disk, _here, entries, size, _offset = struct.unpack("<HHHHII", data[at + 4 : at + 20])
    return entries, size


def _check_declared(info: zipfile.ZipInfo) -> None:
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Unreadable(f"méthode de compression non prise en charge ({info.compress_type}) dans {info.filename}")
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise _bomb(info.filename, info.file_size, info.compress_size)


def _inflated(data: bytes, info: zipfile.ZipInfo, budget: int) -> tuple[int, int]:
    """The bytes `info` really inflates to and, for an XML part, its tags ("<"), counted in steps and
    never kept; refused past its declared size (which passed the bounds) or past `budget`, the room
    left under MAX_UNZIPPED_BYTES."""
    start = _data_start(data, info)
    packed = memoryview(data)[start : start + info.compress_size]
    xml = info.filename.lower().endswith((".xml", ".rels"))
    size = tags = 0
    for piece in _pieces(packed, info):
        size += len(piece)
        tags += bytes(piece).count(b"<") if xml else 0
        if size > info.file_size or size > budget:
            break
    if size > budget:
        raise _too_big(MAX_UNZIPPED_BYTES - budget + size)
    if size > info.file_size:
        raise Unreadable(f"archive ZIP incohérente ({info.filename} dépasse la taille annoncée : bombe de "
                         "décompression ?)")
    return size, tags


def _pieces(packed: memoryview, info: zipfile.ZipInfo):
    """A member's inflated bytes, 1 MB at a time."""
    if info.compress_type == zipfile.ZIP_STORED:
        yield from (packed[at : at + _STEP] for at in range(0, len(packed), _STEP))
        return
    inflater = zlib.decompressobj(-15)
    try:
        for at in range(0, len(packed), _STEP):
            chunk = packed[at : at + _STEP]
            while chunk:
                yield inflater.decompress(chunk, _STEP)
                chunk = inflater.unconsumed_tail
    except zlib.error as exc:
        raise Unreadable(f"archive ZIP illisible ({info.filename} : {exc})") from None


def _data_start(data: bytes, info: zipfile.ZipInfo) -> int:
    """Where a member's compressed bytes begin: after its local header, as zipfile reads it."""
    at = info.header_offset
    if data[at : at + 4] != _LOCAL:
        raise Unreadable(f"archive ZIP illisible (en-tête local de {info.filename} introuvable)")
    name_length, extra_length = struct.unpack("<HH", data[at + 26 : at + 30])
    return at + 30 + name_length + extra_length


def _too_big(size: int) -> Unreadable:
    return Unreadable(f"archive trop volumineuse une fois décompressée (plus de {size // 1_000_000} Mo, limite "
                      f"{MAX_UNZIPPED_BYTES // 1_000_000} Mo)")


def _bomb(name: str, size: int, packed: int) -> Unreadable:
    return Unreadable(f"bombe de décompression ({name} : {packed // 1000} ko compressés en "
                      f"{size // 1_000_000} Mo, plus de {MAX_RATIO} fois)")
