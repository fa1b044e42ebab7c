"""What notebook 09's lab bench computes about one input, as plain functions: no widgets, no HTML.

    subword_view(pipeline, text)          word pieces, the piece that carries each word's label, P(tag | word)
    span_map(pipeline, question, context) per QA window: P(start), P(end) of each context token, overlaps, top-k
    compare_entities(gold, predicted)     NER errors: missed, spurious, wrong type, wrong boundary
    ner_example / qa_example              one validation example, gold against predicted, with its scores

The model is called through the pipeline's public pieces (``qa_features``, ``ner_features``) and
``evaluation.predict_features``, so the windows are exactly those the pipeline and evaluation use.
``demo_runs`` computes what the bench shows about training runs (saved runs, the task mix, loss
curves); ``demo_views`` turns the results of both into HTML and figures; ``widgets`` wraps them
in ipywidgets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .inference import iob2_spans, split_words
from .metrics import exact_match, token_f1
from .preprocessing import first_positions


# -- the model, window by window -------------------------------------------------------------------
def window_logits(pipeline, features, task: str) -> list:
    """Run ``task``'s head over every window in ``features`` (``evaluation.predict_features``, the
    forward pass the pipeline and evaluation use). Returns per window, trimmed to its length T:
    NER logits (T, C), or QA ``(start (T,), end (T,))``; numpy."""
    from .evaluation import predict_features

    return predict_features(pipeline.model, features, task, pipeline.tokenizer, pipeline.batch_size,
                            pipeline.device, ner_logits=True)


def softmax_rows(logits) -> np.ndarray:
    """Softmax over the last axis: (..., C) logits → probabilities that sum to 1 per row."""
    values = np.asarray(logits, dtype=np.float64)
    values = np.exp(values - values.max(axis=-1, keepdims=True))
    return values / values.sum(axis=-1, keepdims=True)


# -- 1. sub-words of NER ---------------------------------------------------------------------------
class Piece(NamedTuple):
    """One word piece: its text (``"##ina"``), its word (None for [CLS]/[SEP]) and its label in
    training: the word's tag at the word's first piece, ``"-100"`` (ignored by the loss) elsewhere."""

    token: str
    word: int | None
    label: str


@dataclass
class SubwordView:
    """A sentence as the NER head sees it. ``probabilities``: (N words, C tags), each row the
    softmax at the piece that scores the word (zeros for a word that has no piece)."""

    words: list[str]
    pieces: list[Piece]
    tags: list[str]
    probabilities: np.ndarray
    label_names: list[str]


def piece_rows(tokens: Sequence[str], word_ids: Sequence[int | None], tags: Sequence[str]) -> list[Piece]:
    """Pieces with their training labels: a word's tag at its first piece, "-100" on the others."""
    firsts = set(first_positions(word_ids).values())
    return [Piece(token, word, tags[word] if position in firsts else "-100")
            for position, (token, word) in enumerate(zip(tokens, word_ids))]


def word_tag_probabilities(features, logits: Sequence[np.ndarray], num_words: int, num_labels: int) -> np.ndarray:
    """(N, C): for one example, the softmax over tags at the piece that scores each word, the
    position ``ner_logits_to_tags`` reads (``features["word_ids"]`` >= 0); zeros if unscored."""
    table = np.zeros((num_words, num_labels))
    for word_ids, window in zip(features["word_ids"], logits):
        for position, word in enumerate(word_ids):
            if word >= 0:
                table[word] = softmax_rows(window[position])
    return table


def subword_view(pipeline, text_or_words: str | Sequence[str], tags: Sequence[str] | None = None) -> SubwordView:
    """The sentence's pieces, their labels and the tag probabilities of every word.

    ``tags``: gold tags to put on the label row (default: the model's predicted tags).
    """
    words = split_words(text_or_words)[0] if isinstance(text_or_words, str) else list(text_or_words)
    names = pipeline.label_names
    if not words:
        return SubwordView([], [], [], np.zeros((0, len(names))), names)
    features = pipeline.ner_features([words])
    probabilities = word_tag_probabilities(features, window_logits(pipeline, features, "ner"), len(words), len(names))
    predicted = [names[int(row.argmax())] if row.any() else "O" for row in probabilities]
    encoding = pipeline.tokenizer(words, is_split_into_words=True)
    pieces = piece_rows(encoding.tokens(), encoding.word_ids(), list(tags) if tags is not None else predicted)
    return SubwordView(words, pieces, predicted, probabilities, names)


# -- 2. QA span map --------------------------------------------------------------------------------
class TokenScore(NamedTuple):
    """A context token of one window: characters [start, end) and P(answer starts / ends here)."""

    start: int
    end: int
    start_probability: float
    end_probability: float


@dataclass
class Window:
    """One QA window: its number and its context tokens (question and special tokens left out)."""

    index: int
    tokens: list[TokenScore]

    @property
    def char_start(self) -> int:
        return self.tokens[0].start if self.tokens else 0

    @property
    def char_end(self) -> int:
        return self.tokens[-1].end if self.tokens else 0


@dataclass
class SpanMap:
    """Start/end probabilities of every window of a context, and the ranked answers (best first)."""

    question: str
    context: str
    windows: list[Window]
    answers: list[dict] = field(default_factory=list)

    def overlaps(self) -> list[tuple[int, int]]:
        """Character ranges that two neighbouring windows share (the ``doc_stride`` overlap)."""
        return [(after.char_start, before.char_end) for before, after in zip(self.windows, self.windows[1:])
                if after.char_start < before.char_end]

    def windows_holding(self, start: int, end: int) -> list[int]:
        """Numbers of the windows whose context holds all of characters [start, end)."""
        return [window.index for window in self.windows if window.char_start <= start and end <= window.char_end]


def window_scores(features, start_logits: Sequence, end_logits: Sequence) -> list[Window]:
    """Windows with P(start) and P(end) per context token: a softmax over all T positions of the
    window, as the training loss sees them. ``features["offset_mapping"]``: (F, T), None outside
    the context (``prepare_qa_eval_features``)."""
    windows = []
    for index, (offsets, starts, ends) in enumerate(zip(features["offset_mapping"], start_logits, end_logits)):
        start_probabilities, end_probabilities = softmax_rows(starts), softmax_rows(ends)
        tokens = [TokenScore(int(offset[0]), int(offset[1]), float(start_probabilities[position]),
                             float(end_probabilities[position]))
                  for position, offset in enumerate(offsets[: len(starts)]) if offset is not None]
        windows.append(Window(index, tokens))
    return windows


def span_map(pipeline, question: str, context: str, top_k: int = 5) -> SpanMap:
    """The span map of ``question`` in ``context``: the pipeline's windows and answers."""
    _, features = pipeline.qa_features([question], [context])
    logits = window_logits(pipeline, features, "qa")
    windows = window_scores(features, [start for start, _ in logits], [end for _, end in logits])
    answers = pipeline.qa(question, context, top_k=top_k)
    return SpanMap(question, context, windows, [answers] if isinstance(answers, Mapping) else list(answers))


# -- 3. example browser ----------------------------------------------------------------------------
class EntityError(NamedTuple):
    """One row of an NER comparison; entities are ``(type, first word, last word + 1)``.

    kind: "correct", "missed" (gold, no prediction over it), "spurious" (predicted, no gold under
    it), "wrong type" (same words, other type), "wrong boundary" (overlapping, other words; the
    type may differ too)."""

    kind: str
    gold: tuple | None
    predicted: tuple | None


def _overlap(first: tuple, second: tuple) -> bool:
    return first[1] < second[2] and second[1] < first[2]


def compare_entities(gold: Sequence[tuple], predicted: Sequence[tuple]) -> list[EntityError]:
    """Gold entities against predicted ones, one row per entity, in order of position."""
    rows, used = [], set()
    for entity in gold:
        same_words = [guess for guess in predicted if guess[1:] == entity[1:]]
        overlapping = [guess for guess in predicted if _overlap(guess, entity)]
        if same_words:
            guess = same_words[0]
            rows.append(EntityError("correct" if guess[0] == entity[0] else "wrong type", entity, guess))
        elif overlapping:
            guess = overlapping[0]
            rows.append(EntityError("wrong boundary", entity, guess))
        else:
            rows.append(EntityError("missed", entity, None))
            continue
        used.add(guess)
    for guess in predicted:
        if guess in used:
            continue
        under = [entity for entity in gold if _overlap(guess, entity)]
        rows.append(EntityError("wrong boundary", under[0], guess) if under else EntityError("spurious", None, guess))
    return sorted(rows, key=lambda row: ((row.gold or row.predicted)[1], (row.predicted or row.gold)[1]))


@dataclass
class NerExample:
    """A sentence with its gold and predicted tags (one per word) and the entity comparison."""

    words: list[str]
    gold_tags: list[str]
    predicted_tags: list[str]
    errors: list[EntityError]


def ner_example(pipeline, words: Sequence[str], gold_tags: Sequence[str]) -> NerExample:
    """Tag ``words`` with the pipeline and compare the entities with ``gold_tags``."""
    predicted = pipeline.ner_tags(list(words))
    return NerExample(list(words), list(gold_tags), list(predicted),
                      compare_entities(iob2_spans(gold_tags), iob2_spans(predicted)))


@dataclass
class QaExample:
    """A question with its gold answers, the predicted answer, and SQuAD EM and F1 (0-100)."""

    question: str
    context: str
    gold: list[dict]
    predicted: dict
    exact_match: float
    f1: float


def qa_example(pipeline, row: Mapping) -> QaExample:
    """Answer one SQuAD row (``question``, ``context``, ``answers``) and score it."""
    answers = row["answers"]
    gold = [{"answer": text, "start": int(start), "end": int(start) + len(text)}
            for text, start in zip(answers["text"], answers["answer_start"])]
    predicted = pipeline.qa(row["question"], row["context"])
    references = [answer["answer"] for answer in gold]
    return QaExample(row["question"], row["context"], gold, predicted,
                     100 * exact_match(predicted["answer"], references), 100 * token_f1(predicted["answer"], references))


def tag_names(dataset) -> list[str]:
    """The tag names of a CoNLL-style dataset's ``ner_tags`` column."""
    return dataset.features["ner_tags"].feature.names
