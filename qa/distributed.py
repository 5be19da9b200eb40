"""Embed a build's new passages on Ray Data: an actor pool where each actor loads the model once.

Imported only when a build asks for workers or a Ray address, so `import qa`, the app and the
default build never import Ray (`pip install 'qa[cluster]'` brings it). The passages are made by the
same reader and chunker as the plain build, in the driver; the actors turn them into vectors with
`qa.build.embed_passages`, the one embedding function, and write Parquet shards (row, doc, start,
end, passage sha256, vector, sentence vectors); the driver reads the shards back in passage order
and writes the index as a plain build does. Status: embedding only is distributed for now (issue 8
asks for reading too).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from qa.chunking import IndexedPassage

log = logging.getLogger(__name__)
BATCH = 16


class PoolTooLargeError(ValueError):
    """An actor pool that would hold every CPU of the cluster: Ray Data would hang, reads starved."""


def plan_pool(workers: int, cluster_cpus: float, cpus_per_worker: float | None = None) -> float:
    """CPUs each actor reserves. By default the pool takes at most the cluster's CPUs minus one, each
    actor at most one CPU; an explicit share that leaves no CPU free is refused at once."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if cpus_per_worker is None:
        cpus_per_worker = min(1.0, max(cluster_cpus - 1, 0.5 * cluster_cpus) / workers)
    if workers * cpus_per_worker >= cluster_cpus or cpus_per_worker < 0.1:
        raise PoolTooLargeError(
            f"{workers} workers x {cpus_per_worker:g} CPU would hold all {cluster_cpus:g} CPUs of the Ray cluster, "
            "and Ray Data would hang with its reads starved: use fewer workers."
        )
    return cpus_per_worker


class _Embedder:
    """A Ray actor: loads the model once, embeds batches of passage rows."""

    def __init__(self, model: str | None, threads: int) -> None:
        import torch

        from qa import model as models

        torch.set_num_threads(threads)  # Ray sets OMP threads to the actor's CPUs; torch would take them all
        self.encoder = models.load_model(model)

    def __call__(self, batch: dict) -> dict:
        from qa.build import embed_passages

        passages = [
            IndexedPassage(d, t, s, int(a), int(b), x, tuple((int(p[0]), int(p[1])) for p in spans))
            for d, t, s, a, b, x, spans in zip(batch["doc"], batch["title"], batch["section"], batch["start"],
                                               batch["end"], batch["text"], batch["sentences"])
        ]
        vectors, sentence_vectors = embed_passages(self.encoder, passages)
        counts = [len(p.sentences) for p in passages]
        bounds = np.cumsum([0] + counts)
        return {
            "row": np.asarray(batch["row"], dtype=np.int64),
            "doc": np.asarray(batch["doc"]),
            "start": np.asarray(batch["start"], dtype=np.int64),
            "end": np.asarray(batch["end"], dtype=np.int64),
            "sha256": np.asarray([hashlib.sha256(p.text.encode("utf-8")).hexdigest() for p in passages]),
            # raw float32 bytes: exact, and one plain binary column whatever the sentence count
            "vector": np.array([v.astype(np.float32).tobytes() for v in vectors], dtype=object),
            "sentence_vectors": np.array([sentence_vectors[bounds[i] : bounds[i + 1]].astype(np.float32).tobytes()
                                          for i in range(len(passages))], dtype=object),
        }


def embed_on_ray(
    passages: list[IndexedPassage],
    shards: Path,
    *,
    model: str | None,
    workers: int,
    ray_address: str | None = None,
    cpus_per_worker: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(passage vectors, sentence vectors) of `passages`, embedded by a Ray actor pool, in their order."""
    import pyarrow.parquet as pq
    import ray

    started = False
    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "QA_"))}
        ray.init(address=ray_address, num_cpus=None if ray_address else os.cpu_count(),
                 runtime_env={"env_vars": env}, log_to_driver=False, include_dashboard=False)
        started = True
    try:
        cpus = plan_pool(workers, float(ray.cluster_resources().get("CPU", 0)), cpus_per_worker)
        rows = [
            {"row": i, "doc": p.doc, "title": p.title, "section": p.section, "start": p.start, "end": p.end,
             "text": p.text, "sentences": [list(s) for s in p.sentences]}
            for i, p in enumerate(passages)
        ]
        shutil.rmtree(shards, ignore_errors=True)
        ds = ray.data.from_items(rows).map_batches(
            _Embedder, fn_constructor_kwargs={"model": model, "threads": max(1, int(cpus))},
            batch_size=BATCH, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus, batch_format="numpy",
        )
        ds.write_parquet(str(shards), filename_provider=None)
        table = pq.read_table(str(shards))
    finally:
        if started:
            ray.shutdown()
    order = np.argsort(np.asarray(table.column("row")))
    raw = table.column("vector").to_pylist()
    vectors = np.stack([np.frombuffer(raw[i], dtype=np.float32) for i in order])
    dim = vectors.shape[1]
    flat = table.column("sentence_vectors").to_pylist()
    sentence_vectors = np.concatenate([np.frombuffer(flat[i], dtype=np.float32).reshape(-1, dim) for i in order])
    if len(vectors) != len(passages):
        raise RuntimeError(f"Ray returned {len(vectors)} vectors for {len(passages)} passages")
    return vectors, sentence_vectors


def shard_dir(root: Path) -> Path:
    return root / f".shards-{uuid.uuid4().hex[:8]}"
