from __future__ import annotations

import pytest

from qa.french import analyze, fold_accents, normalize_apostrophes, sentence_spans, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("l'armée", ["armée"]),
        ("l’armée", ["armée"]),  # typographic apostrophe, as in the report
        ("jusqu'à Tombouctou", ["à", "tombouctou"]),
        ("qu'il", ["il"]),
        ("lorsqu’ils", ["ils"]),
        ("d'autres", ["autres"]),
        ("aujourd'hui", ["aujourd", "hui"]),
    ],
)
def test_words_split_elisions(text, expected):
    assert words(text) == expected


def test_apostrophes_are_treated_alike():
    assert analyze("l’expansion des attaques") == analyze("l'expansion des attaques")
    assert len(normalize_apostrophes("l’a")) == len("l’a")


def test_accents_are_folded_both_ways():
    assert fold_accents("Sécurité, Ségou, ça") == "Securite, Segou, ca"
    assert analyze("Segou Niono etat elections") == analyze("Ségou Nionó état élections")
    assert analyze("revendiqué") == analyze("revendiquées") == ["revendiqu"]  # stemmed before folding


def test_plural_and_inflections_share_a_stem():
    assert analyze("attaques") == analyze("attaque")
    assert analyze("militaires") == analyze("militaire")
    assert analyze("neutralisés") == analyze("neutralisé")


def test_stopwords_and_one_letter_words_are_dropped_digits_kept():
    assert analyze("Les forces de la région et des 7 localités") == analyze("forces région 7 localités")
    assert "7" in analyze("7 localités")
    assert analyze("le la les de du des") == []


def test_question_words_dropped_only_for_questions():
    assert analyze("Combien de sites ?", question=True) == analyze("sites")
    assert len(analyze("Combien de sites ?")) == 2


def test_sentences_respect_abbreviations_and_initials():
    text = "M. Dupont est venu. Il a vu J. Chirac en 1995. Puis ? Non… Oui ! Fin"
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == ["M. Dupont est venu.", "Il a vu J. Chirac en 1995.", "Puis ?", "Non…", "Oui !", "Fin"]


def test_sentences_keep_decimals_together_and_offsets_exact():
    text = "  Le taux est de 3.5 pour cent. Il baisse.  "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["Le taux est de 3.5 pour cent.", "Il baisse."]
