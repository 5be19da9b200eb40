"""The FAISS structure for passage vectors, chosen by corpus size and recorded in the manifest.

Exact search (IndexFlatIP, scored by one matrix-vector product in `qa.search`) up to FLAT_MAX
passages: recall 1, and about 3 ms for 5·10^4 vectors on two cores, growing linearly (6 ms at 10^5).
Above, IVF with 8-bit scalar quantisation (`IVF{nlist},SQ8`, nprobe 32): under 1 ms per question,
a quarter of Flat's memory, recall@10 0.985 against exact search at 10^5 (`benchmarks/scale.py`,
README "Scale"). HNSW was left out: it takes more memory than Flat, and its recall on clustered
vectors was the lowest of the three in the measurements this choice was made from.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FLAT_MAX = 50_000
NPROBE = 32
KINDS = ("auto", "flat", "ivf")


def plan(n: int, kind: str = "auto") -> dict[str, Any]:
    """The structure for `n` vectors: {"type": "flat"} or {"type": "ivf-sq8", "nlist", "nprobe"}."""
    if kind not in KINDS:
        raise ValueError(f"dense index kind must be one of {KINDS}, got {kind!r}")
    if kind == "flat" or (kind == "auto" and n <= FLAT_MAX):
        return {"type": "flat"}
    # about 4·sqrt(n) lists, a power of two, with at least 39 training points per list (FAISS's floor)
    nlist = 2 ** max(0, round(math.log2(max(1.0, 4 * math.sqrt(n)))))
    while nlist > 1 and n < 39 * nlist:
        nlist //= 2
    return {"type": "ivf-sq8", "nlist": nlist, "nprobe": min(NPROBE, nlist)}


def build(vectors: np.ndarray, params: dict[str, Any]) -> Any:
    """A FAISS inner-product index holding `vectors` (row i gets id i)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if params["type"] == "flat":
        index = faiss.IndexFlatIP(dim)
    elif params["type"] == "ivf-sq8":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, params["nlist"], faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        sample = vectors
        most = 256 * params["nlist"]
        if len(vectors) > most:  # a fixed seed: the same corpus gives the same index
            sample = vectors[np.sort(np.random.default_rng(0).choice(len(vectors), most, replace=False))]
        index.train(sample)
    else:
        raise ValueError(f"unknown dense index type {params['type']!r}")
    index.add(vectors)
    configure(index, params)
    return index


def configure(index: Any, params: dict[str, Any]) -> None:
    """Search-time settings that FAISS does not store in the file (nprobe)."""
    if params.get("type") == "ivf-sq8":
        import faiss

        faiss.extract_index_ivf(index).nprobe = int(params.get("nprobe", NPROBE))
