"""What a face shows about an index: one public object, read from the live build's manifest and the
checksums of its files (status never loads vectors; each file is hashed once per process per version
of it, `qa.index.integrity`), so `qa index status`, the app's corpus line and the API's /status say
the same thing and none of them parses manifest.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from qa.index import integrity, layout
from qa.index.freshness import Freshness, check_freshness


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


PROBLEMS = {integrity.MISSING: "absent", integrity.SIZE: "taille différente de celle enregistrée",
            integrity.CHECKSUM: "contenu modifié (somme de contrôle différente)", integrity.UNREADABLE: "illisible"}


def index_status(index: str | Path = "index", corpus: str | Path | None = None, *,
                 check_model: bool = True) -> IndexStatus:
    """The live build at `index` and its freshness against `corpus` (default: the folder it was built
    from), and every damaged file of it (checked against the manifest's checksums). Raises
    IndexNotFoundError without a build, IndexCorruptError when CURRENT or the manifest is damaged,
    IndexVersionError for an index of another version of qa."""
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
        damaged=tuple((name, PROBLEMS[found]) for name, found in integrity.problems(build, m["files"])),
    )
