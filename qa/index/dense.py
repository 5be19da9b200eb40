"""The FAISS structure for passage vectors, chosen by corpus size and recorded in the manifest.

Exact search (IndexFlatIP, scored by one matrix-vector product in `qa.search`) up to FLAT_MAX
passages: recall 1, and about 3 ms for 5·10^4 vectors on two cores, growing linearly (6 ms at 10^5).
Above, IVF with 8-bit scalar quantisation (`IVF{nlist},SQ8`, nprobe 32): under 1 ms per question,
a quarter of Flat's memory, recall@10 0.969 against exact search at 10^5 (`benchmarks/scale.py`,
docs/scale.md). HNSW was left out: it takes more memory than Flat, and its recall on clustered
vectors was the lowest of the three in the measurements this choice was made from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

FLAT_MAX = 50_000
NPROBE = 32
TRAIN_PER_LIST = 64
KINDS = ("auto", "flat", "ivf")


def plan(n: int, kind: str = "auto") -> dict[str, Any]:
    """The structure for `n` vectors: {"type": "flat"} or {"type": "ivf-sq8", "nlist", "nprobe"}."""
    if kind not in KINDS:
        raise ValueError(f"dense index kind must be one of {KINDS}, got {kind!r}")
    if kind == "flat" or (kind == "auto" and n <= FLAT_MAX):
        return {"type": "flat"}
    # about 2·sqrt(n) lists, a power of two, with at least 39 training points per list (FAISS's floor).
    # At 10^6: 2048 lists trained on 64 points each build in under a minute with recall@10 0.974, where
    # 4096 lists on 256 points took 4 minutes for 0.971 (`benchmarks/cluster.py ivf [--nlist 4096
    # --train-per-list 256]`, docs/scale.md).
    nlist = 2 ** max(0, round(math.log2(max(1.0, 2 * math.sqrt(n)))))
    while nlist > 1 and n < 39 * nlist:
        nlist //= 2
    return {"type": "ivf-sq8", "nlist": nlist, "nprobe": min(NPROBE, nlist)}


def build(vectors: np.ndarray, params: dict[str, Any], *, parts: int = 1,
          pool_map: Callable[[Callable, Iterable], Iterable] = map) -> Any:
    """A FAISS inner-product index holding `vectors` (row i gets id i). `parts` > 1 (IVF only): train
    once here, fill the parts through `pool_map` (Ray tasks on the distributed build: assigning lists and
    quantising is the costly step at 10^6 vectors) and merge them: the ids and lists of a monolithic build."""
    if params["type"] not in ("flat", "ivf-sq8"):
        raise ValueError(f"unknown dense index type {params['type']!r}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = trained_empty(training_sample(vectors, params), params)
    if params["type"] == "flat" or parts <= 1 or len(vectors) < 2 * parts:
        index.add(vectors)
        return index
    import faiss  # lazy: a heavy library, loaded on first use

    blob = faiss.serialize_index(index)
    bounds = np.linspace(0, len(vectors), parts + 1).astype(int)
    filled = pool_map(fill_part, [(blob, vectors[a:b], int(a)) for a, b in zip(bounds, bounds[1:], strict=False)])
    return merge_parts(index, [faiss.deserialize_index(f) for f in filled])


def fill_part(job: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    """One part for `build`: (serialised trained index, vectors, first id) -> serialised filled part.
    Serialised so it can cross processes (a Ray task)."""
    import faiss  # lazy: a heavy library, loaded on first use

    blob, vectors, first_id = job
    return faiss.serialize_index(add_part(faiss.deserialize_index(blob), vectors, first_id))


def configure(index: Any, params: dict[str, Any]) -> None:
    """Search-time settings that FAISS does not store in the file (nprobe)."""
    if params.get("type") == "ivf-sq8":
        import faiss  # lazy: a heavy library, loaded on first use

        faiss.extract_index_ivf(index).nprobe = int(params.get("nprobe", NPROBE))


def trained_empty(sample: np.ndarray, params: dict[str, Any]) -> Any:
    """An empty index of `params`' structure, trained on `sample` when it needs training (IVF). Filled in
    parts (`add_part`) and merged, it is the index `build` makes of all the vectors, as long as the sample
    is the one `build` would draw (`training_sample`)."""
    import faiss  # lazy: a heavy library, loaded on first use

    dim = sample.shape[1]
    if params["type"] == "flat":
        return faiss.IndexFlatIP(dim)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, params["nlist"], faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    quantizer.this.disown()
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    configure(index, params)
    return index


def training_sample(vectors: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The rows IVF is trained on: all of them, or a fixed-seed draw of TRAIN_PER_LIST per list (k-means
    time grows with it; FAISS advises 39 to 256)."""
    most = TRAIN_PER_LIST * params.get("nlist", 1)
    if len(vectors) <= most:
        return vectors
    return vectors[np.sort(np.random.default_rng(0).choice(len(vectors), most, replace=False))]


def add_part(trained: Any, vectors: np.ndarray, first_id: int) -> Any:
    """A copy of the trained empty index holding `vectors` as ids first_id, first_id + 1, …"""
    import faiss  # lazy: a heavy library, loaded on first use

    part = faiss.clone_index(trained)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not isinstance(part, faiss.IndexFlat):
        part.add_with_ids(vectors, np.arange(first_id, first_id + len(vectors), dtype=np.int64))
    elif first_id != 0:
        raise ValueError("a flat index numbers its vectors itself: add the parts in order to one index")
    else:
        part.add(vectors)
    return part


def merge_parts(trained: Any, parts: list[Any]) -> Any:
    """Merge parts made by `add_part` (IVF) into the trained index, in order."""
    for part in parts:
        trained.merge_from(part, 0)
    return trained
