"""Cut a `Document` into passages: a paragraph each, long paragraphs split on sentences.

A passage is only offsets into the document text plus its section, so `text == doc.text[start:end]`
holds by construction. What the encoders see is `indexed_text`: the passage under a context header.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import asdict, dataclass

from qa.documents import READERS_VERSION, Document
from qa.french import sentence_spans

# ~200 XLM-R tokens: French runs at about 1.67 tokens per word (measured on PIAF paragraphs).
MAX_WORDS = 120
_WORD_RE = re.compile(r"\S+")


@dataclass(frozen=True)
class Sentence:
    """A sentence of a passage, in document offsets: the one a question's answer quotes."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    """A passage, from the index to the results: where it is (`text == document_text[start:end]`), its
    sentences' spans, and, once a question has found it, its rank, scores and the `sentence` that best
    answers (`qa.citations.cite` fills them in; a stored passage has rank 0 and no sentence)."""

    doc: str
    title: str
    section: str
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...]
    page: int | None = None
    rank: int = 0
    score: float = 0.0
    sentence: Sentence | None = None
    dense_score: float = 0.0
    keyword_score: float = 0.0
    sentence_score: float = 0.0  # how well `sentence` answers: cosine plus a share of the question's keywords
    sentence_margin: float = 0.0  # `sentence_score` minus the passage's next best sentence (0 for one sentence)

    def text_at(self, start: int, end: int) -> str:
        """The passage's text between two document offsets: the one place they become a slice."""
        return self.text[start - self.start : end - self.start]

    def sentence_texts(self) -> list[str]:
        """Each sentence's text, in order."""
        return [self.text_at(s, e) for s, e in self.sentences]

    def sentence_span(self) -> tuple[int, int]:
        """Where `sentence` lies inside `text` (offsets into the passage, for highlighting)."""
        assert self.sentence is not None, "a stored passage has no chosen sentence"
        return self.sentence.start - self.start, self.sentence.end - self.start

    def to_dict(self) -> dict:
        """A search result as JSON (the API's /retrieve, `qa ask --json`): every field but the spans."""
        out = asdict(self)
        del out["sentences"]
        return out


def chunking_params() -> dict[str, object]:
    """What the manifest records: change any of these and the index must be rebuilt."""
    return {
        "unit": "paragraph",
        "max_words": MAX_WORDS,
        "split": "sentences",
        "header": "title — section",
        "sentence_vectors": "header + sentence",
        "readers": READERS_VERSION,
    }


def chunk_document(doc: Document, *, max_words: int = MAX_WORDS) -> list[Passage]:
    """Passages of `doc` in reading order."""
    heading_starts = [h.start for h in doc.headings]
    passages = []
    for para in doc.paragraphs:
        i = bisect.bisect_right(heading_starts, para.start) - 1
        section = doc.headings[i].text if i >= 0 else ""
        sentences = sentence_spans(doc.text, para.start, para.end)
        for group in _group(doc.text, sentences, max_words):
            start, end = group[0][0], group[-1][1]
            passages.append(
                Passage(doc.doc_id, doc.title, section, start, end, doc.text[start:end], tuple(group),
                               doc.page_at(start))
            )
    return passages


def _group(text: str, sentences: list[tuple[int, int]], max_words: int) -> list[list[tuple[int, int]]]:
    """Pack consecutive sentences into groups of at most `max_words` words."""
    groups: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    count = 0
    for span in _split_long(text, sentences, max_words):
        n = len(_WORD_RE.findall(text, span[0], span[1]))
        if current and count + n > max_words:
            groups.append(current)
            current, count = [], 0
        current.append(span)
        count += n
    if current:
        groups.append(current)
    return groups


def _split_long(text: str, sentences: list[tuple[int, int]], max_words: int) -> list[tuple[int, int]]:
    """A sentence longer than `max_words` (a list, a table row) is cut between words."""
    out = []
    for start, end in sentences:
        words = list(_WORD_RE.finditer(text, start, end))
        if len(words) <= max_words:
            out.append((start, end))
            continue
        for i in range(0, len(words), max_words):
            piece = words[i : i + max_words]
            out.append((piece[0].start(), piece[-1].end()))
    return out


def _header(passage: Passage) -> str:
    return f"{passage.title} — {passage.section}" if passage.section else passage.title


def indexed_text(passage: Passage) -> str:
    """The passage under its context header: what is embedded and keyword-indexed."""
    return f"{_header(passage)}\n{passage.text}"


def indexed_sentences(passage: Passage) -> list[str]:
    """Each sentence under the passage's header: the header tells the encoder what "il" refers to
    (on PIAF, +3 points of answer-sentence accuracy over bare sentences)."""
    header = _header(passage)
    return [f"{header}\n{text}" for text in passage.sentence_texts()]
