"""French text handling: apostrophes, accents, elisions, stopwords, stemming, sentences.

The only module that knows French: also what a question asks for (a date, a number, a name; its
focus word) and whether it leans on the previous turn. The same `analyze` prepares passages and questions for the
keyword index, so both sides always agree on what a word is.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Typographic apostrophes and look-alikes: the report writes ’, users type '.
_APOSTROPHES = str.maketrans({c: "'" for c in "’‘ʼ´`′＇"})

ELISIONS = ("l", "d", "qu", "n", "s", "j", "c", "m", "t", "jusqu", "lorsqu", "puisqu", "quoiqu")
_ELISION_RE = re.compile(r"\b(?:" + "|".join(sorted(ELISIONS, key=len, reverse=True)) + r")'", re.I)
_WORD_RE = re.compile(r"\w+", re.UNICODE)

# Question words carry no topic: dropped from questions, for the keyword index only.
QUESTION_WORDS = frozenset(
    "quel quelle quels quelles qui que quoi qu comment pourquoi combien quand ou lequel laquelle "
    "lesquels lesquelles est-ce ce cela ceci".split()
)


def normalize_apostrophes(text: str) -> str:
    """Map every apostrophe look-alike to ASCII `'`; length is preserved, so offsets hold."""
    return text.translate(_APOSTROPHES)


def fold_accents(text: str) -> str:
    """Remove diacritics (é -> e, ç -> c) so that `securite` matches `sécurité`."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_FRENCH  # lazy: a heavy library, loaded on first use

    return frozenset(fold_accents(w) for w in STOPWORDS_FRENCH)


@functools.lru_cache(maxsize=1)
def _resources() -> tuple[object, frozenset[str]]:
    import Stemmer  # lazy: a heavy library, loaded on first use

    return Stemmer.Stemmer("french"), _stopwords()


def words(text: str) -> list[str]:
    """Lowercased words, accents kept, with elided articles split off (l'armée -> armée)."""
    text = _ELISION_RE.sub(" ", normalize_apostrophes(text))
    return _WORD_RE.findall(text.lower())


@functools.lru_cache(maxsize=200_000)
def _term(word: str, question: bool) -> str:
    """The index term of one lowercased word, or "" when it is dropped. Cached: a word's fate never
    changes, and folding and stemming every occurrence was most of the analyser's time."""
    _, stop = _resources()
    folded = fold_accents(word)
    if folded in stop or (len(word) == 1 and not word.isdigit()):
        return ""
    if question and folded in QUESTION_WORDS:
        return ""
    return _stem(word)


def _stem(word: str) -> str:
    """Stem, then fold accents: Snowball needs them to see suffixes (revendiquées -> revendiqu)."""
    stemmer, _ = _resources()
    return fold_accents(stemmer.stemWord(word))  # type: ignore[attr-defined]


def analyze(text: str, *, question: bool = False) -> list[str]:
    """Keyword-index terms of a text: words without stopwords, Snowball-stemmed.

    One-letter tokens are dropped unless they are digits ("7 localités" keeps "7").
    With `question=True`, French question words are dropped too.
    """
    return [t for t in (_term(w, question) for w in words(text)) if t]


ANALYZER_PARAMS = {
    "apostrophes": "normalized",
    "lowercase": True,
    "accents": "folded after stemming",
    "elisions": list(ELISIONS),
    "stopwords": "bm25s.STOPWORDS_FRENCH (accent-folded)",
    "stemmer": "snowball-french (PyStemmer)",
    "min_length": 2,
    "question_words": sorted(QUESTION_WORDS),
}

# Abbreviations whose final dot does not end a sentence.
_ABBREVIATIONS = frozenset(
    "m mm mme mmes mlle dr pr me st ste av apr j.-c etc cf ex p pp vol no n° art al fig chap "
    "env approx min max vs réf éd gén col cdt lt sgt".split()
)
_SENTENCE_END_RE = re.compile(r"[.!?…]+[»\"”)\]]*(?=\s+)")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentences of `text[start:end]` as (start, end) offsets into `text`, whitespace trimmed.

    A sentence ends at `.`, `!`, `?` or `…` followed by space and an upper-case letter, a digit or
    an opening quote, unless the dot closes a known abbreviation or a single initial (`J. Dupont`).
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for m in _SENTENCE_END_RE.finditer(text, start, end):
        nxt = m.end()
        while nxt < end and text[nxt].isspace():
            nxt += 1
        if nxt >= end:
            break
        following = text[nxt]
        if not (following.isupper() or following.isdigit() or following in "«\"“(-–—"):
            continue
        if text[m.start()] == "." and m.end() - m.start() == 1:
            before = re.search(r"(\S+)$", text[cursor : m.start()])
            token = before.group(1).lower().lstrip("(«\"") if before else ""
            if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
                continue
        spans.append(_trim(text, cursor, m.end()))
        cursor = nxt
    if cursor < end:
        spans.append(_trim(text, cursor, end))
    return [s for s in spans if s[1] > s[0]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# What a question asks for, and what it leans on: the cues the confidence signals and follow-ups read.
_DATE_QUESTION = re.compile(
    r"^\s*(?:quand|depuis quand|jusqu'à quand)\b|\b(?:date|année|époque|période|siècle|jour|mois|heure)\b"
    r"|\bdepuis quand\b|\bà partir de quand\b"
)
_NUMBER_QUESTION = re.compile(
    r"\bcombien\b|\bquel(?:le)?s? (?:est |sont |était )?(?:le |la |l')?(?:nombre|pourcentage|âge|montant|prix|taux|"
    r"poids|quantité|proportion|somme|superficie|taille|hauteur|longueur|distance|population|durée|surface|vitesse|"
    r"température|budget|salaire|coût|chiffre|effectif|bilan)\b"
)
_NAME_QUESTION = re.compile(
    r"^\s*(?:qui|par qui|à qui|de qui|avec qui|pour qui|contre qui|où|d'où|par où)\b"
    r"|\b(?:dans|en|à|de|par|vers) quel(?:le)?s? (?:ville|pays|région|lieu|endroit|continent|département|province|"
    r"quartier|organisation|groupe|entreprise|parti)\b"
    r"|^\s*quel(?:le)?s? (?:est |sont |était )?(?:le |la |l')?(?:ville|pays|région|lieu|organisation|groupe|"
    r"entreprise|parti|nom|auteur|fondateur|président|chef|dirigeant|capitale)\b"
)
_MONTHS = ("janvier février mars avril mai juin juillet août septembre octobre novembre décembre "
           "lundi mardi mercredi jeudi vendredi samedi dimanche siècle siècles")
_DATE_TEXT = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})\b|\b(?:" + "|".join(_MONTHS.split()) + r")\b"
                        r"|\b\d{1,2}/\d{1,2}\b|\b(?:(?!Le\b)[IVXL]+e|\d+e)\b")  # "XIXe", "3e"; not the article "Le"
_NUMBERS = ("deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize vingt vingts "
            "trente quarante cinquante soixante cent cents mille million millions milliard milliards dizaine "
            "dizaines centaine centaines millier milliers douzaine douzaines moitié tiers quart premier première")
_NUMBER_TEXT = re.compile(r"\d|%|\b(?:" + "|".join(_NUMBERS.split()) + r")\b")
# The question's focus: the noun it asks about ("Qui est le président …", "Quelle est la capitale …",
# "Combien d'habitants …", "Quel type de pouvoir …"). A report that never names it cannot answer.
# Only a noun: "Qui dirige …", "Qui est derrière …" and "Combien coûte …" have no focus word (a verb or a
# preposition is not what is asked about), and "type de", "autres", "principale" are passed over.
_FOCUS = re.compile(
    r"^\s*(?:qui\s+(?:est|sont|était|étaient|fut)\s+(?:les\s+|le\s+|la\s+|l'|un\s+|une\s+)"
    r"|(?:quel|quelle|quels|quelles)\s+(?:(?:est|sont|était|étaient|fut)\s+(?:les\s+|le\s+|la\s+|l'))?"
    r"|combien\s+(?:de\s+|d'|des\s+))"
    r"(?:(?:types?|sortes?|genres?|formes?)\s+(?:de\s+|d'))?"
    r"(?:(?:autres?|principale?s?|principaux|premier|première|premiers|premières|nouveaux|nouvelles?|nouveau|"
    r"seule?s?|grande?s?|différente?s?)\s+)?"
    r"([\w-]+)"
)
_WORD = re.compile(r"[\w'’-]+")
_ACRONYM = re.compile(r"^[A-ZÀ-Ý]{2,}$")


def answer_type(question: str) -> str | None:
    """What the question asks for: "date", "number", "name" (a person, group or place), or None."""
    q = normalize_apostrophes(question).lower()
    if _NUMBER_QUESTION.search(q):
        return "number"
    if _DATE_QUESTION.search(q):
        return "date"
    if _NAME_QUESTION.search(q):
        return "name"
    return None


def holds_type(text: str, kind: str | None) -> bool:
    """Does `text` hold something of the kind asked for? (True when nothing in particular is asked.)"""
    if kind is None:
        return True
    if kind == "date":
        return _DATE_TEXT.search(text) is not None
    if kind == "number":
        return _NUMBER_TEXT.search(text.lower()) is not None
    return bool(names(text))


def focus_word(question: str) -> str | None:
    """The noun the question asks about ("Qui est le président du Mali ?" → "président"), or None."""
    match = _FOCUS.match(normalize_apostrophes(question).lower())
    return match.group(1) if match else None


def names(text: str) -> set[str]:
    """Capitalised words after the first, and acronyms: the names a text mentions, accent-folded."""
    out = set()
    for n, word in enumerate(_WORD.findall(normalize_apostrophes(text))):
        word = word.strip("'-")
        if not word:
            continue
        if _ACRONYM.match(word) or (n > 0 and word[0].isupper() and len(word) > 1):
            out.add(fold(word))
    return out


def fold(text: str) -> str:
    """Accents, apostrophes and case folded: how names are compared."""
    return fold_accents(normalize_apostrophes(text)).casefold()


# A follow-up leans on the previous turn: it opens with "et", or points back with a pronoun.
_FOLLOW_UP_START = re.compile(r"^\s*(et|mais|alors|puis|ensuite|donc|aussi)\b", re.I)
_BACK_REFERENCES = frozenset(
    "il ils elle elles son sa ses leur leurs lui eux celui celle ceux celles cela ça cet cette ces "
    "y dernier dernière derniers dernières".split()
)
# An inverted subject ("ont-ils", "cherche-t-il") points back only when the question names little
# else: "Les assaillants ont-ils utilisé des drones ?" stands alone, "Que cherche-t-il ?" does not.
_INVERTED = re.compile(r"-(?:t-)?(?:il|ils|elle|elles|on|ce)\b")


def is_follow_up(question: str) -> bool:
    """True when the question needs the previous turn: "Et …", a back-reference, or no topic word."""
    if _FOLLOW_UP_START.match(question):
        return True
    topic = analyze(question, question=True)
    if len(topic) <= 1:
        return True
    text = normalize_apostrophes(question.lower())
    if any(t in _BACK_REFERENCES for t in words(_INVERTED.sub(" ", text))):
        return True
    return _INVERTED.search(text) is not None and len(topic) <= 2
