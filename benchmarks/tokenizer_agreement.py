"""Does qa's Python question tokenizer give tokenizers' ids? Counts disagreements per kind of text.

    python benchmarks/tokenizer_agreement.py [--piaf PATH/piaf-dev.json] [--count 20000] [--pieces]

Writes the vocabulary files into a temporary folder from the bundled model's tokenizer.json, then
encodes each text with both (the prompt "query: " in front) and prints, per kind: texts, texts whose
ids differ, texts handed to tokenizers. Kinds: PIAF questions and contexts (with --piaf), the report's
lines, and seeded generated texts: any code point, combining-mark stacks, emoji sequences, odd
whitespace, repeated short units, and with --pieces every vocabulary piece repeated three times
(250,002 texts, a few minutes). Also prints how many scores tokenizers reads differently from Python.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.model import bundled, unigram  # noqa: E402
from qa.model import onnx_store as store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARKS = [c for c in map(chr, range(0x300, 0x2000)) if unicodedata.category(c) in ("Mn", "Mc")]
EMOJI = ["😀", "👍", "🏽", "\u200d", "👩", "🔬", "❤", "\ufe0f", "🇲", "🇱"]
SPACES = [" ", "\u00a0", "\u202f", "\u2009", "\u200b", "\t", "\n", "\r", "\u3000", "\u2028"]


def generated(rng: random.Random, count: int) -> dict[str, list[str]]:
    def code_point() -> str:
        while 0xD800 <= (cp := rng.randrange(0x110000)) <= 0xDFFF:
            pass
        return chr(cp)

    units = ["つ", "9.", "vip", "fora", "सहर", "ab", "é", "ー", "..", "ß"]
    return {
        "any code point": ["".join(code_point() for _ in range(rng.randint(1, 12))) for _ in range(count)],
        "combining stacks": [rng.choice("aoeAnyب") + "".join(rng.choices(MARKS, k=rng.randint(1, 5)))
                             for _ in range(count)],
        "emoji sequences": ["".join(rng.choices(EMOJI, k=rng.randint(1, 8))) for _ in range(count)],
        "odd whitespace": ["".join(rng.choice([*SPACES, "mot", "x"]) for _ in range(rng.randint(0, 10)))
                           for _ in range(count)],
        "repeated units": [rng.choice(units) * rng.randint(2, 20) for _ in range(count)],
    }


def piaf_texts(path: str) -> Iterator[str]:
    for article in json.loads(Path(path).read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            yield para["context"]
            yield from (qa["question"] for qa in para["qas"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--piaf")
    parser.add_argument("--count", type=int, default=20_000, help="generated texts per kind")
    parser.add_argument("--pieces", action="store_true", help="also every vocabulary piece, repeated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model_dir = bundled.ensure_bundled_model()
    reference = store.load_tokenizer(model_dir, 512)
    config = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    held = unigram.held_scores(reference)
    print(f"scores tokenizers reads differently from Python: "
          f"{sum(a != b for a, (_, b) in zip(held, config['model']['vocab'], strict=True))} of {len(held)}")
    kinds = generated(random.Random(args.seed), args.count)
    kinds["report lines"] = [line for p in sorted((ROOT / "corpus").glob("*.txt"))
                             for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.piaf:
        kinds["PIAF questions and contexts"] = list(piaf_texts(args.piaf))
    if args.pieces:
        kinds["every piece ×3"] = [piece * 3 for piece, _ in config["model"]["vocab"]]
    with tempfile.TemporaryDirectory() as tmp:
        spec = unigram.write_vocabulary(config, held, Path(tmp))
        print(f"code points handed to tokenizers (Python's and the Rust crate's Unicode disagree): "
              f"{len(spec['nfkc_differs'])}")
        fast = unigram.UnigramTokenizer(Path(tmp), spec, max_length=512, pad_id=reference.padding["pad_id"],
                                        fallback=lambda: reference)
        print("| texts | count | ids differ | handed to tokenizers |\n|---|---|---|---|")
        for kind, texts in kinds.items():
            texts = ["query: " + t for t in texts]
            differ = [t for t in texts if fast.encode(t).ids != reference.encode(t).ids]
            handed = sum(not fast.refused.isdisjoint(t) or any(s in t for s in spec["specials"]) for t in texts)
            print(f"| {kind} | {len(texts)} | {len(differ)} | {handed} |", flush=True)
            for text in differ[:3]:
                print(f"|   e.g. {text!r} | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
