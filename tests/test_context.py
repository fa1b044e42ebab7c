"""Document context for NER: neighbours from the same document, unlabelled context in the window,
the same scoring of the target sentence, and a pipeline that serves a model trained with context.

All sentences are invented here, except those read from the bundled tiny sample.
"""
import json

import pytest
import torch
from datasets import Dataset, DatasetDict, List, Value

from nerqa_helpers import sources
from nerqa_helpers.context import add_document_context, document_context, sentences_in_context, split_sentences
from nerqa_helpers.data import NER_LABELS, load_tiny, ner_features
from nerqa_helpers.evaluation import predict_features
from nerqa_helpers.inference import MultiTaskPipeline, split_words
from nerqa_helpers.model import MultiTaskConfig, MultiTaskModel
from nerqa_helpers.postprocessing import ner_logits_to_tags
from nerqa_helpers.preprocessing import prepare_ner_features, tokenize_ner

ID = {name: i for i, name in enumerate(NER_LABELS)}
DOCUMENTS = [  # (document_id, words, tags)
    (0, ["Marisol", "Quenby", "flew", "to", "Vantorsk", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (0, ["She", "met", "Tobiah", "."], ["O", "O", "B-PER", "O"]),
    (0, ["The", "Glimmerfold", "Cooperative", "paid", "."], ["O", "B-ORG", "I-ORG", "O", "O"]),
    (1, ["Brackenquay", "ferries", "stopped", "."], ["B-LOC", "O", "O", "O"]),
    (1, ["Hollowmere", "Syndicate", "sued", "."], ["B-ORG", "I-ORG", "O", "O"]),
    (-1, ["Oberlintz", "won", "."], ["B-LOC", "O", "O"]),
    (-1, ["Pellamy", "lost", "."], ["B-PER", "O", "O"]),
]
TEXT = "Marisol Quenby flew from Vantorsk to Brackenquay. The Glimmerfold Cooperative sued Tobiah Pellamy in Oberlintz!"


def document_dataset(rows=DOCUMENTS) -> Dataset:
    return Dataset.from_dict({"id": [str(index) for index in range(len(rows))],
                              "document_id": [document for document, _, _ in rows],
                              "tokens": [words for _, words, _ in rows],
                              "ner_tags": [[ID[tag] for tag in tags] for _, _, tags in rows]}, features=ner_features())


def by_hand(sentences, document_ids, max_words):
    """The contexts, walked sentence by sentence (a second way to the same answer)."""
    lefts, rights = [], []
    for index, document in enumerate(document_ids):
        left, right = [], []
        if document >= 0:
            for other in range(index - 1, -1, -1):
                if document_ids[other] != document:
                    break
                left = list(sentences[other]) + left
            for other in range(index + 1, len(sentences)):
                if document_ids[other] != document:
                    break
                right += list(sentences[other])
        lefts.append(left[max(0, len(left) - max_words):] if max_words else [])
        rights.append(right[:max_words])
    return lefts, rights


# -- the context columns ---------------------------------------------------------------------------
def test_context_comes_from_the_same_document_nearest_first_and_capped():
    dataset = add_document_context(document_dataset(), max_words=6)
    assert dataset.features["context_left"] == List(Value("string")) == dataset.features["context_right"]
    assert dataset[0]["context_left"] == [] and dataset[0]["context_right"] == ["She", "met", "Tobiah", ".", "The", "Glimmerfold"]
    assert dataset[1]["context_left"] == ["Marisol", "Quenby", "flew", "to", "Vantorsk", "."]
    assert dataset[2]["context_left"] == ["Vantorsk", ".", "She", "met", "Tobiah", "."]  # cut at the far end
    assert dataset[2]["context_right"] == []  # the next sentence is in another document
    assert dataset[3]["context_left"] == [] and dataset[3]["context_right"] == ["Hollowmere", "Syndicate", "sued", "."]
    assert dataset[4]["context_left"] == ["Brackenquay", "ferries", "stopped", "."]
    assert all(row["context_left"] == row["context_right"] == [] for row in dataset.select([5, 6]))  # unknown documents
    assert add_document_context(dataset, max_words=0)["context_left"][1] == []  # applied again: replaced
    assert dataset.column_names == ["id", "document_id", "tokens", "ner_tags", "context_left", "context_right"]


@pytest.mark.parametrize("max_words", [0, 1, 7, 64])
def test_context_of_the_tiny_sample_matches_a_sentence_by_sentence_walk(max_words):
    split = load_tiny("ner")["train"]
    sentences, document_ids = list(split["tokens"]), list(split["document_id"])
    dataset = add_document_context(split, max_words)
    expected = by_hand(sentences, document_ids, max_words)
    assert (list(dataset["context_left"]), list(dataset["context_right"])) == expected
    assert document_context(sentences, document_ids, max_words) == expected
    assert len(set(document_ids)) > 3
    if max_words:
        assert any(dataset["context_left"]) and all(len(words) <= max_words for words in dataset["context_right"])


def test_split_sentences_ends_after_a_full_stop_question_or_exclamation_mark():
    assert split_sentences([]) == []
    assert split_sentences(["Hi", ".", "Bob", "!"]) == [(0, 2), (2, 4)]
    assert split_sentences(["Really", "?", "!", "Yes"]) == [(0, 3), (3, 4)]  # a run of marks stays together
    assert split_sentences(["U.S.", "envoy", "left"]) == [(0, 3)]
    owners, rows = sentences_in_context([["A", ".", "B", "."], [], ["C"]], max_words=1)
    assert owners == [0, 0, 2] and rows["tokens"] == [["A", "."], ["B", "."], ["C"]]
    assert rows["context_left"] == [[], ["."], []] and rows["context_right"] == [["B"], [], []]
    assert sentences_in_context([["A", ".", "B"], []], max_words=0) == (
        [0], {"tokens": [["A", ".", "B"]], "context_left": [[]], "context_right": [[]]})


# -- features with context -------------------------------------------------------------------------
def context_batch(max_words=64):
    return add_document_context(document_dataset(), max_words)[:]


def subword_ids(tokenizer, words):
    return tokenizer(list(words), is_split_into_words=True, add_special_tokens=False)["input_ids"] if words else []


@pytest.mark.parametrize("context_tokens", [1, 4, 9, 40])
def test_context_fills_the_budget_with_the_nearest_whole_words(tokenizer, context_tokens):
    batch = context_batch()
    features = prepare_ner_features(batch, tokenizer, max_length=128, context_tokens=context_tokens)
    assert features["example_index"] == list(range(len(DOCUMENTS)))  # one window per sentence
    for ids, words, left, right in zip(features["input_ids"], batch["tokens"], batch["context_left"], batch["context_right"]):
        own = subword_ids(tokenizer, words)
        start = next(p for p in range(len(ids)) if ids[p:p + len(own)] == own)
        for side, context, nearest_last in (("left", left, True), ("right", right, False)):
            got = ids[1:start] if side == "left" else ids[start + len(own):-1]
            taken = [n for n in range(len(context) + 1)
                     if subword_ids(tokenizer, context[len(context) - n:] if nearest_last else context[:n]) == got]
            assert taken, f"{side} context is not whole nearest words"
            n = taken[-1]
            assert len(got) <= context_tokens
            if n < len(context):  # one more word would go over the budget
                more = context[len(context) - n - 1:] if nearest_last else context[:n + 1]
                assert len(subword_ids(tokenizer, more)) > context_tokens
    assert any(len(ids) > 2 + len(subword_ids(tokenizer, words))
               for ids, words in zip(features["input_ids"], batch["tokens"])), "no context was added"


@pytest.mark.parametrize("max_length,context_tokens", [(128, 16), (14, 16), (10, 3), (8, 64)])
def test_only_target_words_are_labelled_and_each_is_scored_once(tokenizer, max_length, context_tokens):
    batch = context_batch()
    features = prepare_ner_features(batch, tokenizer, max_length=max_length, context_tokens=context_tokens)
    scored = {}
    for example, word_ids, labels, ids in zip(features["example_index"], features["word_ids"],
                                              features["labels"], features["input_ids"]):
        assert len(ids) <= max_length and len(labels) == len(word_ids) == len(ids)
        for word, label in zip(word_ids, labels):
            assert (label != -100) == (word >= 0)
            if word >= 0:
                assert label == batch["ner_tags"][example][word]
                scored[(example, word)] = scored.get((example, word), 0) + 1
    assert scored == {(example, word): 1 for example, words in enumerate(batch["tokens"]) for word in range(len(words))}


def test_labels_stay_on_the_target_when_all_subwords_are_labelled(tokenizer):
    batch = context_batch()
    features = prepare_ner_features(batch, tokenizer, max_length=64, context_tokens=16, label_all_subwords=True)
    for example, ids, labels in zip(features["example_index"], features["input_ids"], features["labels"]):
        own = len(subword_ids(tokenizer, batch["tokens"][example]))
        assert sum(label != -100 for label in labels) == own  # every sub-word of the sentence, no context token
        assert len(ids) > own + 2 or not (batch["context_left"][example] or batch["context_right"][example])


def test_no_context_gives_exactly_the_sentence_only_features(tokenizer):
    batch = context_batch()
    plain = {key: value for key, value in batch.items() if not key.startswith("context_")}
    today = prepare_ner_features(plain, tokenizer, max_length=12, stride=4)
    assert prepare_ner_features(batch, tokenizer, max_length=12, stride=4) == today
    assert prepare_ner_features(batch, tokenizer, max_length=12, stride=4, context_tokens=0) == today
    assert prepare_ner_features(plain, tokenizer, max_length=12, stride=4, context_tokens=16) == today
    empty = {**batch, "context_left": [[] for _ in batch["tokens"]], "context_right": [[] for _ in batch["tokens"]]}
    assert prepare_ner_features(empty, tokenizer, max_length=12, stride=4, context_tokens=16) == today
    dataset = add_document_context(document_dataset())
    assert tokenize_ner(dataset, tokenizer, max_length=12, stride=4).to_dict() == \
        tokenize_ner(document_dataset(), tokenizer, max_length=12, stride=4).to_dict()


def test_a_sentence_too_long_for_the_window_gets_no_context_and_strided_windows(tokenizer):
    long_words = ["Thornwhistle", "gathered", "Brackenquay", "unquestionably", "Oberlintz", "ferries"] * 4
    rows = [(0, ["Quenby", "left", "."], ["B-PER", "O", "O"]), (0, long_words, ["O"] * len(long_words)),
            (0, ["Pellamy", "stayed", "."], ["B-PER", "O", "O"])]
    batch = add_document_context(document_dataset(rows))[:]
    with_context = prepare_ner_features(batch, tokenizer, max_length=16, stride=4, context_tokens=8)
    alone = prepare_ner_features({"tokens": [long_words], "ner_tags": [batch["ner_tags"][1]]}, tokenizer,
                                 max_length=16, stride=4)
    windows = [index for index, example in enumerate(with_context["example_index"]) if example == 1]
    assert len(windows) == len(alone["input_ids"]) > 1
    for key in ("input_ids", "labels", "word_ids"):
        assert [with_context[key][index] for index in windows] == alone[key], key
    assert len(with_context["input_ids"][0]) > 2 + len(subword_ids(tokenizer, rows[0][1]))  # its neighbours still get some


# -- loading with context --------------------------------------------------------------------------
def test_load_task_data_adds_context_before_the_subset(capsys):
    whole = add_document_context(load_tiny("ner")["train"])
    ner, _, _ = sources.load_task_data(("ner",), {"ner": {"train": 6, "validation": 3}}, seed=1, tiny=True, ner_context=True)
    assert len(ner["train"]) == 6 and set(ner["test"].column_names) >= {"context_left", "context_right"}
    by_id = {row["id"]: row for row in whole}
    for row in ner["train"]:
        assert (row["context_left"], row["context_right"]) == (by_id[row["id"]]["context_left"],
                                                              by_id[row["id"]]["context_right"])
    after = add_document_context(ner["train"])  # what a context added after the subset would give
    assert list(after["context_left"]) != list(ner["train"]["context_left"]), "the subset should have dropped neighbours"
    assert capsys.readouterr().out.count("\n") == 1
    plain, _, _ = sources.load_task_data(("ner",), tiny=True)
    assert "context_left" not in plain["train"].column_names


def test_hub_data_gets_empty_contexts_and_prints_nothing_more(monkeypatch, capsys):
    hub_split = document_dataset([(-1, words, tags) for _, words, tags in DOCUMENTS])
    monkeypatch.setattr(sources, "choose_data_source", lambda *args: sources.DataSource("hub", "a test says so"))
    monkeypatch.setattr(sources, "load_hub_conll", lambda: DatasetDict({"train": hub_split, "validation": hub_split}))
    ner, _, _ = sources.load_task_data(("ner",), ner_context=True)
    assert capsys.readouterr().out.count("\n") == 1
    assert all(not words for split in ner.values() for words in list(split["context_left"]) + list(split["context_right"]))


# -- the model config and the pipeline ------------------------------------------------------------
def decisive(model):
    with torch.no_grad():  # random but decisive heads, so the predictions hold entities
        model.ner_head.weight.normal_(0, 2.0)
    return model


def test_the_pipeline_tags_each_sentence_with_its_neighbours(tiny_model, tokenizer):
    pipeline = MultiTaskPipeline(decisive(tiny_model(ner_context_tokens=16)), tokenizer)
    assert pipeline.ner_context_tokens == 16
    seen = []
    forward = pipeline._forward
    pipeline._forward = lambda features, task: seen.append(features) or forward(features, task)
    entities = pipeline.ner(TEXT)
    words, spans = split_words(TEXT)
    assert entities and all(TEXT[entity["start"]:entity["end"]] == entity["text"] for entity in entities)
    starts, ends = {start for start, _ in spans}, {end for _, end in spans}
    assert all(entity["start"] in starts and entity["end"] in ends for entity in entities)  # whole words
    features = seen[0]
    assert features["example_index"] == [0, 1]  # two sentences, one window each
    first, second = split_sentences(words)
    for ids, (start, end) in zip(features["input_ids"], (first, second)):
        assert len(ids) > 2 + len(subword_ids(tokenizer, words[start:end]))  # the other sentence is in the window
    assert len(pipeline.ner_tags(TEXT)) == len(words)
    _, rows = sentences_in_context([words], 16)  # the evaluation path, over the same rows, gives the same tags
    mapped = tokenize_ner(Dataset.from_dict(rows), tokenizer, max_length=pipeline.ner_max_length, context_tokens=16)
    predictions = predict_features(pipeline.model, mapped, "ner", tokenizer)
    expected = ner_logits_to_tags(mapped, predictions, [len(row) for row in rows["tokens"]], NER_LABELS)
    assert pipeline.ner_tags(TEXT) == expected[0] + expected[1]
    batch = pipeline.ner_batch([TEXT, "", words])
    joined = " ".join(words)
    assert batch[0] == entities and batch[1] == [] and batch[2]
    assert all(joined[entity["start"]:entity["end"]] == entity["text"] for entity in batch[2])
    plain = MultiTaskPipeline(pipeline.model, tokenizer, ner_context_tokens=0)
    plain_seen = []
    plain._forward = lambda features, task: plain_seen.append(features) or forward(features, task)
    plain.ner(TEXT)
    assert plain_seen[0]["example_index"] == [0]  # without context: the whole text, one window


def test_a_saved_model_keeps_its_ner_context_tokens(tiny_model, tokenizer, tmp_path):
    from nerqa_helpers.training import save_model

    folder = save_model(tiny_model(ner_context_tokens=24), tokenizer, tmp_path / "best")
    assert json.loads((folder / "config.json").read_text())["ner_context_tokens"] == 24
    assert MultiTaskModel.from_pretrained(folder).config.windows()["ner_context_tokens"] == 24
    assert MultiTaskPipeline.from_pretrained(folder).ner_context_tokens == 24
    old = json.loads((folder / "config.json").read_text())
    old.pop("ner_context_tokens")  # a model saved before the field
    assert MultiTaskConfig.from_dict(old).ner_context_tokens == 0
    assert MultiTaskConfig(ner_label_names=NER_LABELS).windows()["ner_context_tokens"] == 0


@pytest.mark.slow
def test_nerqa_train_with_ner_context_trains_and_saves_it(tiny_bert, tokenizer, tmp_path, capsys):
    from transformers import BertModel

    from nerqa_helpers.cli import main
    from nerqa_helpers.data import tiny_data_dir

    encoder = tmp_path / "encoder"
    BertModel(tiny_bert, add_pooling_layer=False).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    conll = tiny_data_dir() / "conll"
    code = main(["train", "--encoder", str(encoder), "--output-dir", str(tmp_path / "run"), "--max-steps", "2",
                 "--quiet", "--tasks", "ner", "--ner-train", str(conll / "train.txt"),
                 "--ner-validation", str(conll / "validation.txt"), "--ner-context", "16", "--checkpoint-every", "0"])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert json.loads((tmp_path / "run" / "best" / "config.json").read_text())["ner_context_tokens"] == 16
    assert main(["evaluate", "--model", str(tmp_path / "run"), "--ner-validation", str(conll / "validation.txt"),
                 "--json"]) == 0
