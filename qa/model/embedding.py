"""Passages and questions to vectors with the torch model: the one way a build embeds.

Each passage is embedded under its header, and each of its sentences under the same header, every
distinct text once, in batches grouped by token count; bfloat16 where the CPU has it. Questions go
through `qa.model.query_encoder` (ONNX), with `embed_query` as its torch fallback. numpy, torch and
tqdm are imported inside the functions, for lazy loading.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from qa.chunking import Passage, indexed_sentences, indexed_text
from qa.errors import InputError
from qa.french import normalize_apostrophes
from qa.terminal import bar, stage

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer


def embedding_input(text: str) -> str:
    """What the encoder sees: apostrophes made alike, as in questions."""
    return normalize_apostrophes(text)


def embedded_texts(passages: list[Passage]) -> tuple[list[str], list[str], list[str]]:
    """What a build embeds: (passage texts, sentence texts in passage order, the distinct texts of both).

    A one-sentence passage's sentence is the passage itself (a fifth of PIAF's passages), and
    boilerplate repeats under the same header: each distinct text is embedded once, in one call so
    that batches group all of them by token count.
    """
    texts = [embedding_input(indexed_text(p)) for p in passages]
    sentences = [embedding_input(t) for p in passages for t in indexed_sentences(p)]
    return texts, sentences, list(dict.fromkeys(texts + sentences))


def embed_passages(encoder: SentenceTransformer, passages: list[Passage], *,
                   show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The one way passages become vectors: each passage under its header, and each of its sentences
    under the same header. Returns (passage vectors, sentence vectors in passage order)."""
    texts, sentences, unique = embedded_texts(passages)
    row = {text: i for i, text in enumerate(unique)}
    vectors = embed_documents(encoder, unique, show_progress=show_progress)
    return vectors[[row[t] for t in texts]], vectors[[row[t] for t in sentences]]


def embed_documents(
    model: SentenceTransformer, texts: list[str], *, batch_size: int = 16, show_progress: bool = False
) -> np.ndarray:
    """Float32 (n, dim) L2-normalised passage vectors, in the order of `texts` (document prompt applied)."""
    import numpy as np  # lazy: `import qa` stays light

    if not texts:
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (which now warns).
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return np.zeros((0, dimension() or 0), dtype=np.float32)
    batches = document_batches(model, texts, batch_size)
    order = [i for batch in batches for i in batch]
    stage(f"Encodage de {len(texts)} textes (passages et phrases)…")
    shown = bar(len(texts), "textes", show=show_progress)
    parts = []
    with _document_autocast():
        for batch in batches:
            parts.append(model.encode_document([texts[i] for i in batch], batch_size=batch_size,
                                               show_progress_bar=False, convert_to_numpy=True,
                                               normalize_embeddings=True))
            if shown is not None:
                shown.update(len(batch))
    if shown is not None:
        shown.close()
    vectors = np.concatenate(parts)
    out = np.empty(vectors.shape, dtype=np.float32)
    out[order] = vectors
    return out


def document_batches(model: SentenceTransformer, texts: list[str], batch_size: int = 16) -> list[list[int]]:
    """The batches `embed_documents` encodes, as indices into `texts`: longest first, by token count.

    Each batch is padded to its longest text. Grouped by token count, PIAF's texts compute 148k
    tokens for 146k real ones, against 171k grouped by characters, as sentence-transformers does
    (benchmarks/build_ceiling.py); hence one encode call per batch, since encode would re-sort.
    """
    lengths: list[int] = []
    for start in range(0, len(texts), 2048):  # in slices: a build of 10^6 texts keeps only their lengths
        encoded = model.tokenizer(texts[start : start + 2048], add_special_tokens=False, truncation=True,
                                  max_length=model.max_seq_length, return_attention_mask=False,
                                  return_token_type_ids=False)
        lengths += [len(ids) for ids in encoded["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i], reverse=True)
    return [order[b : b + batch_size] for b in range(0, len(order), batch_size)]


PRECISIONS = ("auto", "bf16", "fp32")


def document_precision() -> str:
    """The precision documents are embedded in: "bf16" or "fp32".

    bfloat16 matrix products with float32 accumulation (torch autocast) embed PIAF passages 1.6x faster
    than float32 on a CPU with AVX512-BF16 or AMX, at cosine >= 0.9999 to the float32 vectors
    (benchmarks/build_speed.py); elsewhere bfloat16 is emulated and slower, so "auto" keeps float32.
    QA_DOCUMENT_PRECISION=fp32 (or bf16) overrides the choice. A text's vector moves by up to ~1e-3
    per component with the texts that share its batch (1e-7 in float32): incremental and full builds
    agree to cosine 0.9999, not bit for bit. Raises InputError for another value.
    """
    wanted = precision_setting()
    if wanted != "auto":
        return wanted
    import torch  # lazy: only builds embed with torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private in torch 2.x: absent means no
    native = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return "bf16" if native else "fp32"


def precision_setting() -> str:
    """QA_DOCUMENT_PRECISION, checked without importing torch: "auto", "bf16" or "fp32"; raises InputError."""
    wanted = os.environ.get("QA_DOCUMENT_PRECISION", "auto").strip().lower() or "auto"
    if wanted not in PRECISIONS:
        raise InputError(f"QA_DOCUMENT_PRECISION must be one of {', '.join(PRECISIONS)}, got {wanted!r}",
                         f"QA_DOCUMENT_PRECISION doit valoir {', '.join(PRECISIONS)} (reçu : {wanted!r}).")
    return wanted


def _document_autocast():
    """torch.autocast to bfloat16 on the CPU when document_precision() says so, else a no-op context."""
    if document_precision() != "bf16":
        return contextlib.nullcontext()
    import torch  # lazy: only builds embed with torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


def embed_query(model: SentenceTransformer, text: str) -> np.ndarray:
    """Float32 (dim,) L2-normalised question vector (query prompt applied): the torch fallback of
    `qa.model.query_encoder`."""
    import numpy as np  # lazy: `import qa` stays light

    vector = model.encode_query(text, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True)
    return np.asarray(vector, dtype=np.float32)
