"""From words and paragraphs to model features: sub-word labels for NER, overlapping windows for QA.

NER: a sentence comes as words with one tag each, and the tokenizer cuts words into sub-words.
The first sub-word of a word carries the word's label; the other positions get -100, which the
loss ignores (``postprocessing.ner_logits_to_tags`` reads the word's tag back at that sub-word).
With document context (``context_tokens`` > 0) the sentence's neighbours share its window,
unlabelled: ``[CLS] context_left  sentence  context_right [SEP]``, labels only on the sentence.

QA: a (question, context) pair longer than ``max_length`` becomes several overlapping windows
that share ``doc_stride`` tokens. A training window is labelled with the token positions of the
answer, or with the [CLS] position 0 when it does not hold the whole answer. Evaluation windows
keep ``offset_mapping``, with which ``postprocessing`` turns the best span back into characters.

Features are not padded here: the collators in ``sampling`` pad each batch.
"""
from __future__ import annotations

from typing import Sequence

from datasets import DatasetDict

from .base import NER_LABELS
from .presets import DEFAULTS

# -- NER ----------------------------------------------------------------------------------------


def prepare_ner_features(examples, tokenizer, max_length: int = DEFAULTS.ner_max_length, stride: int = DEFAULTS.ner_stride,
                         label_all_subwords: bool = False, label_names: Sequence[str] | None = None,
                         indices: Sequence[int] | None = None, context_tokens: int = 0) -> dict:
    """Batched ``datasets.map`` function: words → sub-word windows with aligned labels.

    examples: {"tokens": B lists of words, "ner_tags": B lists of tag ids (optional)}.
    Returns F >= B features (a long sentence gives several windows sharing ``stride`` tokens),
    each of length T <= ``max_length``: ``input_ids``, ``attention_mask``, ``token_type_ids`` (T,),
    ``labels`` (T,), ``word_ids`` (T,) = the word a token scores or -1, and ``example_index``
    = ``indices[b]`` (default: b, the position in this batch).
    With ``label_all_subwords`` the later sub-words of a word are labelled too, B-X becoming I-X
    (``label_names`` gives the tag names; default ``NER_LABELS``). ``stride`` is capped at half
    the room for words in a window, so a small ``max_length`` still works with the default stride.
    With ``context_tokens`` > 0 and ``context_left`` / ``context_right`` columns (from
    ``context.add_document_context``), a window is left context + sentence + right context
    (:func:`fit_contexts`); context tokens get label -100 and word id -1, so ``word_ids`` still
    index the sentence's own words. ``context_tokens`` = 0: the sentence-only windows.
    """
    stride = min(stride, (max_length - tokenizer.num_special_tokens_to_add()) // 2)
    sentences = examples["tokens"]
    lefts, rights = fit_contexts(examples, tokenizer, max_length, context_tokens)
    encodings = tokenizer([left + list(words) + right for left, words, right in zip(lefts, sentences, rights)],
                          is_split_into_words=True, truncation=True, max_length=max_length, stride=stride,
                          return_overflowing_tokens=True)
    owners = encodings.pop("overflow_to_sample_mapping")
    indices = list(range(len(sentences))) if indices is None else list(indices)
    word_ids = [target_word_ids(encodings.word_ids(window), len(lefts[owner]), len(sentences[owner]))
                for window, owner in enumerate(owners)]  # (F, T): the sentence's words; None elsewhere
    features = dict(encodings)
    features["example_index"] = [indices[owner] for owner in owners]
    features["word_ids"] = scored_word_ids(word_ids, owners)
    if "ner_tags" in examples:
        inside = inside_tag_ids(label_names or NER_LABELS) if label_all_subwords else None
        features["labels"] = [
            window_labels(word_ids[window], scored, examples["ner_tags"][owner], inside)
            for window, (owner, scored) in enumerate(zip(owners, features["word_ids"]))
        ]
    return features


def target_word_ids(word_ids: Sequence[int | None], context_words: int, sentence_words: int) -> list[int | None]:
    """One window's ``word_ids()`` over left context + sentence + right context → indices into the
    sentence's words (T,): ``None`` for special and context tokens."""
    return [word - context_words if word is not None and 0 <= word - context_words < sentence_words else None
            for word in word_ids]


def scored_word_ids(word_ids: Sequence[Sequence[int | None]], owners: Sequence[int]) -> list[list[int]]:
    """For each window (F, T): the word each token scores, or -1. Every word is scored once.

    word_ids: per window, the word of each token or None (special tokens, context). A word is
    scored at its first sub-word, in the window where that sub-word has the most
    context: the largest min(tokens to the window's first content token, tokens to its last);
    ties go to the earlier window. A window may begin inside a word: that word's piece then sits
    at the left edge with context 0, so the earlier window, which holds the real first sub-word,
    wins. A word whose characters the tokenizer drops has no sub-word and stays unscored.
    """
    best: dict = {}  # (example, word) -> (context, window, position)
    for window, owner in enumerate(owners):
        content = [p for p, word in enumerate(word_ids[window]) if word is not None]
        for word, position in first_positions(word_ids[window]).items():
            context = min(position - content[0], content[-1] - position)
            if (owner, word) not in best or context > best[(owner, word)][0]:
                best[(owner, word)] = (context, window, position)
    scored = [[-1] * len(ids) for ids in word_ids]
    for (_, word), (_, window, position) in best.items():
        scored[window][position] = word
    return scored


def first_positions(word_ids: Sequence[int | None]) -> dict[int, int]:
    """{word: position of its first token in this window} for one window's ``word_ids()``."""
    positions: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None and word not in positions:
            positions[word] = position
    return positions


def window_labels(word_ids, scored: Sequence[int], tags: Sequence[int], inside=None) -> list[int]:
    """Labels (T,) of one window: the word's tag where it is scored, -100 elsewhere.

    With ``inside`` (tag id → I- tag id), later sub-words of a word scored in this window get
    the I- tag of the word's type.
    """
    words_here = {word for word in scored if word >= 0}
    labels = []
    for word, scored_word in zip(word_ids, scored):
        if scored_word >= 0:
            labels.append(tags[scored_word])
        elif inside is not None and word in words_here:
            labels.append(inside[tags[word]])
        else:
            labels.append(-100)
    return labels


def inside_tag_ids(label_names: Sequence[str]) -> list[int]:
    """Tag id → id of the I- tag of the same type (B-PER → I-PER; I- and O map to themselves)."""
    index = {name: i for i, name in enumerate(label_names)}
    return [index.get("I-" + name[2:], i) if name.startswith("B-") else i for i, name in enumerate(label_names)]


def tokenize_ner(dataset_or_dict, tokenizer, **kwargs):
    """``prepare_ner_features`` over a ``Dataset`` (or every split of a ``DatasetDict``) in one map.

    The original columns are removed (the context columns too); ``example_index`` is the row number in
    ``dataset``. ``kwargs`` go to it (``max_length``, ``stride``, ``context_tokens``, ...).
    Tag names for ``label_all_subwords`` come from the ``ner_tags`` ClassLabel when there is one.
    """
    if isinstance(dataset_or_dict, DatasetDict):
        return DatasetDict({name: tokenize_ner(split, tokenizer, **kwargs)
                                      for name, split in dataset_or_dict.items()})
    tags = dataset_or_dict.features.get("ner_tags")
    names = getattr(getattr(tags, "feature", None), "names", None)
    if names and "label_names" not in kwargs:
        kwargs["label_names"] = names
    return dataset_or_dict.map(
        lambda batch, indices: prepare_ner_features(batch, tokenizer, indices=indices, **kwargs),
        batched=True, with_indices=True, remove_columns=dataset_or_dict.column_names,
        desc="Tokenizing NER")


# -- NER with document context -----------------------------------------------------------------


def fit_contexts(examples, tokenizer, max_length: int, context_tokens: int) -> tuple[list[list[str]], list[list[str]]]:
    """The context words (B lists per side) to put around each sentence of a batch.

    With ``context_tokens`` > 0 and ``context_left`` / ``context_right`` in ``examples``: the
    nearest context words of at most ``context_tokens`` sub-words per side, trimmed from the far
    ends until sentence + context fit in ``max_length`` with the special tokens (:func:`fit_context`).
    Otherwise, and for a sentence that alone does not fit, no context. Sub-words are counted
    with one tokenizer call per batch (:func:`subword_counts`).
    """
    sentences = examples["tokens"]
    if context_tokens <= 0 or "context_left" not in examples or "context_right" not in examples:
        return [[] for _ in sentences], [[] for _ in sentences]
    lefts, rights = examples["context_left"], examples["context_right"]
    counts = subword_counts(tokenizer, [word for column in (sentences, lefts, rights) for words in column for word in words])
    room = max_length - tokenizer.num_special_tokens_to_add()
    fitted = [fit_context(left, words, right, counts, context_tokens, room)
              for left, words, right in zip(lefts, sentences, rights)]
    return [left for left, _ in fitted], [right for _, right in fitted]


def subword_counts(tokenizer, words: Sequence[str]) -> dict[str, int]:
    """{word: its number of sub-words} for every distinct word, in one batched tokenizer call
    (each word tokenized as a word of a pre-split sentence, as it is in a window)."""
    distinct = list(dict.fromkeys(words))
    if not distinct:
        return {}
    encoded = tokenizer([[word] for word in distinct], is_split_into_words=True, add_special_tokens=False)
    return {word: len(ids) for word, ids in zip(distinct, encoded["input_ids"])}


def fit_context(left: Sequence[str], words: Sequence[str], right: Sequence[str], counts: dict[str, int],
                context_tokens: int, room: int) -> tuple[list[str], list[str]]:
    """(left, right) context of one sentence: the nearest whole words of at most ``context_tokens``
    sub-words per side, then far-end words dropped (from the side with more sub-words) until
    sentence + context hold at most ``room`` sub-words. ([], []) when the sentence alone does not fit."""
    used = sum(counts[word] for word in words)
    if used > room:
        return [], []
    left_costs = nearest_costs(reversed(left), counts, context_tokens)  # nearest word first
    right_costs = nearest_costs(right, counts, context_tokens)
    while used + sum(left_costs) + sum(right_costs) > room:
        (left_costs if sum(left_costs) >= sum(right_costs) else right_costs).pop()  # the far-end word
    return list(left[len(left) - len(left_costs):]), list(right[:len(right_costs)])


def nearest_costs(words, counts: dict[str, int], budget: int) -> list[int]:
    """Sub-words of the first words of ``words`` (nearest first) that fit in ``budget`` together."""
    costs: list[int] = []
    for word in words:
        if sum(costs) + counts[word] > budget:
            break
        costs.append(counts[word])
    return costs


# -- QA -----------------------------------------------------------------------------------------


def encode_qa_windows(examples, tokenizer, max_length: int, doc_stride: int):
    """Tokenize (question, context) pairs into overlapping windows of at most ``max_length``.

    Only the context is truncated. The question comes first, unless the tokenizer pads on the
    left. Returns the ``BatchEncoding`` (with ``offset_mapping`` and
    ``overflow_to_sample_mapping``) and the sequence id of the context (1, or 0 if it comes first).
    """
    questions = [question.lstrip() for question in examples["question"]]
    context_first = tokenizer.padding_side == "left"
    pair = (examples["context"], questions) if context_first else (questions, examples["context"])
    encodings = tokenizer(*pair, truncation="only_first" if context_first else "only_second",
                          max_length=max_length, stride=doc_stride, return_overflowing_tokens=True,
                          return_offsets_mapping=True)
    return encodings, 0 if context_first else 1


def char_span_to_token_span(offsets, sequence_ids, context_id: int, start_char: int, end_char: int):
    """Token positions (start, end), both inclusive, of characters [start_char, end_char) in one
    window; ``None`` when the window's context does not hold them all."""
    context = [p for p, sequence in enumerate(sequence_ids) if sequence == context_id]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return None
    start = max(p for p in context if offsets[p][0] <= start_char)
    end = min(p for p in context if offsets[p][1] >= end_char)
    return (start, end) if start <= end else None


def prepare_qa_train_features(examples, tokenizer, max_length: int = DEFAULTS.qa_max_length,
                              doc_stride: int = DEFAULTS.doc_stride) -> dict:
    """Batched ``datasets.map`` function: SQuAD examples → training windows.

    examples: {"question", "context", "answers": {"text": [...], "answer_start": [...]}} (B each).
    Returns F >= B windows: ``input_ids``, ``attention_mask``, ``token_type_ids`` (T,) and
    ``start_positions``, ``end_positions`` (ints): the first answer's tokens, or 0 ([CLS]) when the
    window lacks the whole answer or the question has none (SQuAD v2).
    """
    encodings, context_id = encode_qa_windows(examples, tokenizer, max_length, doc_stride)
    owners = encodings.pop("overflow_to_sample_mapping")
    offsets = encodings.pop("offset_mapping")
    starts, ends = [], []
    for window, owner in enumerate(owners):
        answers = examples["answers"][owner]
        span = None
        if answers["text"]:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            span = char_span_to_token_span(offsets[window], encodings.sequence_ids(window), context_id,
                                           start_char, end_char)
        start, end = span or (0, 0)
        starts.append(start)
        ends.append(end)
    return {**encodings, "start_positions": starts, "end_positions": ends}


def prepare_qa_eval_features(examples, tokenizer, max_length: int = DEFAULTS.qa_max_length,
                             doc_stride: int = DEFAULTS.doc_stride) -> dict:
    """Batched ``datasets.map`` function: SQuAD examples → evaluation windows.

    Returns F >= B windows: ``input_ids``, ``attention_mask``, ``token_type_ids`` (T,),
    ``example_id`` (the example's ``id``) and ``offset_mapping`` (T,): (start, end) characters in
    the context for context tokens, ``None`` for question and special tokens.
    """
    encodings, context_id = encode_qa_windows(examples, tokenizer, max_length, doc_stride)
    owners = encodings.pop("overflow_to_sample_mapping")
    encodings["example_id"] = [examples["id"][owner] for owner in owners]
    encodings["offset_mapping"] = [
        [offset if sequence == context_id else None
         for offset, sequence in zip(encodings["offset_mapping"][window], encodings.sequence_ids(window))]
        for window in range(len(owners))
    ]
    return dict(encodings)


def tokenize_qa(dataset, tokenizer, split_kind: str = "train", **kwargs):
    """``prepare_qa_train_features`` (``split_kind="train"``) or ``prepare_qa_eval_features``
    (``"eval"``) over a ``Dataset`` or every split of a ``DatasetDict``, in one batched map."""
    if isinstance(dataset, DatasetDict):
        return DatasetDict({name: tokenize_qa(split, tokenizer, split_kind, **kwargs) for name, split in dataset.items()})
    prepare = {"train": prepare_qa_train_features, "eval": prepare_qa_eval_features}.get(split_kind)
    if prepare is None:
        raise ValueError(f"split_kind must be 'train' or 'eval', got {split_kind!r}")
    return dataset.map(prepare, batched=True, remove_columns=dataset.column_names,
                       fn_kwargs={"tokenizer": tokenizer, **kwargs}, desc=f"Tokenizing QA ({split_kind})")
