"""Properties that must hold for any text: generated words and paragraphs with letters of any
script, combining marks, emoji, runs of whitespace, very long words and empty strings.

Invariants checked: NER alignment scores exactly one sub-word (the first) per word that has one;
the QA windows together cover every context character the tokenizer turns into a token; every
span post-processing returns is a slice of the context made of context tokens; the pipeline's
entity and answer offsets are exact; the SQuAD scores are symmetric and 100 on identical strings.
"""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerqa_helpers.data import NER_LABELS
from nerqa_helpers.inference import MultiTaskPipeline
from nerqa_helpers.metrics import exact_match, normalize_answer, squad_scores, token_f1
from nerqa_helpers.postprocessing import ner_logits_to_tags, postprocess_qa_predictions
from nerqa_helpers.preprocessing import prepare_ner_features, prepare_qa_eval_features

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# -- generated text ---------------------------------------------------------------------------
ODD_PIECES = ["🙂", "👍🏽", "👨‍👩‍👧", "🇫🇷", "e\u0301", "\u0301", "東京", "नमस्ते", "\x07", "\u200b", "ß", "İ",
              "ﬁ", "Ⅻ", "’s", "O'Neil", "1,000.50", "U.S.", "\ufeff", "\u00a0", "—"]
LETTERS = st.characters(categories=("L", "M", "N", "P", "S"), exclude_characters="\x00")
SHORT_WORDS = st.text(LETTERS, max_size=10)  # may be empty
LONG_WORDS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzé"), min_size=60, max_size=260)
WHITESPACE = st.text(st.sampled_from(" \t\n\u00a0\u3000\r"), min_size=1, max_size=6)
WORDS = st.one_of(SHORT_WORDS, SHORT_WORDS, st.sampled_from(ODD_PIECES), LONG_WORDS, WHITESPACE)


@st.composite
def texts(draw, max_pieces: int = 40) -> str:
    """Words and odd pieces joined by runs of whitespace (or nothing)."""
    pieces = draw(st.lists(WORDS, max_size=max_pieces))
    gaps = draw(st.lists(st.one_of(st.just(" "), st.just(""), WHITESPACE), min_size=len(pieces), max_size=len(pieces)))
    return "".join(piece + gap for piece, gap in zip(pieces, gaps))


NER_WINDOWS = st.sampled_from([(12, 4), (24, 8), (128, 32)])
QA_WINDOWS = st.sampled_from([(40, 12), (64, 24), (384, 128)])


# -- NER alignment ----------------------------------------------------------------------------
@PROPERTY
@given(words=st.lists(WORDS, max_size=30), window=NER_WINDOWS, seed=st.integers(0, 2**16))
def test_exactly_one_subword_is_labelled_per_word_that_has_one(tokenizer, words, window, seed):
    max_length, stride = window
    tags = np.random.default_rng(seed).integers(0, len(NER_LABELS), len(words)).tolist()
    features = prepare_ner_features({"tokens": [words], "ner_tags": [tags]}, tokenizer, max_length, stride)
    whole = tokenizer([words], is_split_into_words=True, add_special_tokens=False)
    first_token = {}  # word -> id of its first sub-word in the untruncated encoding
    for position, word in enumerate(whole.word_ids(0)):
        if word is not None and word not in first_token:
            first_token[word] = whole["input_ids"][0][position]
    scored = {}
    for ids, labels, word_ids in zip(features["input_ids"], features["labels"], features["word_ids"]):
        assert len(ids) <= max_length
        for token, label, word in zip(ids, labels, word_ids):
            assert (label != -100) == (word >= 0)
            if word >= 0:
                assert word not in scored, f"word {word} ({words[word]!r}) labelled twice"
                scored[word] = (token, label)
    assert set(scored) == set(first_token)  # every word with a sub-word, and only those
    for word, (token, label) in scored.items():
        assert token == first_token[word] and label == tags[word]
    predictions = [[max(label, 0) for label in labels] for labels in features["labels"]]
    decoded = ner_logits_to_tags(features, predictions, [len(words)], NER_LABELS)[0]
    assert decoded == [NER_LABELS[tag] if word in first_token else "O" for word, tag in enumerate(tags)]


# -- QA windows and spans ---------------------------------------------------------------------
QUESTIONS = st.text(st.sampled_from("abcxyzé東🙂? "), min_size=1, max_size=8).filter(lambda q: q.strip())


def qa_features(tokenizer, question, context, window):
    max_length, doc_stride = window
    examples = {"id": ["x"], "question": [question], "context": [context]}
    return examples, prepare_qa_eval_features(examples, tokenizer, max_length=max_length, doc_stride=doc_stride)


def context_token_spans(tokenizer, question, context) -> set:
    """(start, end) of every context token of the untruncated (question, context) pair."""
    whole = tokenizer(question.lstrip(), context, return_offsets_mapping=True)
    return {tuple(offset) for offset, sequence in zip(whole["offset_mapping"], whole.sequence_ids()) if sequence == 1}


@PROPERTY
@given(question=QUESTIONS, context=texts(), window=QA_WINDOWS)
def test_the_windows_cover_every_context_character_with_a_token(tokenizer, question, context, window):
    _, features = qa_features(tokenizer, question, context, window)
    covered, starts = set(), set()
    for ids, offsets in zip(features["input_ids"], features["offset_mapping"]):
        assert len(ids) <= window[0]
        for offset in offsets:
            if offset is not None:
                assert 0 <= offset[0] <= offset[1] <= len(context)
                covered.update(range(*offset))
                starts.add(tuple(offset))
    needed = context_token_spans(tokenizer, question, context)
    assert {index for start, end in needed for index in range(start, end)} <= covered
    assert needed <= starts


@PROPERTY
@given(question=QUESTIONS, context=texts(), window=QA_WINDOWS, seed=st.integers(0, 2**16),
       max_answer_length=st.sampled_from([1, 3, 30]), version_2=st.booleans())
def test_post_processing_returns_slices_of_the_context_made_of_its_tokens(
        tokenizer, question, context, window, seed, max_answer_length, version_2):
    examples, features = qa_features(tokenizer, question, context, window)
    rng = np.random.default_rng(seed)
    starts = [rng.normal(0, 4, len(ids)) for ids in features["input_ids"]]
    ends = [rng.normal(0, 4, len(ids)) for ids in features["input_ids"]]
    answer = postprocess_qa_predictions([{"id": "x", "context": context}], features, starts, ends, n_best_size=5,
                                        max_answer_length=max_answer_length, version_2=version_2)["x"]
    tokens = {tuple(offset) for offsets in features["offset_mapping"] for offset in offsets if offset is not None}
    token_starts, token_ends = {start for start, _ in tokens}, {end for _, end in tokens}
    assert 0 <= answer["start"] <= answer["end"] <= len(context)
    assert answer["text"] == context[answer["start"]:answer["end"]]
    assert answer["text"] or version_2 or not answer["n_best"]
    for entry in answer["n_best"]:
        assert entry["text"] == context[entry["start"]:entry["end"]]
        assert entry["start"] in token_starts and entry["end"] in token_ends and entry["start"] < entry["end"]


# -- the pipeline on any text -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pipeline(tiny_model, tokenizer):
    model = tiny_model(seed=0)
    with torch.no_grad():  # decisive random heads: many entities, sharp spans
        model.ner_head.weight.normal_(0, 2.0)
        model.qa_head.weight.normal_(0, 2.0)
    return MultiTaskPipeline(model, tokenizer, ner_max_length=24, ner_stride=8, qa_max_length=48, doc_stride=16)


@settings(PROPERTY, max_examples=25)
@given(text=texts())
def test_pipeline_entities_are_exact_slices_of_any_text(tiny_pipeline, text):
    for entity in tiny_pipeline.ner(text):
        assert entity["text"] == text[entity["start"]:entity["end"]] and entity["text"].strip() == entity["text"]
        assert 0 <= entity["start"] < entity["end"] <= len(text) and 0.0 < entity["score"] <= 1.0


@settings(PROPERTY, max_examples=25)
@given(question=QUESTIONS, context=texts().filter(lambda text: text.strip()))
def test_pipeline_answers_are_exact_slices_of_any_context(tiny_pipeline, question, context):
    for answer in tiny_pipeline.qa(question, context, top_k=3):
        assert answer["answer"] == context[answer["start"]:answer["end"]]
        assert 0 <= answer["start"] <= answer["end"] <= len(context)


# -- the SQuAD scorer -------------------------------------------------------------------------
ANSWER_PIECES = st.one_of(st.sampled_from(["the", "The", "a", "an", "A", ",", ".", "!", "-", "Paris", "paris",
                                           "東京", "🙂", "e\u0301cole", "école", "  ", "1,000"]), SHORT_WORDS)
ANSWERS = st.lists(ANSWER_PIECES, max_size=8).map(" ".join) | st.text(LETTERS, max_size=20)


@settings(PROPERTY, max_examples=150)
@given(first=ANSWERS, second=ANSWERS)
def test_squad_scores_are_symmetric_with_one_reference(first, second):
    assert token_f1(first, second) == pytest.approx(token_f1(second, first), abs=1e-12)
    assert exact_match(first, second) == exact_match(second, first)
    assert 0.0 <= token_f1(first, second) <= 1.0
    if exact_match(first, second):
        assert token_f1(first, second) == 1.0
    assert token_f1(first, [second, first]) == 1.0  # the best reference counts


@settings(PROPERTY, max_examples=150)
@given(answer=ANSWERS)
def test_squad_scores_are_100_on_identical_strings(answer):
    assert exact_match(answer, answer) == 1.0 and token_f1(answer, answer) == 1.0
    # The official v1.1 script gives F1 0 when the answer normalises to nothing ("", "the"), EM 100.
    f1 = 100.0 if normalize_answer(answer) else 0.0
    assert squad_scores({"q": answer}, {"q": [answer]}) == {"exact_match": 100.0, "f1": f1, "count": 1}
