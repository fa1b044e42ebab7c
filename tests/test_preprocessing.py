"""Invariants of the NER label alignment, the QA windows and the span post-processing.

All examples are invented here; none comes from CoNLL or SQuAD.
"""
import copy

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, List, Value

from nerqa_helpers.data import NER_LABELS
from nerqa_helpers.postprocessing import ner_logits_to_tags, postprocess_qa_predictions
from nerqa_helpers.preprocessing import (
    prepare_ner_features,
    prepare_qa_eval_features,
    prepare_qa_train_features,
    tokenize_ner,
    tokenize_qa,
)

ID = {name: i for i, name in enumerate(NER_LABELS)}

# -- NER examples ----------------------------------------------------------------------------------

SENTENCES = [
    (["Marisol", "Quenby", "flew", "to", "Vantorsk", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    # "\x07" is a control character the tokenizer drops: the word has no sub-word at all.
    (["The", "\x07", "Glimmerfold", "Cooperative", "sued", "Pellamy"], ["O", "O", "B-ORG", "I-ORG", "O", "B-PER"]),
    (["\x07", "Zyxbrontolian", "weavers", "met"], ["O", "B-MISC", "O", "O"]),
    ([], []),
]
_LONG_WORDS = ["Thornwhistle", "gathered", "Brackenquay", "unquestionably", "Oberlintz", "ferries", "and",
               "Hollowmere", "Syndicate", "barges", "near", "Quillithorpe", "."]
_LONG_TAGS = ["B-PER", "O", "B-LOC", "O", "B-ORG", "O", "O", "B-ORG", "I-ORG", "O", "O", "B-LOC", "O"]
SENTENCES.append((_LONG_WORDS * 6, _LONG_TAGS * 6))  # far longer than the test max_length


def ner_dataset():
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=NER_LABELS))})
    return Dataset.from_dict({"tokens": [words for words, _ in SENTENCES],
                              "ner_tags": [[ID[tag] for tag in tags] for _, tags in SENTENCES]}, features=features)


def one_hot_from_labels(labels):
    """Logits (T, C) that put the label of every labelled position on top (O elsewhere)."""
    logits = np.zeros((len(labels), len(NER_LABELS)))
    for position, label in enumerate(labels):
        logits[position, label if label >= 0 else ID["O"]] = 5.0
    return logits


WINDOWS = [(128, 32), (16, 4), (12, 5), (9, 2)]


@pytest.mark.parametrize("max_length,stride", WINDOWS)
def test_gold_labels_decode_to_gold_tags(tokenizer, max_length, stride):
    features = tokenize_ner(ner_dataset(), tokenizer, max_length=max_length, stride=stride)
    if max_length < 64:
        assert len(features) > len(SENTENCES), "the long sentence must be split into windows"
    predictions = [one_hot_from_labels(labels) for labels in features["labels"]]
    tags = ner_logits_to_tags(features, predictions, [len(words) for words, _ in SENTENCES], NER_LABELS)
    assert tags == [gold for _, gold in SENTENCES]


@pytest.mark.parametrize("max_length,stride", WINDOWS)
def test_every_word_scored_once_at_its_first_subword(tokenizer, max_length, stride):
    examples = ner_dataset()[:]
    features = prepare_ner_features(examples, tokenizer, max_length=max_length, stride=stride)
    seen = {}
    for window, (example, word_ids) in enumerate(zip(features["example_index"], features["word_ids"])):
        for position, word in enumerate(word_ids):
            if word >= 0:
                assert (example, word) not in seen, "a word is scored in two windows"
                seen[(example, word)] = features["input_ids"][window][position]
                assert features["labels"][window][position] == examples["ner_tags"][example][word]
            else:
                assert features["labels"][window][position] == -100
    for example, words in enumerate(examples["tokens"]):
        whole = tokenizer(words, is_split_into_words=True)  # no truncation: the reference alignment
        firsts = {}
        for position, word in enumerate(whole.word_ids()):
            if word is not None and word not in firsts:
                firsts[word] = whole["input_ids"][position]
        scored = {word: token for (owner, word), token in seen.items() if owner == example}
        assert scored == firsts  # same words (dropped ones excluded), same first sub-word


SINGLE_TOKEN_WORDS = ("the of and to in is was for on as with by at from his an were are which this be has had "
                      "it one not but after new first also their have or two its all three time").split()


@pytest.mark.parametrize("max_length,stride", [(12, 5), (9, 2), (16, 7)])
def test_each_word_is_scored_where_it_has_most_context(tokenizer, max_length, stride):
    words = SINGLE_TOKEN_WORDS
    features = prepare_ner_features({"tokens": [words]}, tokenizer, max_length=max_length, stride=stride)
    ids = tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(words)  # one token per word: window k holds words first[k] .. last[k]
    length, step = max_length - 2, max_length - 2 - stride
    first = list(range(0, len(words) - stride, step))
    last = [min(start + length, len(words)) - 1 for start in first]
    assert [row[1:-1] for row in features["input_ids"]] == [ids[a:b + 1] for a, b in zip(first, last)]
    for word in range(len(words)):
        holding = [k for k in range(len(first)) if first[k] <= word <= last[k]]
        context = [min(word - first[k], last[k] - word) for k in holding]
        window = holding[context.index(max(context))]  # the earliest of the most central
        position = word - first[window] + 1
        assert features["word_ids"][window][position] == word
        assert sum(row.count(word) for row in features["word_ids"]) == 1


def test_window_starting_inside_a_word_does_not_score_it(tokenizer):
    words = ["Zorblaxianquintessence", "is", "unpronounceable"]
    features = prepare_ner_features({"tokens": [words]}, tokenizer, max_length=6, stride=2)
    assert len(features["input_ids"]) > 2
    assert "labels" not in features  # no tags: inference features
    scored = [word for row in features["word_ids"] for word in row if word >= 0]
    assert sorted(scored) == [0, 1, 2]
    word_zero = [row.index(0) for row in features["word_ids"] if 0 in row]
    assert word_zero == [1] and features["word_ids"][0][1] == 0  # only the first window has its start


def test_label_all_subwords_turns_b_into_i(tokenizer):
    examples = ner_dataset()[:]
    plain = prepare_ner_features(examples, tokenizer, max_length=16, stride=4)
    every = prepare_ner_features(examples, tokenizer, max_length=16, stride=4, label_all_subwords=True)
    same_windows = tokenizer(examples["tokens"], is_split_into_words=True, truncation=True, max_length=16,
                             stride=4, return_overflowing_tokens=True)
    continuations = 0
    for window, word_ids in enumerate(every["word_ids"]):
        example = every["example_index"][window]
        words_here = {word for word in word_ids if word >= 0}
        pieces = same_windows.word_ids(window)  # every token's word, scored or not
        for position, word in enumerate(pieces):
            label = every["labels"][window][position]
            if word_ids[position] >= 0:
                assert label == plain["labels"][window][position]
            elif word in words_here:
                continuations += 1
                gold = NER_LABELS[examples["ner_tags"][example][word]]
                assert NER_LABELS[label] == ("I-" + gold[2:] if gold != "O" else "O")
            else:
                assert label == -100
    assert continuations > 10


def test_dropped_word_is_o_and_keeps_alignment(tokenizer):
    features = tokenize_ner(ner_dataset(), tokenizer)
    predictions = [np.full(len(ids), ID["B-LOC"]) for ids in features["input_ids"]]
    tags = ner_logits_to_tags(features, predictions, [len(words) for words, _ in SENTENCES], NER_LABELS)
    assert tags[1] == ["B-LOC", "O", "B-LOC", "B-LOC", "B-LOC", "B-LOC"]
    assert tags[2] == ["O", "B-LOC", "B-LOC", "B-LOC"]
    assert tags[3] == []


def test_prediction_formats_agree(tokenizer):
    features = tokenize_ner(ner_dataset(), tokenizer, max_length=12, stride=5)
    logits = [one_hot_from_labels(labels) for labels in features["labels"]]
    width = max(len(row) for row in logits)
    padded = np.stack([np.pad(row, ((0, width - len(row)), (0, 0))) for row in logits])  # (F, T, C)
    counts = [len(words) for words, _ in SENTENCES]
    expected = ner_logits_to_tags(features, logits, counts, NER_LABELS)
    assert ner_logits_to_tags(features, padded, counts, NER_LABELS) == expected
    assert ner_logits_to_tags(features, padded.argmax(-1), counts, NER_LABELS) == expected
    with pytest.raises(ValueError):
        ner_logits_to_tags(features, logits[:-1], counts, NER_LABELS)


def test_stride_is_capped_for_short_windows(tokenizer):
    features = tokenize_ner(ner_dataset(), tokenizer, max_length=12)  # default stride 32 > 10 tokens of room
    tags = ner_logits_to_tags(features, [one_hot_from_labels(labels) for labels in features["labels"]],
                              [len(words) for words, _ in SENTENCES], NER_LABELS)
    assert tags == [gold for _, gold in SENTENCES]


def test_tokenize_ner_columns(tokenizer):
    features = tokenize_ner(ner_dataset(), tokenizer, max_length=16, stride=4)
    assert set(features.column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels",
                                          "example_index", "word_ids"}
    assert sorted(set(features["example_index"])) == list(range(len(SENTENCES)))
    assert all(len(row) <= 16 for row in features["input_ids"])


# -- QA examples -----------------------------------------------------------------------------------

_PARAGRAPH = (
    "The lighthouse on Brenvik Point was built in 1871 by the engineer Odalys Fennimore. "
    "Its lamp burned whale oil until 1902, when the keepers switched to kerosene. "
    "Every winter the keeper counted the gulls, and in 1934 the tally reached 4,812 birds. "
    "A small naïve painting of the tower hangs in the Harbour Café of Sølvvik today. "
    "Storms cracked the lantern glass twice, first in 1911 and again in 1956. "
    "After automation in 1988 the cottage became a museum about coastal signalling. "
    "Visitors climb ninety-seven steps to reach the gallery, where the wind rarely rests. "
    "The museum's archive keeps the keepers' logbooks, bound in green canvas."
)


def qa_examples():
    rows = [
        ("q-engineer", "Who built the lighthouse?", "Odalys Fennimore"),
        ("q-fuel", "What did the lamp burn before kerosene?", "whale oil"),
        ("q-tally", "How many birds were counted in 1934?", "4,812 birds"),
        ("q-cafe", "Where does the painting hang?", "Harbour Café of Sølvvik"),
        ("q-steps", "How many steps lead to the gallery?", "ninety-seven steps"),
        ("q-archive", "How are the logbooks bound?", "green canvas"),
        ("q-none", "Who painted the ferry?", None),  # unanswerable (SQuAD v2 style)
    ]
    answers = [{"text": [text], "answer_start": [_PARAGRAPH.index(text)]} if text else {"text": [], "answer_start": []}
               for _, _, text in rows]
    return Dataset.from_dict({"id": [r[0] for r in rows], "title": ["Brenvik"] * len(rows),
                              "context": [_PARAGRAPH] * len(rows), "question": ["  " + r[1] for r in rows],
                              "answers": answers})


QA_WINDOWS = [(384, 128), (64, 16), (48, 20)]


def gold_token_span(offsets, start_char, end_char):
    """Tokens whose offsets start at start_char and end at end_char, found independently of the module."""
    starts = [p for p, o in enumerate(offsets) if o is not None and o[0] == start_char]
    ends = [p for p, o in enumerate(offsets) if o is not None and o[1] == end_char]
    return (starts[0], ends[0]) if starts and ends else None


@pytest.mark.parametrize("max_length,doc_stride", QA_WINDOWS)
def test_training_positions_decode_to_the_answer(tokenizer, max_length, doc_stride):
    examples = qa_examples()
    train = tokenize_qa(examples, tokenizer, "train", max_length=max_length, doc_stride=doc_stride)
    evaluation = tokenize_qa(examples, tokenizer, "eval", max_length=max_length, doc_stride=doc_stride)
    assert train["input_ids"] == evaluation["input_ids"]  # same windows, one by one
    if max_length < 100:
        assert len(train) > 2 * len(examples)
    row_of = {key: row for row, key in enumerate(examples["id"])}
    found = set()
    for window in range(len(train)):
        example = examples[row_of[evaluation["example_id"][window]]]
        offsets = evaluation["offset_mapping"][window]
        start, end = train["start_positions"][window], train["end_positions"][window]
        if not example["answers"]["text"]:
            assert start == end == 0
            continue
        answer, start_char = example["answers"]["text"][0], example["answers"]["answer_start"][0]
        gold = gold_token_span(offsets, start_char, start_char + len(answer))
        if gold is None:
            assert start == end == 0, "a window without the whole answer must point at [CLS]"
        else:
            assert (start, end) == gold
            assert example["context"][offsets[start][0]:offsets[end][1]] == answer
            found.add(example["id"])
    assert found == {key for key, answers in zip(examples["id"], examples["answers"]) if answers["text"]}


@pytest.mark.parametrize("max_length,doc_stride", QA_WINDOWS)
def test_windows_cover_the_whole_context(tokenizer, max_length, doc_stride):
    examples = qa_examples()
    features = prepare_qa_eval_features(examples[:], tokenizer, max_length=max_length, doc_stride=doc_stride)
    assert all(len(ids) <= max_length for ids in features["input_ids"])
    covered = {key: set() for key in examples["id"]}
    for example_id, offsets, types in zip(features["example_id"], features["offset_mapping"], features["token_type_ids"]):
        for offset, token_type in zip(offsets, types):
            if offset is not None:
                assert token_type == 1  # only context tokens keep offsets
                covered[example_id].update(range(*offset))
    needed = {i for i, char in enumerate(_PARAGRAPH) if not char.isspace()}
    for example_id in examples["id"]:
        assert needed <= covered[example_id]


def gold_logits(examples, features, rng, cls_logit=0.0, peak=12.0):
    """Noise everywhere; a large logit at the gold start/end in each window that holds the answer."""
    answers = {row["id"]: row["answers"] for row in examples}
    starts, ends = [], []
    for example_id, offsets in zip(features["example_id"], features["offset_mapping"]):
        start, end = rng.normal(0, 1, len(offsets)), rng.normal(0, 1, len(offsets))
        start[0] = end[0] = cls_logit
        answer = answers[example_id]
        if answer["text"]:
            first = answer["answer_start"][0]
            gold = gold_token_span(offsets, first, first + len(answer["text"][0]))
            if gold is not None:
                start[gold[0]], end[gold[1]] = peak, peak
                start[0] = end[0] = -peak
        starts.append(start)
        ends.append(end)
    return starts, ends


@pytest.mark.parametrize("max_length,doc_stride", QA_WINDOWS)
def test_gold_logits_give_exact_match_100(tokenizer, max_length, doc_stride):
    examples = qa_examples().select(range(6))  # answerable ones
    features = tokenize_qa(examples, tokenizer, "eval", max_length=max_length, doc_stride=doc_stride)
    starts, ends = gold_logits(examples, features, np.random.default_rng(0))
    predictions = postprocess_qa_predictions(examples, features, starts, ends)
    for row in examples:
        prediction = predictions[row["id"]]
        assert prediction["text"] == row["answers"]["text"][0]
        assert prediction["start"] == row["answers"]["answer_start"][0]
        assert prediction["score"] == max(entry["score"] for entry in prediction["n_best"])


def test_version_2_unanswerable_gives_empty_text(tokenizer):
    examples = qa_examples()
    features = tokenize_qa(examples, tokenizer, "eval", max_length=64, doc_stride=16)
    # [CLS] is high in every window that lacks the answer, low where the answer is.
    starts, ends = gold_logits(examples, features, np.random.default_rng(1), cls_logit=15.0)
    # 15 + 15 beats the gold span (12 + 12) there: only the smallest null score over windows works.
    predictions = postprocess_qa_predictions(examples, features, starts, ends, version_2=True)
    assert predictions["q-none"]["text"] == "" and predictions["q-none"]["n_best"]
    for row in examples.select(range(6)):
        assert predictions[row["id"]]["text"] == row["answers"]["text"][0]
    version_1 = postprocess_qa_predictions(examples, features, starts, ends)
    assert version_1["q-none"]["text"] != ""  # without v2 there is always a span
    strict = postprocess_qa_predictions(examples, features, starts, ends, version_2=True, null_threshold=-1e9)
    assert all(answer["text"] == "" for answer in strict.values())


@pytest.mark.parametrize("version_2", [False, True])
def test_spans_stay_inside_the_context(tokenizer, version_2):
    examples = qa_examples()
    features = tokenize_qa(examples, tokenizer, "eval", max_length=48, doc_stride=20)
    rng = np.random.default_rng(2)
    starts = [rng.normal(0, 3, len(ids)) for ids in features["input_ids"]]
    ends = [rng.normal(0, 3, len(ids)) for ids in features["input_ids"]]
    context_tokens = {tuple(o) for row in features["offset_mapping"] for o in row if o is not None}
    for max_answer_length in (1, 30):
        predictions = postprocess_qa_predictions(examples, features, starts, ends, n_best_size=5,
                                                 max_answer_length=max_answer_length, version_2=version_2)
        assert set(predictions) == set(examples["id"])
        for row in examples:
            prediction = predictions[row["id"]]
            assert 0 < len(prediction["n_best"]) <= 5
            assert prediction["text"] == row["context"][prediction["start"]:prediction["end"]]
            for entry in prediction["n_best"]:
                assert 0 <= entry["start"] < entry["end"] <= len(row["context"])
                assert entry["text"] == row["context"][entry["start"]:entry["end"]]
                if max_answer_length == 1:
                    assert (entry["start"], entry["end"]) in context_tokens
            probabilities = [entry["score"] for entry in prediction["n_best"]]
            assert probabilities == sorted(probabilities, reverse=True)
            assert sum(probabilities) <= 1.0 + 1e-9


def test_left_padding_tokenizer_puts_context_first(tokenizer):
    left = copy.deepcopy(tokenizer)
    left.padding_side = "left"
    examples = qa_examples()
    train = prepare_qa_train_features(examples[:], left, max_length=64, doc_stride=16)
    evaluation = prepare_qa_eval_features(examples[:], left, max_length=64, doc_stride=16)
    decoded = set()
    for window, example_id in enumerate(evaluation["example_id"]):
        start, end = train["start_positions"][window], train["end_positions"][window]
        offsets = evaluation["offset_mapping"][window]
        assert offsets[1] is not None  # context right after [CLS]
        if start:
            decoded.add(_PARAGRAPH[offsets[start][0]:offsets[end][1]])
    assert decoded == {text for answers in examples["answers"] for text in answers["text"]}


def test_tokenize_qa_columns(tokenizer):
    examples = qa_examples()
    train = tokenize_qa(examples, tokenizer, "train", max_length=64, doc_stride=16)
    evaluation = tokenize_qa(examples, tokenizer, "eval", max_length=64, doc_stride=16)
    assert set(train.column_names) == {"input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"}
    assert set(evaluation.column_names) == {"input_ids", "attention_mask", "token_type_ids", "example_id", "offset_mapping"}
    with pytest.raises(ValueError):
        tokenize_qa(examples, tokenizer, "test")


def test_example_index_counts_rows_across_map_batches(tokenizer):
    rows = 2500  # more than one batch of datasets.map (1000 rows)
    dataset = Dataset.from_dict({"tokens": [["harbour", str(i)] for i in range(rows)], "ner_tags": [[0, 0]] * rows})
    features = tokenize_ner(dataset, tokenizer)
    assert features["example_index"] == list(range(rows))


def test_null_threshold_decides_between_span_and_no_answer(tokenizer):
    examples = qa_examples().select([6])
    features = tokenize_qa(examples, tokenizer, "eval", max_length=48, doc_stride=20)
    starts = [np.zeros(len(ids)) for ids in features["input_ids"]]
    ends = [np.zeros(len(ids)) for ids in features["input_ids"]]
    for start, end in zip(starts, ends):
        start[0] = end[0] = 3.0  # null score 6 in every window
    word = features["offset_mapping"][0].index(next(o for o in features["offset_mapping"][0] if o is not None))
    starts[0][word] = ends[0][word] = 2.5  # one one-token span with logit 5: null - best = 1
    for threshold, empty in [(0.0, True), (0.9, True), (1.1, False)]:
        answer = postprocess_qa_predictions(examples, features, starts, ends, version_2=True, null_threshold=threshold)["q-none"]
        assert (answer["text"] == "") == empty and answer["null_score"] == 6.0
        assert answer["n_best"][0]["logit"] == 5.0
