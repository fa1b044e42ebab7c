"""From model outputs back to words and spans: the inverse of ``preprocessing``.

NER: the tag predicted at the sub-word that scores a word (``word_ids``) becomes the word's tag.

QA: every window proposes its ``n_best_size`` best start × end token pairs; spans outside the
context, reversed or too long are dropped, ``offset_mapping`` turns the rest into characters of
the context, and the best character span over all windows of an example is its answer. For
SQuAD v2 the [CLS] span (start = end = 0) scores "no answer".
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

import numpy as np


# -- NER ----------------------------------------------------------------------------------------
def ner_logits_to_tags(features, predictions, num_words: Sequence[int], label_names: Sequence[str]) -> list[list[str]]:
    """Word-level tags per example from sub-word predictions.

    features: rows with ``example_index`` and ``word_ids`` (F, T). predictions: one per feature,
    tag ids (T,) or logits (T, C); a list, or an array (F, T) / (F, T, C). num_words: words per
    example (N,). Returns N lists of tags; a word that no window scores is "O".
    """
    if len(predictions) != len(features["word_ids"]):
        raise ValueError(f"{len(predictions)} predictions for {len(features['word_ids'])} features")
    tags = [["O"] * count for count in num_words]
    for example, word_ids, prediction in zip(features["example_index"], features["word_ids"], predictions):
        ids = np.asarray(prediction)
        ids = ids.argmax(axis=-1) if ids.ndim == 2 else ids
        for position, word in enumerate(word_ids):
            if word >= 0:
                tags[example][word] = label_names[int(ids[position])]
    return tags


# -- QA -----------------------------------------------------------------------------------------
def candidate_spans(start_logits, end_logits, offsets, n_best_size: int, max_answer_length: int) -> list:
    """Spans of one window from its ``n_best_size`` best starts × best ends, as
    (logit, start_char, end_char). Spans outside the context, reversed, or longer than
    ``max_answer_length`` tokens are skipped. start_logits, end_logits: (T,); offsets: T entries."""
    length = min(len(start_logits), len(end_logits), len(offsets))
    best_starts = np.argsort(start_logits[:length])[::-1][:n_best_size]
    best_ends = np.argsort(end_logits[:length])[::-1][:n_best_size]
    starts, ends = (grid.ravel() for grid in np.meshgrid(best_starts, best_ends, indexing="ij"))
    in_context = np.array([offset is not None for offset in offsets[:length]], dtype=bool)
    keep = in_context[starts] & in_context[ends] & (ends >= starts) & (ends - starts < max_answer_length)
    return [(float(start_logits[start] + end_logits[end]), offsets[start][0], offsets[end][1])
            for start, end in zip(starts[keep], ends[keep])]


def softmax(logits: Sequence[float]) -> np.ndarray:
    """Probabilities (K,) from K logits (K may be 0)."""
    logits = np.asarray(logits, dtype=np.float64)
    values = np.exp(logits - logits.max()) if logits.size else logits
    return values / values.sum() if logits.size else values


def choose_answer(context: str, spans: list, null_score: float | None, n_best_size: int = 20,
                  version_2: bool = False, null_threshold: float = 0.0) -> dict:
    """The answer of one example from its candidate spans (logit, start_char, end_char).

    The same character span seen in several windows keeps its best logit. ``logit`` is start +
    end logit; ``score`` is a probability: a softmax over the n-best logits, plus the null score
    for SQuAD v2 (the null answer is not listed in ``n_best``). v2 answers "" when
    null_score - best logit > ``null_threshold``; v1 answers "" only when no span is valid.
    """
    best: dict = {}
    for logit, start, end in spans:
        best[(start, end)] = max(logit, best.get((start, end), -math.inf))
    ranked = sorted(best.items(), key=lambda item: -item[1])[:n_best_size]
    with_null = version_2 and null_score is not None
    probabilities = softmax([logit for _, logit in ranked] + ([null_score] if with_null else []))
    n_best = [{"text": context[start:end], "start": start, "end": end, "score": float(probability), "logit": logit}
              for ((start, end), logit), probability in zip(ranked, probabilities)]
    answer = n_best[0] if n_best else {"text": "", "start": 0, "end": 0, "score": 0.0, "logit": None}
    if with_null and (not n_best or null_score - answer["logit"] > null_threshold):
        answer = {"text": "", "start": 0, "end": 0, "score": float(probabilities[-1]), "logit": null_score}
    return {**answer, "null_score": null_score, "n_best": n_best}


def postprocess_qa_predictions(examples, features, start_logits, end_logits, n_best_size: int = 20,
                               max_answer_length: int = 30, version_2: bool = False,
                               null_threshold: float = 0.0) -> dict[str, dict]:
    """Answers per example id from window logits.

    examples: rows with ``id`` and ``context``. features: ``example_id`` and ``offset_mapping``
    (F windows). start_logits, end_logits: one (T,) array per window (a list, or an array (F, T)).
    Returns id → {"text", "start", "end", "score", "logit", "null_score", "n_best": [{"text",
    "start", "end", "score", "logit"}, ...]} with text == context[start:end] always. ``null_score``
    is the smallest [CLS] start + end logit over the example's windows (None without windows).
    """
    windows = defaultdict(list)
    for index, example_id in enumerate(features["example_id"]):
        windows[example_id].append(index)
    offset_mappings = list(features["offset_mapping"])  # one read, not one per window
    answers = {}
    for example in examples:
        spans, null_score = [], None
        for index in windows[example["id"]]:
            starts = np.asarray(start_logits[index], dtype=np.float64)
            ends = np.asarray(end_logits[index], dtype=np.float64)
            window_null = float(starts[0] + ends[0])
            null_score = window_null if null_score is None else min(null_score, window_null)
            spans += candidate_spans(starts, ends, offset_mappings[index], n_best_size, max_answer_length)
        answers[example["id"]] = choose_answer(example["context"], spans, null_score, n_best_size,
                                               version_2, null_threshold)
    return answers
