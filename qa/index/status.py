"""What a face shows about an index: one public object, read from the live build's manifest alone
(status never loads vectors), so `qa index status`, the app's corpus line and the API's /status say
the same thing and none of them parses manifest.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from qa.errors import IndexCorruptError
from qa.index import layout
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

    @property
    def stale(self) -> bool:
        return self.freshness.stale

    def to_dict(self) -> dict:
        """The API's /status: plain JSON types."""
        return {
            "stale": self.stale,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.freshness).items()},
            "built": self.created, "documents": len(self.documents), "passages": self.passages,
        }


def index_status(index: str | Path = "index", corpus: str | Path | None = None, *,
                 check_model: bool = True) -> IndexStatus:
    """The live build at `index` and its freshness against `corpus` (default: the folder it was built
    from). Raises IndexNotFoundError without a build, IndexCorruptError when its manifest is unreadable."""
    build = layout.current_build(Path(index))
    try:
        m = layout.read_manifest(build)
        documents = tuple(DocumentStatus(doc, info.get("title") or doc, int(info.get("passages", 0)))
                          for doc, info in m["documents"].items())
        counts, model = m["counts"], m["model"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"Cannot read the manifest of {build}: {exc}") from exc
    return IndexStatus(
        build=build, created=m["created"], model=model["id"], dimension=int(model["dimension"]),
        dense=m.get("dense", {}).get("type", "flat"), documents=documents, passages=int(counts["passages"]),
        sentences=int(counts.get("sentences", 0)),
        skipped=tuple((s["path"], s["reason"]) for s in m.get("skipped", [])),
        freshness=check_freshness(index, corpus, manifest=m, check_model=check_model),
    )
