"""Document context for NER: the neighbouring sentences of a sentence, as extra words in its window.

CoNLL-2003 sentences come in documents (``-DOCSTART-``), and a name is easier to tag with the
sentences around it (FLERT, Schweter & Akbik 2020; the BERT paper's "maximal document context").
Only the target sentence is labelled and scored; its neighbours are context:

    document   ... s[i-2] s[i-1] │ s[i] │ s[i+1] s[i+2] ...
    example        context_left  │tokens│ context_right       (at most max_words words per side)

:func:`add_document_context` adds the two context columns to a NER split (the whole split, before
any subset drops the neighbours); :func:`sentences_in_context` does the same for the texts the
pipeline tags, cut into sentences by :func:`split_sentences`. ``preprocessing.prepare_ner_features``
then fits the context into the window's sub-word budget. Floor 1: datasets only.
"""
from __future__ import annotations

from typing import Sequence

from datasets import Dataset, List, Value

CONTEXT_COLUMNS = ("context_left", "context_right")
SENTENCE_ENDS = frozenset({".", "!", "?"})
"""A word that ends a sentence in :func:`split_sentences`."""


def neighbour_words(words: Sequence[str], spans: Sequence[tuple[int, int]],
                    max_words: int) -> tuple[list[list[str]], list[list[str]]]:
    """Left and right context (S lists of words each) of S sentences ``spans`` (start, end) of ``words``.

    The left context is the ``max_words`` words just before ``start``, the right one the
    ``max_words`` words from ``end`` on: the nearest sentences, whole words, cut at the far end.
    """
    if max_words <= 0:
        return [[] for _ in spans], [[] for _ in spans]
    lefts = [list(words[max(0, start - max_words):start]) for start, _ in spans]
    rights = [list(words[end:end + max_words]) for _, end in spans]
    return lefts, rights


def document_runs(document_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Rows (start, end) of each run of consecutive sentences with the same ``document_id``."""
    runs, start = [], 0
    for row in range(1, len(document_ids) + 1):
        if row == len(document_ids) or document_ids[row] != document_ids[start]:
            runs.append((start, row))
            start = row
    return runs


def document_context(sentences: Sequence[Sequence[str]], document_ids: Sequence[int],
                     max_words: int = 64) -> tuple[list[list[str]], list[list[str]]]:
    """Left and right context words (N lists each) of N sentences in document order.

    Neighbours come from the same document only; document_id -1 (unknown, the hub's copy) gives
    empty contexts.
    """
    lefts, rights = [[] for _ in sentences], [[] for _ in sentences]
    for first, stop in document_runs(document_ids):
        if document_ids[first] < 0:
            continue
        words, spans = [], []
        for sentence in sentences[first:stop]:
            spans.append((len(words), len(words) + len(sentence)))
            words.extend(sentence)
        lefts[first:stop], rights[first:stop] = neighbour_words(words, spans, max_words)
    return lefts, rights


def add_document_context(dataset: Dataset, max_words: int = 64) -> Dataset:
    """``dataset`` (``tokens``, ``document_id``; sentences in document order) with two more columns,
    ``context_left`` and ``context_right`` (lists of words): the words of the preceding / following
    sentences of the same document, nearest sentence nearest to the target, at most ``max_words``
    words per side. Run it on the whole split, before :func:`data.subset` drops the neighbours."""
    columns = dataset.select_columns(["tokens", "document_id"])[:]  # one read, as plain lists
    lefts, rights = document_context(columns["tokens"], columns["document_id"], max_words)
    dataset = dataset.remove_columns([name for name in CONTEXT_COLUMNS if name in dataset.column_names])
    for name, column in zip(CONTEXT_COLUMNS, (lefts, rights)):
        dataset = dataset.add_column(name, column, feature=List(Value("string")))
    return dataset


def split_sentences(words: Sequence[str]) -> list[tuple[int, int]]:
    """Sentences (start, end) of a word list: a sentence ends after a word that is ".", "!" or "?"
    (a run of them, "?!", stays together); the words after the last one are a sentence too.
    ["Hi", ".", "Bob", "!"] → [(0, 2), (2, 4)]."""
    spans, start = [], 0
    for index, word in enumerate(words):
        next_word = words[index + 1] if index + 1 < len(words) else None
        if word in SENTENCE_ENDS and next_word not in SENTENCE_ENDS:
            spans.append((start, index + 1))
            start = index + 1
    if start < len(words):
        spans.append((start, len(words)))
    return spans


def sentences_in_context(word_lists: Sequence[Sequence[str]], max_words: int) -> tuple[list[int], dict]:
    """The rows ``prepare_ner_features`` tags for N word lists: each list cut into sentences
    (:func:`split_sentences`), each sentence with the words around it in the same list as context.

    Returns (owners, {"tokens", "context_left", "context_right"}), R rows in order: owners[r] is the
    list row r comes from, so the rows of a list, joined, give it back. ``max_words`` = 0: one row
    per non-empty list, not cut, without context (the sentence-only windows).
    """
    owners, columns = [], {"tokens": [], "context_left": [], "context_right": []}
    for owner, words in enumerate(word_lists):
        spans = split_sentences(words) if max_words > 0 else ([(0, len(words))] if words else [])
        lefts, rights = neighbour_words(words, spans, max_words)
        owners += [owner] * len(spans)
        columns["tokens"] += [list(words[start:end]) for start, end in spans]
        columns["context_left"] += lefts
        columns["context_right"] += rights
    return owners, columns
