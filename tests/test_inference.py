"""The inference pipeline: whole-word entities, answer spans with exact offsets, windows, errors.

Two kinds of model: the real MiniLM multi-task model (heads scaled up so its random predictions
are decisive), and a lookup model whose logits are read straight off the token ids, so the
right answer is known in advance. All texts are invented here.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from nerqa_helpers.data import NER_LABELS
from nerqa_helpers.inference import (
    ModelDirectoryError,
    MultiTaskPipeline,
    iob2_spans,
    resolve_device,
    split_words,
)
from nerqa_helpers.model import MultiTaskConfig, MultiTaskModel
from nerqa_helpers.preprocessing import tokenize_ner, tokenize_qa

HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXTS = [
    "Marisol Quenby flew from Vantorsk to the Glimmerfold Cooperative on Tuesday .",
    "U.S. envoy Tobiah O'Neil's visit to São Paulo cost $1,000.50 — 👨‍👩‍👧 🇫🇷 café!",
    "Der Bär besucht 東京 im Frühling 🙂 und trifft Zyxbrontolian weavers near Quillithorpe.",
    "e\u0301cole  \t Brackenquay\n\nHollowmere Syndicate",
]
CONTEXT = ("The Hollowmere Syndicate built its first barge in Brackenquay. Its founder, Marisol Quenby, "
           "later moved the workshop to Vantorsk, where the company still repairs river ferries.")


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    from nerqa_helpers.encoders import load_tokenizer
    from nerqa_helpers.training import save_model

    torch.manual_seed(0)
    model = MultiTaskModel.from_encoder("default")
    with torch.no_grad():  # random but decisive heads: clear arg-max tags, clear spans
        model.ner_head.weight.mul_(50.0)
        model.qa_head.weight.mul_(50.0)
    return save_model(model, load_tokenizer(), tmp_path_factory.mktemp("model") / "best")


@pytest.fixture(scope="module")
def pipeline(saved_dir):
    return MultiTaskPipeline.from_pretrained(saved_dir)


class LookupModel(torch.nn.Module):
    """NER tag of a token = its id modulo the number of tags; QA start at ``start_id``, end at
    ``end_id``, [CLS] (the null answer) at ``null_logit``."""

    def __init__(self, start_id=-1, end_id=-1, null_logit=0.0, version_2=False):
        super().__init__()
        self.config = MultiTaskConfig(ner_label_names=NER_LABELS)
        self.config.version_2_with_negative = version_2
        self.start_id, self.end_id, self.null_logit = start_id, end_id, null_logit
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, task="ner"):
        if task == "ner":
            return SimpleNamespace(logits=8.0 * torch.nn.functional.one_hot(input_ids % len(NER_LABELS), len(NER_LABELS)).float())
        start, end = 8.0 * (input_ids == self.start_id).float(), 8.0 * (input_ids == self.end_id).float()
        start[:, 0] = end[:, 0] = self.null_logit
        return SimpleNamespace(start_logits=start, end_logits=end)


def lookup_pipeline(tokenizer, start_word=None, end_word=None, **kwargs):
    ids = [tokenizer.convert_tokens_to_ids(word) if word else -1 for word in (start_word, end_word)]
    assert tokenizer.unk_token_id not in ids, "marker words must be single tokens of the vocabulary"
    return MultiTaskPipeline(LookupModel(*ids, **kwargs), tokenizer)


def lookup_tag(tokenizer, word):
    """The tag the lookup model gives ``word``: from the id of its first sub-word."""
    return NER_LABELS[tokenizer(word, add_special_tokens=False)["input_ids"][0] % len(NER_LABELS)]


def plain(value):
    """Tuples → lists, recursively (``datasets`` stores offset pairs as lists)."""
    return [plain(item) for item in value] if isinstance(value, (list, tuple)) else value


def check_entities(entities, source, words):
    """Entities are whole words of ``words`` with ``text == source[start:end]``."""
    types = {tag[2:] for tag in NER_LABELS if tag != "O"}
    for entity in entities:
        assert entity["text"] == source[entity["start"]:entity["end"]]
        assert "##" not in entity["text"] and entity["entity"] in types and 0.0 < entity["score"] <= 1.0
        assert entity["words"] and all(word in words for word in entity["words"])
        assert entity["text"].startswith(entity["words"][0]) and entity["text"].endswith(entity["words"][-1])


# -- words and IOB2 --------------------------------------------------------------------------------
def test_split_words_gives_conll_like_words_with_offsets():
    text = "U.S. envoy O'Neil's visit cost $1,000.50 at 10:30 — 👨‍👩‍👧 café, e\u0301cole."
    words, spans = split_words(text)
    assert words == ["U.S.", "envoy", "O'Neil", "'s", "visit", "cost", "$", "1,000.50", "at", "10:30", "—",
                     "👨‍👩‍👧", "café", ",", "e\u0301cole", "."]
    assert [text[start:end] for start, end in spans] == words


@HYPOTHESIS
@given(st.text(alphabet=st.sampled_from(list("aZé\u0301東京🙂👍🏽\u200d-'.,$1 \t\n")), max_size=60))
def test_split_words_covers_every_visible_character_once(text):
    words, spans = split_words(text)
    assert [text[start:end] for start, end in spans] == words
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))  # ordered, no overlap
    covered = {index for start, end in spans for index in range(start, end)}
    assert all(index in covered for index, char in enumerate(text) if not char.isspace())


@HYPOTHESIS
@given(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]), max_size=30))
def test_iob2_spans_decode_like_seqeval(tags):
    assert iob2_spans(tags) == [(kind, start, end + 1) for kind, start, end in get_entities(tags)]


# -- NER -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", TEXTS)
def test_entities_are_whole_words_with_exact_offsets(pipeline, text):
    entities = pipeline.ner(text)
    check_entities(entities, text, split_words(text)[0])
    assert len(pipeline.ner_tags(text)) == len(split_words(text)[0])


@settings(HYPOTHESIS, max_examples=10)
@given(text=st.text(alphabet=st.sampled_from(list("AbQzé東🙂 .,-'\n")), max_size=40))
def test_any_text_gives_valid_entities(pipeline, text):
    check_entities(pipeline.ner(text), text, split_words(text)[0])


def test_word_lists_give_offsets_into_the_joined_words(pipeline):
    words = ["Marisol", "Quenby", "flew", "to", "Vantorsk", "with", "Elonmuskovitz", "."]
    entities = pipeline.ner(words)
    check_entities(entities, " ".join(words), words)
    assert pipeline.ner(words) == pipeline.ner_batch([words, TEXTS[0]])[0]


def test_entities_follow_the_word_tags(tokenizer):
    lookup = lookup_pipeline(tokenizer)
    words = "Marisol Quenby flew from Vantorsk to the Glimmerfold Cooperative on Tuesday".split()
    expected = [lookup_tag(tokenizer, word) for word in words]
    assert lookup.ner_tags(words) == expected
    entities = lookup.ner(words)
    assert [(e["entity"], e["words"]) for e in entities] == [
        (kind, words[start:end]) for kind, start, end in iob2_spans(expected)]
    assert all(entity["score"] > 0.99 for entity in entities)


def test_two_thousand_words_get_one_tag_each_across_windows(tokenizer):
    lookup = lookup_pipeline(tokenizer)
    vocabulary = ["Thornwhistle", "gathered", "Brackenquay", "unquestionably", "Oberlintz", "ferries", "and", ".",
                  "Hollowmere", "Syndicate", "東京", "café"]
    words = [vocabulary[i] for i in np.random.default_rng(0).integers(0, len(vocabulary), 2000)]
    assert len(lookup.ner_features([words])["input_ids"]) > 10  # many windows
    tags, scores = lookup.ner_tags(words, with_scores=True)
    assert tags == [lookup_tag(tokenizer, word) for word in words]
    assert all(score > 0.99 for score in scores)  # every word scored by some window
    text = " ".join(words)
    check_entities(lookup.ner(text), text, set(words))


def test_empty_and_blank_inputs_give_no_entities(pipeline):
    for empty in ("", "   ", "\n\t ", []):
        assert pipeline.ner(empty) == []
    assert pipeline.ner_tags([]) == []


def test_bad_ner_inputs_raise_clear_errors(pipeline):
    with pytest.raises(TypeError, match="str"):
        pipeline.ner(42)
    with pytest.raises(TypeError, match="Word 1"):
        pipeline.ner(["Quenby", 7])
    with pytest.raises(ValueError, match="aggregation"):
        pipeline.ner("Quenby flew", aggregation="max")


# -- QA --------------------------------------------------------------------------------------------
def test_answers_are_substrings_with_exact_offsets(pipeline):
    answer = pipeline.qa("Who founded the Hollowmere Syndicate?", CONTEXT)
    assert set(answer) == {"answer", "start", "end", "score"}
    assert answer["answer"] == CONTEXT[answer["start"]:answer["end"]] and answer["answer"]
    answers = pipeline.qa("Where is the workshop?", CONTEXT, top_k=3)
    assert len(answers) == 3 and answers[0]["score"] >= answers[1]["score"] >= answers[2]["score"]
    assert all(a["answer"] == CONTEXT[a["start"]:a["end"]] for a in answers)


@pytest.mark.parametrize("context", [
    "Der Bär wohnt seit März in Zürich, nahe der Brücke über die Limmat.",
    "東京タワーは1958年に完成した。高さは333メートルである。",
    "The 🐻 bear 👍🏽 met the 👨‍👩‍👧 family at the café near e\u0301cole Bärengraben 🙂.",
    ("Ο Σωκράτης γεννήθηκε στην Αθήνα. " * 30).strip(),  # several windows
])
def test_answers_in_other_scripts_are_substrings(pipeline, context):
    for answer in pipeline.qa("Where?", context, top_k=5):
        assert answer["answer"] == context[answer["start"]:answer["end"]]


def test_the_best_span_is_found_in_a_late_window(tokenizer):
    lookup = lookup_pipeline(tokenizer, "zebra", "camel")
    filler = " ".join(["The ferries crossed the river at dawn ."] * 150)
    context = f"{filler} Only the zebra and the camel stayed . {filler}"
    assert len(lookup.qa_features(["Which animals stayed?"], [context])[1]["input_ids"]) > 3
    answer = lookup.qa("Which animals stayed?", context)
    assert answer["answer"] == "zebra and the camel"
    assert (answer["start"], answer["end"]) == (context.index("zebra"), context.index("camel") + len("camel"))
    assert lookup.qa("Which animals stayed?", context, max_answer_length=3)["answer"] != answer["answer"]


def test_cjk_answer_has_exact_character_offsets(tokenizer):
    context = "Ein Bär 🐻 besucht 東京 im Frühling."
    lookup = lookup_pipeline(tokenizer, "東", "京")
    answer = lookup.qa("Wohin?", context)
    assert answer["answer"] == "東京" and context[answer["start"]:answer["end"]] == "東京"
    other = "東京タワーは1958年に完成した。"
    assert lookup.qa_batch(["Wohin?", "何?"], [context, other]) == [answer, lookup.qa("何?", other)]


def test_squad_v2_model_can_answer_nothing(tokenizer):
    ids = [tokenizer.convert_tokens_to_ids(word) for word in ("zebra", "camel")]
    context = "Only the zebra and the camel stayed."
    v2 = MultiTaskPipeline(LookupModel(*ids, null_logit=20.0, version_2=True), tokenizer)
    assert v2.qa("Which animals?", context) == {"answer": "", "start": 0, "end": 0, "score": pytest.approx(1.0, abs=1e-3)}
    assert v2.qa("Which animals?", context, handle_impossible=False)["answer"] == "zebra and the camel"
    assert v2.qa("Which animals?", context, top_k=2)[0]["answer"] == ""
    runner_up = MultiTaskPipeline(LookupModel(*ids, null_logit=5.0, version_2=True), tokenizer).qa("Which?", context, top_k=3)
    assert [answer["answer"] for answer in runner_up[:2]] == ["zebra and the camel", ""]
    assert all(answer["answer"] == context[answer["start"]:answer["end"]] for answer in runner_up)
    v1 = MultiTaskPipeline(LookupModel(*ids, null_logit=20.0), tokenizer)
    assert v1.qa("Which animals?", context)["answer"] == "zebra and the camel"


def test_a_question_longer_than_the_window_is_cut(pipeline):
    question = " ".join(["which river ferry"] * 200)
    kept = pipeline.fit_question(question)
    assert question.startswith(kept)
    assert len(pipeline.tokenizer(kept, add_special_tokens=False)["input_ids"]) == pipeline.max_question_tokens
    context = " ".join([CONTEXT] * 8)
    windows = pipeline.qa_features([question], [context])[1]["input_ids"]
    assert 1 < len(windows) < 8 and max(map(len, windows)) <= pipeline.qa_max_length
    answer = pipeline.qa(question, context)
    assert answer["answer"] == context[answer["start"]:answer["end"]]


def test_bad_qa_inputs_raise_clear_errors(pipeline):
    for question, context in (("", CONTEXT), ("  ", CONTEXT), ("Who?", ""), ("Who?", " \n")):
        with pytest.raises(ValueError, match="empty"):
            pipeline.qa(question, context)
    with pytest.raises(TypeError, match="question must be a str"):
        pipeline.qa(None, CONTEXT)
    with pytest.raises(TypeError, match="context must be a str"):
        pipeline.qa("Who?", ["a", "list"])
    with pytest.raises(ValueError, match="top_k"):
        pipeline.qa("Who?", CONTEXT, top_k=0)
    with pytest.raises(ValueError, match="doc_stride"):
        MultiTaskPipeline(pipeline.model, pipeline.tokenizer, qa_max_length=64, doc_stride=64)


# -- the same code path as evaluation --------------------------------------------------------------
def test_features_equal_the_batched_maps_of_preprocessing(pipeline):
    word_lists = [split_words(text)[0] for text in TEXTS] + [["Quenby"] * 300]
    mapped = tokenize_ner(Dataset.from_dict({"tokens": word_lists}), pipeline.tokenizer,
                          max_length=pipeline.ner_max_length, stride=pipeline.ner_stride)
    direct = pipeline.ner_features(word_lists)
    for column in mapped.column_names:
        assert mapped[column] == direct[column], column
    contexts = [CONTEXT, " ".join([CONTEXT] * 12), "東京タワー 🙂"]
    questions = ["Who founded it?", "Where?", "何?"]
    examples, direct = pipeline.qa_features(questions, contexts)
    mapped = tokenize_qa(Dataset.from_list(examples), pipeline.tokenizer, split_kind="eval",
                         max_length=pipeline.qa_max_length, doc_stride=pipeline.doc_stride)
    for column in mapped.column_names:
        assert plain(mapped[column]) == plain(direct[column]), column


def test_predictions_equal_the_evaluation_path(pipeline):
    from nerqa_helpers.evaluation import predict_features
    from nerqa_helpers.postprocessing import ner_logits_to_tags, postprocess_qa_predictions

    model, tokenizer = pipeline.model, pipeline.tokenizer
    word_lists = [split_words(text)[0] for text in TEXTS]
    features = tokenize_ner(Dataset.from_dict({"tokens": word_lists}), tokenizer)
    predictions = predict_features(model, features, "ner", tokenizer, batch_size=2)
    expected = ner_logits_to_tags(features, predictions, [len(w) for w in word_lists], model.config.ner_label_names)
    assert pipeline.tag_words(word_lists)[0] == expected
    examples = Dataset.from_list([{"id": "a", "question": "Where is the workshop?", "context": " ".join([CONTEXT] * 4)}])
    features = tokenize_qa(examples, tokenizer, split_kind="eval")
    outputs = predict_features(model, features, "qa", tokenizer)
    answer = postprocess_qa_predictions(examples, features, [s for s, _ in outputs], [e for _, e in outputs])["a"]
    assert pipeline.qa(examples[0]["question"], examples[0]["context"])["answer"] == answer["text"]


# -- loading and devices ---------------------------------------------------------------------------
def test_saved_pipeline_loads_in_eval_mode_on_cpu(pipeline, saved_dir):
    assert not pipeline.model.training and pipeline.device == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    again = MultiTaskPipeline.from_pretrained(str(saved_dir))
    assert again.ner(TEXTS[0]) == pipeline.ner(TEXTS[0])


def test_the_pipeline_serves_the_windows_in_the_model_config(tokenizer):
    model = LookupModel()
    model.config.qa_max_length, model.config.doc_stride, model.config.ner_max_length = 200, 50, 64
    pipeline = MultiTaskPipeline(model, tokenizer)
    assert (pipeline.qa_max_length, pipeline.doc_stride, pipeline.ner_max_length) == (200, 50, 64)
    _, features = pipeline.qa_features(["Who?"], ["word " * 500])
    assert max(len(ids) for ids in features["input_ids"]) == 200
    assert MultiTaskPipeline(model, tokenizer, qa_max_length=300).qa_max_length == 300  # an argument still wins


def test_a_config_saved_with_window_settings_still_gives_its_windows():
    config = MultiTaskConfig(ner_label_names=NER_LABELS, window_settings={"qa_max_length": 256, "doc_stride": 64})
    from nerqa_helpers.presets import DEFAULTS

    assert config.windows() == {**DEFAULTS.windows(), "qa_max_length": 256, "doc_stride": 64}
    assert not hasattr(config, "window_settings") and config.ner_label_names == NER_LABELS


def test_the_pipeline_keeps_the_model_on_its_device(tokenizer):
    model = LookupModel()
    pipeline = MultiTaskPipeline(model, tokenizer)  # no device named: where the model is
    assert pipeline.device == next(model.parameters()).device and pipeline.model is model


def test_bad_model_folders_give_one_clear_error(tmp_path, saved_dir):
    from nerqa_helpers.encoders import bundled_encoder_path

    empty = tmp_path / "empty"
    empty.mkdir()
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_text((saved_dir / "config.json").read_text())
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((saved_dir / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    plain_bert = bundled_encoder_path()  # a folder holding a plain BERT encoder
    cases = {tmp_path / "missing": "does not exist", empty: "no config.json", config_only: "no weights",
             broken: "could not be loaded", plain_bert: "'bert' model"}
    for folder, problem in cases.items():
        with pytest.raises(ModelDirectoryError, match=problem) as caught:
            MultiTaskPipeline.from_pretrained(folder)
        assert isinstance(caught.value, OSError) and isinstance(caught.value, ValueError)
        assert "config.json" in str(caught.value) and "model.safetensors" in str(caught.value)
