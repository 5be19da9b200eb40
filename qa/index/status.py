"""Is an index still right for its corpus, and what a face shows about it. A build records each
document's sha256, the model's checksum and the chunking, analyser and BM25 settings; any difference
makes it stale (`check_freshness`). `IndexStatus`, read from the manifest and the files' checksums (never
the vectors), is what `qa index status`, the app's corpus line and the API's /status all show."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qa.documents import CorpusListing, scan_corpus
from qa.errors import CorpusError, QAError
from qa.files import file_sha256
from qa.index import layout
from qa.model import model_checksum


@dataclass(frozen=True)
class Freshness:
    """How the corpus on disk differs from what the index was built from."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    model_changed: bool = False
    settings_changed: bool = False  # chunking or keyword analyser differ from this version's

    @property
    def stale(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.model_changed or self.settings_changed)


def check_freshness(index: str | Path = "index", corpus: str | Path | None = None, *,
                    manifest: dict[str, Any] | None = None, check_model: bool = True) -> Freshness:
    """Compare a build (default: the live one) with the corpus on disk (default: the one it was built from)."""
    manifest = manifest if manifest is not None else layout.read_manifest(layout.current_build(Path(index)))
    corpus = Path(corpus) if corpus is not None else Path(index) / manifest["corpus"]
    built = {doc: info["sha256"] for doc, info in manifest["documents"].items()}
    skipped = {s["path"]: s.get("sha256", "") for s in manifest.get("skipped", [])}
    records = {**{s["path"]: s for s in manifest.get("skipped", [])}, **manifest["documents"]}
    now = {}
    try:
        listing = scan_corpus(corpus) if corpus.is_dir() else CorpusListing()
    except (CorpusError, OSError):  # the corpus folder itself cannot be listed: its documents count as removed
        listing = CorpusListing()
    for path in listing.files:  # the recorded sha256 when unchanged by size and times, else hashed now
        rel = path.relative_to(corpus).as_posix()
        try:
            if unchanged(record := records.get(rel), stat_record(path)):
                now[rel] = record["sha256"]
                continue
        except OSError:
            pass
        now[rel] = file_hash(path)
    # A link not followed or a folder that cannot be read: never read, hash "" (as recorded when skipped).
    now.update((path.relative_to(corpus).as_posix(), "") for path, _reason in listing.skipped)
    recorded = manifest["model"]
    model_changed = check_model and model_checksum(recorded["id"]) != recorded["checksum"]
    # A document that can no longer be read (hash "") counts as changed: the next build will skip it.
    changed = [d for d in now if d in built and (not now[d] or now[d] != built[d])]
    changed += [d for d in now if d in skipped and now[d] != skipped[d]]  # e.g. a file now readable
    return Freshness(
        added=tuple(sorted(d for d in now if d not in built and d not in skipped)),
        changed=tuple(sorted(changed)),
        removed=tuple(sorted(d for d in built if d not in now)),
        model_changed=model_changed,
        settings_changed=any(manifest.get(key) != value for key, value in layout.settings().items()),
    )


def built_corpus(index: str | Path = "index") -> Path | None:
    """The corpus folder the live build was made from, or None when there is no readable index."""
    try:
        return Path(index) / layout.read_manifest(layout.current_build(Path(index)))["corpus"]
    except (QAError, OSError, ValueError, KeyError):  # no index, or a damaged or older one
        return None


def describe(fresh: Freshness) -> str:
    """One line naming what changed, for logs."""
    parts = [f"{label} {', '.join(docs)}" for label, docs in
             (("added", fresh.added), ("changed", fresh.changed), ("removed", fresh.removed)) if docs]
    parts += ["model changed"] if fresh.model_changed else []
    return "; ".join(parts + (["chunking or analyser settings changed"] if fresh.settings_changed else []))


STAT_KEYS = ("size", "mtime_ns", "ctime_ns")  # what the manifest records per file besides its sha256


def stat_record(path: Path) -> dict[str, int]:
    """Size, modification and status-change times, recorded per file so an unchanged file is not
    read again (ctime moves on a permission change too, which can make a file unreadable)."""
    st = path.stat()
    return dict(zip(STAT_KEYS, (st.st_size, st.st_mtime_ns, st.st_ctime_ns), strict=True))


def unchanged(record: dict[str, Any] | None, stat: dict[str, int]) -> bool:
    """Whether a file whose stat is `stat` is the one `record` noted, by size and times (as git's
    index does: a file rewritten with the same size and its old times restored is the blind spot;
    --full rereads)."""
    return bool(record and record.get("sha256")) and all(record.get(k) == stat[k] for k in STAT_KEYS)


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes (a skipped 2 GB video is hashed too, streamed, not loaded),
    or "" when it cannot be read (so any later read counts as a change)."""
    try:
        return file_sha256(path)
    except OSError:
        return ""


@dataclass(frozen=True)
class DocumentStatus:
    doc: str  # path under the corpus folder
    title: str
    passages: int


@dataclass(frozen=True)
class IndexStatus:
    """The live build of an index and how it compares with the corpus on disk."""

    build: Path
    created: str  # ISO 8601, UTC
    model: str
    dimension: int
    dense: str  # "flat" or "ivf"
    documents: tuple[DocumentStatus, ...]
    passages: int
    sentences: int
    skipped: tuple[tuple[str, str], ...]  # (path, French reason)
    freshness: Freshness
    damaged: tuple[tuple[str, str], ...] = ()  # (file of the build, French problem): refused on load

    @property
    def stale(self) -> bool:
        return self.freshness.stale

    def to_dict(self) -> dict:
        """The API's /status: plain JSON types."""
        return {
            "stale": self.stale,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.freshness).items()},
            "built": self.created, "documents": len(self.documents), "passages": self.passages,
            "damaged": [name for name, _ in self.damaged],
        }


PROBLEMS = {layout.MISSING: "absent", layout.SIZE: "taille différente de celle enregistrée",
            layout.CHECKSUM: "contenu modifié (somme de contrôle différente)", layout.UNREADABLE: "illisible"}


def index_status(index: str | Path = "index", corpus: str | Path | None = None, *,
                 check_model: bool = True) -> IndexStatus:
    """The live build at `index`, its freshness against `corpus` (default: the one it was built from) and
    its damaged files. IndexNotFoundError, IndexCorruptError (CURRENT or the manifest) or IndexVersionError."""
    build = layout.current_build(Path(index))
    m = layout.read_manifest(build)  # sealed: what it holds was written by the writer
    documents = tuple(DocumentStatus(doc, info.get("title") or doc, int(info.get("passages", 0)))
                      for doc, info in m["documents"].items())
    counts, model = m["counts"], m["model"]
    return IndexStatus(
        build=build, created=m["created"], model=model["id"], dimension=int(model["dimension"]),
        dense=m.get("dense", {}).get("type", "flat"), documents=documents, passages=int(counts["passages"]),
        sentences=int(counts.get("sentences", 0)),
        skipped=tuple((s["path"], s["reason"]) for s in m.get("skipped", [])),
        freshness=check_freshness(index, corpus, manifest=m, check_model=check_model),
        damaged=tuple((name, PROBLEMS[found]) for name, found in layout.problems(build, m["files"])),
    )
