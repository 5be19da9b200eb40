"""How questions are tokenised: by `qa.model.unigram` from vocabulary files in the ONNX cache folder
(loaded in a millisecond), or by tokenizers from the model's tokenizer.json (1.2 s for e5's 250,002
pieces, at every process start).

`write_tokens` writes the files when the export is made (or when tokenizer.json changes), once
qa.model.unigram has agreed with tokenizers on the probes, and records them in export.json with the
sha256 of the tokenizer.json they come from; `question_tokenizer` uses them only while both match.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from importlib import metadata
from pathlib import Path
from typing import Any

from qa.files import file_sha256, file_sha256_cached
from qa.model.onnx_store import (
    DEFAULT_MAX_LENGTH,
    PROBES,
    QueryEncoderUnavailable,
    file_entry,
    load_tokenizer,
    query_prompt,
    valid_file,
    write_record,
)
from qa.model.unigram import ENTRIES, FORMAT, PIECES, UnigramTokenizer, held_scores, write_vocabulary

logger = logging.getLogger(__name__)
# Checked besides PROBES: ties that tokenizers' own reading of the scores decides (つつつ, 9.9…), and a
# mark whose combining class differs between Python's Unicode tables and the Rust crate's.
TOKEN_PROBES = ("つつつ", "9.9.9.9.9.9.9.9.", "vipvipvipvip", "a\u1dfa\u0301", "o\u1ac0\u0308", "\u0628\u08ca\u064e")


def _versions() -> dict[str, str]:
    """What the files were written for: Python's Unicode tables and the tokenizers release (whose own
    tables and parsing they copy). Read from the installed metadata: tokenizers is not imported."""
    try:
        rust = metadata.version("tokenizers")
    except metadata.PackageNotFoundError:
        rust = ""
    return {"unicode": unicodedata.unidata_version, "tokenizers": rust}


def tokens_ready(record: dict[str, Any] | None, model_dir: Path, folder: Path) -> bool:
    """Whether the record says how questions are tokenised for the model's tokenizer.json as it is now: by
    qa.model.unigram from the folder's vocabulary files (each as recorded), or by tokenizers."""
    info = (record or {}).get("tokenizer")
    if not isinstance(info, dict):
        return False
    try:
        if info.get("sha256") != file_sha256_cached(model_dir / "tokenizer.json"):
            return False
    except OSError:
        return False
    spec = info.get("spec")
    if spec is not None and (spec.get("format") != FORMAT or info.get("versions") != _versions()):
        return False  # written by an older qa, or for other Unicode tables: written again
    source = record.get("source_sha256", "")
    return "spec" not in info or all(valid_file(record, source, name, folder) for name in (PIECES, ENTRIES))


def write_tokens(model_dir: Path, folder: Path, record: dict[str, Any]) -> None:
    """Write the question tokenizer's vocabulary files for the model's tokenizer.json, when qa.model.unigram
    follows its pipeline and agrees with tokenizers on the probes, and record them (or that tokenizers is used)."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise QueryEncoderUnavailable(f"{model_dir} has no tokenizer.json (a fast tokenizer is needed).")
    max_length = int(record.get("max_seq_length") or DEFAULT_MAX_LENGTH)
    info: dict[str, Any] = {"sha256": file_sha256(path), "versions": _versions()}
    for name in (PIECES, ENTRIES):
        record["files"].pop(name, None)
    reference = load_tokenizer(model_dir, max_length)
    try:
        spec = write_vocabulary(json.loads(path.read_text(encoding="utf-8")), held_scores(reference), folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("Cannot write the question tokenizer's files for %s (%s); using tokenizers.", model_dir, exc)
        spec = None
    if spec is not None:
        spec["pad_id"] = reference.padding["pad_id"]
        fast = UnigramTokenizer(folder, spec, max_length=max_length, pad_id=spec["pad_id"], fallback=lambda: reference)
        texts = [query_prompt(model_dir) + t for t in PROBES + TOKEN_PROBES]
        if all(fast.encode(t).ids == reference.encode(t).ids for t in texts):
            info["spec"] = spec
            record["files"].update({name: file_entry(folder, name) for name in (PIECES, ENTRIES)})
        else:
            logger.warning("The Python tokenizer disagrees with tokenizers for %s; using tokenizers.", model_dir)
    if "spec" not in info:
        for name in (PIECES, ENTRIES):
            (folder / name).unlink(missing_ok=True)
    record["tokenizer"] = info
    write_record(folder, record)


def question_tokenizer(model_dir: Path, folder: Path, record: dict[str, Any] | None, max_length: int) -> Any:
    """The tokenizer questions go through: qa.model.unigram's (loads in a millisecond) when the record has
    its files for this tokenizer.json, else tokenizers' (1.2 s for a 250,000-piece vocabulary)."""
    spec = ((record or {}).get("tokenizer") or {}).get("spec")
    if spec and tokens_ready(record, model_dir, folder):
        try:
            return UnigramTokenizer(folder, spec, max_length=max_length, pad_id=spec["pad_id"],
                                    fallback=lambda: load_tokenizer(model_dir, max_length))
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("Cannot read the question tokenizer's files in %s (%s); using tokenizers.", folder, exc)
    return load_tokenizer(model_dir, max_length)
