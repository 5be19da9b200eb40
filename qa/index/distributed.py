"""Read, cut and embed a build's new files on Ray Data; the driver then assembles the index as a
plain build does. Driven by `qa.index.build`, never importing it; imported only when a build asks for
workers or a Ray address, so `import qa`, the app and the default build never import Ray (the
`cluster` extra). Both stages call the plain build's own functions, so both paths give the same index:

1. read: Ray tasks call `qa.index.ingest.read_one` on each file, returning the document row and its
   passages, or the reason the file is skipped;
2. embed: an actor pool, each actor loading the model once, calls `qa.model.embed_passages` and writes
   Parquet shards: slot, passage number, doc, start, end, passage sha256, vector and sentence vectors
   as raw float32 bytes (exact, one binary column).

The driver reads the shards back in corpus order, checks them against the passages read, and writes
the build (`qa.index.writer.write_build`). On a cluster the corpus and the index folder (where shards
are written) must be on storage every node sees, at the same path.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from qa.errors import ClusterConnectionError, ClusterStorageError, InputError
from qa.files import text_sha256
from qa.index.ingest import ReadResult, read_one
from qa.index.layout import passage_from_row
from qa.model import embed_passages, load_model, model_checksum

BATCH = 128  # passages per actor call: grouped by token count inside it, as the plain build groups them all
ENV_PREFIXES = ("HF_", "TRANSFORMERS_", "QA_", "SENTENCE_TRANSFORMERS_")  # offline settings the workers need


class PoolTooLargeError(InputError):
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
            "and Ray Data would hang with its reads starved: use fewer workers.",
            f"{workers} workers occuperaient les {cluster_cpus:g} processeurs du cluster Ray et la lecture des "
            "fichiers n'aurait plus de place : le calcul se bloquerait. Demandez moins de workers (--workers).",
        )
    return cpus_per_worker


def _read_file(row: dict, corpus: str) -> dict:
    """Ray task: one file read and cut by the plain build's `read_one`, as JSON columns."""
    read = read_one(Path(row["path"]), Path(corpus))
    return {
        "slot": row["slot"], "sha256": read.sha256, "error": read.error, "missing": not os.path.exists(row["path"]),
        "doc": json.dumps(read.doc, ensure_ascii=False) if read.doc else "",
        "passages": json.dumps([asdict(p) for p in read.passages or ()], ensure_ascii=False),
    }


def _passage_rows(row: dict) -> list[dict]:
    return [{"slot": row["slot"], "n": n, "passage": json.dumps(p, ensure_ascii=False)}
            for n, p in enumerate(json.loads(row["passages"]))]


class _Embedder:
    """A Ray actor: loads the model once, embeds batches of passage rows."""

    def __init__(self, model: str | None, threads: int, checksum: str) -> None:
        import torch  # lazy: only Ray actors import this module's torch path

        torch.set_num_threads(threads)  # Ray sets OMP threads to the actor's CPUs; torch would take them all
        self.encoder = load_model(model)
        found = model_checksum(model)
        if found != checksum:  # another copy of the weights on this node: its vectors would not match
            raise RuntimeError(f"the model on this Ray node ({found[:12]}) is not the driver's ({checksum[:12]})")

    def __call__(self, batch: dict) -> dict:
        passages = [passage_from_row(json.loads(x)) for x in batch["passage"]]
        vectors, sentence_vectors = embed_passages(self.encoder, passages)
        bounds = np.cumsum([0] + [len(p.sentences) for p in passages])
        return {
            "slot": np.asarray(batch["slot"], dtype=np.int64),
            "n": np.asarray(batch["n"], dtype=np.int64),
            "doc": np.asarray([p.doc for p in passages]),
            "start": np.asarray([p.start for p in passages], dtype=np.int64),
            "end": np.asarray([p.end for p in passages], dtype=np.int64),
            "sha256": np.asarray([text_sha256(p.text) for p in passages]),
            "vector": np.array([v.astype(np.float32).tobytes() for v in vectors], dtype=object),
            "sentence_vectors": np.array([sentence_vectors[bounds[i] : bounds[i + 1]].astype(np.float32).tobytes()
                                          for i in range(len(passages))], dtype=object),
        }


def read_and_embed(paths: list[Path], corpus: Path, shards: Path, *, model: str | None, workers: int, checksum: str,
                   cpus_per_worker: float | None = None,
                   ) -> tuple[list[ReadResult], np.ndarray | None, np.ndarray | None]:
    """Each file's `ReadResult` (in `paths` order), and the vectors and sentence vectors of all their
    passages in that order (None when no passage was read). Ray must be up (`Session.ensure`).
    `checksum`: the model weights' checksum the manifest records; every actor must load the same."""
    if model is not None and os.path.exists(model):
        model = os.path.abspath(model)  # a local model path means the same folder on every node
    import ray  # lazy: the cluster extra is optional

    cpus = plan_pool(workers, float(ray.cluster_resources().get("CPU", 0)), cpus_per_worker)
    # absolute, but links not followed: a symlinked file keeps its own id, as in the plain build
    files = [{"slot": i, "path": os.path.abspath(p)} for i, p in enumerate(paths)]
    reads_ds = ray.data.from_items(files).map(_read_file, fn_kwargs={"corpus": os.path.abspath(corpus)})
    reads_ds = reads_ds.materialize()  # read once; feeds both the driver and the embedding stage
    rows = reads_ds.take_all()
    unseen = [paths[r["slot"]] for r in rows if r["missing"] and os.path.exists(paths[r["slot"]])]
    if unseen:
        raise ClusterStorageError(f"Ray workers cannot see {len(unseen)} corpus file(s) the driver sees, e.g. "
                                  f"{unseen[0]}: the corpus must be on storage every node mounts at the same path")
    reads: list[ReadResult | None] = [None] * len(paths)
    for row in rows:
        doc = json.loads(row["doc"]) if row["doc"] else None
        passages = [passage_from_row(p) for p in json.loads(row["passages"])]
        reads[row["slot"]] = ReadResult(row["sha256"], doc, passages if doc else None, row["error"])
    if None in reads:
        raise RuntimeError(f"Ray returned no read result for {reads.count(None)} of {len(paths)} files")
    if not any(r.passages for r in reads):
        return reads, None, None
    reads_ds.flat_map(_passage_rows, num_cpus=cpus).map_batches(  # same CPUs as the actors: fused with them
        _Embedder, fn_constructor_kwargs={"model": model, "threads": max(1, int(cpus)), "checksum": checksum},
        batch_size=BATCH, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus, batch_format="numpy",
    ).write_parquet(str(shards))
    vectors, sentence_vectors = assemble(shards, reads)
    return reads, vectors, sentence_vectors


def ray_map(fn: Callable, jobs: Iterable) -> list:
    """`map` on Ray tasks, in order (for `qa.index.dense.build`'s parts)."""
    import ray  # lazy: the cluster extra is optional

    task = ray.remote(fn)
    return ray.get([task.remote(job) for job in jobs])


class Session:
    """Ray for the length of a build, joined or started only when there are files to read (an
    incremental build with nothing new or changed never starts Ray) and shut down after; a caller's own
    Ray session (a notebook that called `ray.init`) is used as it is, whatever `ray_address` says."""

    def __init__(self, ray_address: str | None) -> None:
        self.ray_address = ray_address
        self.started = False

    def __enter__(self) -> Session:
        return self

    def ensure(self) -> None:
        if not self.active:
            self.started = connect(self.ray_address)

    @property
    def active(self) -> bool:
        import ray  # lazy: the cluster extra is optional

        return ray.is_initialized()

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray  # lazy: the cluster extra is optional

            ray.shutdown()


def connect(ray_address: str | None) -> bool:
    """Join the given cluster, or start a local runtime; True when this call started Ray."""
    import ray  # lazy: the cluster extra is optional

    if ray.is_initialized():
        return False
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    try:
        # "local": --workers starts its own runtime even where `ray start` or $RAY_ADDRESS names a cluster
        ray.init(address=ray_address or "local", num_cpus=None if ray_address else os.cpu_count(),
                 runtime_env={"env_vars": env}, log_to_driver=False, include_dashboard=False)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, AuthenticationError, ...: one clear error
        if ray_address is None:
            raise
        raise ClusterConnectionError(f"{ray_address}: {type(exc).__name__}: {str(exc)[:300]}") from exc
    return True


def assemble(shards: Path, reads: list[ReadResult]) -> tuple[np.ndarray, np.ndarray]:
    """The vectors in the shards, in corpus order, checked against the passages read: each row must
    be the passage (doc, start, end, text hash) the driver expects in that place."""
    import pyarrow.parquet as pq  # lazy: comes with the cluster extra

    if not shards.is_dir() or not any(shards.iterdir()):
        raise ClusterStorageError(f"no shard reached {shards}: the index folder must be on storage every node "
                                  "mounts at the same path")
    table = pq.read_table(str(shards))
    slots, numbers = np.asarray(table.column("slot")), np.asarray(table.column("n"))
    order = np.lexsort((numbers, slots))
    expected = [(slot, n, p) for slot, r in enumerate(reads) for n, p in enumerate(r.passages or ())]
    if len(order) != len(expected):
        raise RuntimeError(f"the shards hold {len(order)} vectors for {len(expected)} passages")
    docs, starts, ends = (table.column(c).to_pylist() for c in ("doc", "start", "end"))
    hashes, raw, flat = (table.column(c).to_pylist() for c in ("sha256", "vector", "sentence_vectors"))
    vectors, sentences = [], []
    for row, (slot, n, p) in zip(order, expected, strict=True):
        if (slots[row], numbers[row], docs[row], starts[row], ends[row]) != (slot, n, p.doc, p.start, p.end) or \
                hashes[row] != text_sha256(p.text):
            raise RuntimeError(f"shard row {row} does not match passage {p.doc}[{p.start}:{p.end}]")
        vectors.append(np.frombuffer(raw[row], dtype=np.float32))
        sentences.append(np.frombuffer(flat[row], dtype=np.float32).reshape(-1, len(vectors[-1])))
        if len(sentences[-1]) != len(p.sentences):
            raise RuntimeError(f"shard row {row} holds {len(sentences[-1])} sentence vectors for {len(p.sentences)}")
    return np.stack(vectors), np.concatenate(sentences)


def shard_dir(root: Path) -> Path:
    """Where the embed stage writes; named like a temporary build folder, so that the next build
    removes it if this one is killed (`layout.new_build_dir`)."""
    return root / f".tmp-shards-{uuid.uuid4().hex[:8]}"
