"""The widget demos: pure HTML/table functions first, then the widgets driven without a browser.

The HTML is read back with ``html.parser``: the visible text must be the input text exactly, and
the marks must cover exactly the given character spans. The widgets are driven the way a student
drives them (set a value, press the button) against a stub pipeline with fixed answers, and once
against a real saved model.
"""
import json
import re
from html import escape
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerqa_helpers import demo, demo_runs
from nerqa_helpers.data import NER_LABELS
from nerqa_helpers.sampling import task_probabilities
from nerqa_helpers.widgets import (
    answers_table,
    example_browser,
    highlight_answer_html,
    highlight_entities_html,
    history_explorer,
    model_switcher,
    ner_example_html,
    ner_widget,
    qa_example_html,
    qa_widget,
    span_map_html,
    span_map_widget,
    subword_widget,
    task_mix_for_temperature,
    task_mix_html,
    task_mix_lab,
)

SENTENCE = "Maria Okafor moved from Lisbon to Oslo & joined <Veltrix Systems>."
CONTEXT = "Lisbon is far from Oslo. Maria Okafor was born in Lisbon and studied in Oslo."


class MarkReader(HTMLParser):
    """Visible text of a highlight (labels and notes left out) and the spans of its <mark>s."""

    SKIPPED = ("nerqa-entity-label", "nerqa-note")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text, self.marks, self.open_marks, self.skipping = "", [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.skipping or any(name in (attrs.get("class") or "") for name in self.SKIPPED):
            self.skipping += 1
        elif tag == "mark":
            self.open_marks.append((len(self.text), attrs))

    def handle_endtag(self, tag):
        if self.skipping:
            self.skipping -= 1
        elif tag == "mark":
            start, attrs = self.open_marks.pop()
            self.marks.append((start, len(self.text), attrs))

    def handle_data(self, data):
        if not self.skipping:
            self.text += data


def read(html):
    reader = MarkReader()
    reader.feed(html)
    reader.close()
    return reader


def entity(text, phrase, kind, occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(phrase, start + 1)
    return {"entity": kind, "text": phrase, "start": start, "end": start + len(phrase), "score": 0.9}


# -- entities -------------------------------------------------------------------------------------
def test_entity_html_escapes_the_text_and_marks_exactly_the_spans():
    entities = [entity(SENTENCE, "Maria Okafor", "PER"), entity(SENTENCE, "Lisbon", "LOC"),
                entity(SENTENCE, "Veltrix Systems", "ORG")]
    html = highlight_entities_html(SENTENCE, entities)
    assert "<Veltrix" not in html and "Systems>" not in html
    assert "&amp; joined &lt;<mark" in html and "</mark>&gt;." in html
    page = read(html)
    assert page.text == SENTENCE
    assert [(start, end) for start, end, _ in page.marks] == [(e["start"], e["end"]) for e in entities]
    assert [attrs["data-entity"] for *_, attrs in page.marks] == ["PER", "LOC", "ORG"]
    assert all("nerqa-entity" in attrs["class"] for *_, attrs in page.marks)
    assert html.count("nerqa-entity-label") == 3 and ">LOC</span>" in html


def test_entity_html_colours_by_type_and_escapes_labels():
    html = highlight_entities_html("Ada met Bob", [entity("Ada met Bob", "Ada", "PER"), entity("Ada met Bob", "Bob", "<b>")])
    marks = read(html).marks
    assert marks[0][2]["style"] != marks[1][2]["style"]  # PER has its colour, the unknown type grey
    assert "<b>" not in html and marks[1][2]["data-entity"] == "<b>"  # the attribute round-trips escaped


def test_entity_html_without_entities_shows_the_text_and_a_note():
    html = highlight_entities_html("nothing here", [])
    assert "<mark" not in html and read(html).text == "nothing here" and "no entities" in html


@pytest.mark.parametrize("spans", [[(0, 5), (3, 8)], [(4, 99)], [(-1, 2)]])
def test_entity_html_rejects_overlapping_or_outside_spans(spans):
    with pytest.raises(ValueError):
        highlight_entities_html("Ada met Bob in Rome", [{"entity": "PER", "start": s, "end": e} for s, e in spans])


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40), st.data())
def test_entity_html_round_trips_any_text_and_spans(text, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6, unique=True)))
    spans = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
    entities = [{"entity": "MISC", "start": start, "end": end} for start, end in spans]
    page = read(highlight_entities_html(text, entities))
    assert page.text == text
    assert [(start, end) for start, end, _ in page.marks] == spans


# -- answers --------------------------------------------------------------------------------------
def test_answer_is_marked_at_its_offsets_not_at_the_first_match():
    answer = entity(CONTEXT, "Lisbon", "-", occurrence=1)  # the second "Lisbon"
    html = highlight_answer_html(CONTEXT, {"answer": "Lisbon", "start": answer["start"], "end": answer["end"], "score": 0.7})
    page = read(html)
    assert page.text == CONTEXT
    assert [(start, end) for start, end, _ in page.marks] == [(answer["start"], answer["end"])]
    assert "nerqa-answer" in page.marks[0][2]["class"]


def test_answer_text_must_match_the_offsets_and_no_answer_marks_nothing():
    with pytest.raises(ValueError, match="not context"):
        highlight_answer_html(CONTEXT, {"answer": "Oslo", "start": 0, "end": 6})
    for empty in (None, {"answer": "", "start": 0, "end": 0, "score": 0.4}):
        html = highlight_answer_html("a <b> c", empty)
        assert "<mark" not in html and "&lt;b&gt;" in html and "no answer" in html


def test_answers_table_is_sorted_by_score_with_ranks_from_one():
    answers = [{"answer": "Oslo", "start": 19, "end": 23, "score": 0.2},
               {"answer": "Lisbon", "start": 0, "end": 6, "score": 0.5},
               {"answer": "Maria Okafor", "start": 25, "end": 37, "score": 0.3}]
    table = answers_table(answers)
    assert table["answer"].tolist() == ["Lisbon", "Maria Okafor", "Oslo"]
    assert table["score"].is_monotonic_decreasing and list(table.index) == [1, 2, 3]
    assert list(table.columns) == ["answer", "score", "start", "end"]
    assert answers_table(answers[0])["answer"].tolist() == ["Oslo"]


# -- task mix -------------------------------------------------------------------------------------
def test_task_mix_follows_the_temperature():
    sizes = {"ner": 100, "qa": 900}
    assert task_mix_for_temperature(sizes, 1.0) == pytest.approx({"ner": 0.1, "qa": 0.9})
    assert task_mix_for_temperature(sizes, 2.0) == pytest.approx({"ner": 0.25, "qa": 0.75})  # √100 : √900
    assert task_mix_for_temperature(sizes, 1e6)["ner"] == pytest.approx(0.5, abs=1e-4)
    shares = [task_mix_for_temperature(sizes, t)["ner"] for t in (0.3, 0.5, 1, 2, 5, 50)]
    assert shares == sorted(shares) and shares[0] < 0.01
    assert task_mix_for_temperature(sizes, 3.0) == task_probabilities(sizes, "temperature", 3.0)
    with pytest.raises(ValueError):
        task_mix_for_temperature(sizes, 0.0)


def test_task_mix_html_has_one_bar_per_task_with_its_share():
    html = task_mix_html({"ner": 0.25, "qa": 0.75}, {"ner": 100, "qa": 900})
    assert 'data-task="ner" data-share="0.250000"' in html and 'data-task="qa" data-share="0.750000"' in html
    assert "75.0%" in html and "900 batches" in html


# -- widgets driven without a browser --------------------------------------------------------------
class StubPipeline:
    """Fixed answers: every known name in the text is an entity; QA ranks three fixed spans."""

    NAMES = {"Maria Okafor": "PER", "Lisbon": "LOC", "Oslo": "LOC", "Veltrix Systems": "ORG"}

    def __init__(self):
        self.calls = []

    def ner(self, text):
        self.calls.append(("ner", text))
        found = [entity(text, name, kind) for name, kind in self.NAMES.items() if name in text]
        return sorted(found, key=lambda item: item["start"])

    def qa(self, question, context, top_k=1):
        self.calls.append(("qa", question, top_k))
        if not question.strip():
            raise ValueError("The question is empty")
        spans = [entity(context, name, "-") for name in ("Maria Okafor", "Oslo", "Lisbon") if name in context]
        answers = [{"answer": s["text"], "start": s["start"], "end": s["end"], "score": 0.6 / (rank + 1)}
                   for rank, s in enumerate(spans)][:top_k]
        return answers[0] if top_k == 1 else answers


def classes(widget):
    return set(widget._dom_classes)


def test_ner_widget_updates_when_the_text_changes_and_when_the_button_is_pressed():
    pipeline = StubPipeline()
    demo = ner_widget(pipeline, text="Nobody here.")
    assert demo.children[:3] == (demo.text, demo.button, demo.output)
    assert "nerqa-ner-output" in classes(demo.output) and "nerqa-ner-input" in classes(demo.text)
    assert "<mark" not in demo.output.value
    demo.text.value = "Maria Okafor flew to Oslo."  # the observer runs the pipeline
    page = read(demo.output.value)
    assert page.text == "Maria Okafor flew to Oslo."
    assert [(attrs["data-entity"], page.text[start:end]) for start, end, attrs in page.marks] == \
        [("PER", "Maria Okafor"), ("LOC", "Oslo")]
    calls = len(pipeline.calls)
    demo.button.click()
    assert len(pipeline.calls) == calls + 1 and pipeline.calls[-1] == ("ner", "Maria Okafor flew to Oslo.")


def test_qa_widget_highlights_the_best_answer_and_tables_the_top_k():
    pipeline = StubPipeline()
    demo = qa_widget(pipeline, context=CONTEXT, question="Who was born in Lisbon?", top_k=2)
    assert "nerqa-qa-output" in classes(demo.output)
    page = read(demo.output.value.split("<table")[0])
    assert [page.text[start:end] for start, end, _ in page.marks] == ["Maria Okafor"]
    assert demo.output.value.count("<tr>") == 1 + 2  # header + two answers
    demo.top_k.value = 3
    assert pipeline.calls[-1] == ("qa", "Who was born in Lisbon?", 3)
    assert demo.output.value.count("<tr>") == 1 + 3 and "nerqa-answers-table" in demo.output.value
    demo.top_k.value = 1  # the pipeline returns one dict, not a list
    assert demo.output.value.count("<tr>") == 1 + 1


def test_qa_widget_shows_pipeline_errors_in_place():
    demo = qa_widget(StubPipeline(), context=CONTEXT, question="Where?")
    demo.question.value = "   "
    assert "nerqa-error" in demo.output.value and "question is empty" in demo.output.value
    demo.question.value = "Who?"
    assert "nerqa-error" not in demo.output.value and "<mark" in demo.output.value


# -- a real saved model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_pipeline(tmp_path_factory):
    """The bundled MiniLM with random heads, biased so that every word is tagged I-PER; saved and
    loaded back the way notebook 09 loads a trained model."""
    import torch

    from nerqa_helpers.encoders import load_tokenizer
    from nerqa_helpers.inference import MultiTaskPipeline
    from nerqa_helpers.model import MultiTaskModel
    from nerqa_helpers.training import save_model

    torch.manual_seed(0)
    model = MultiTaskModel.from_encoder("default")
    with torch.no_grad():
        model.ner_head.bias[model.config.ner_label_names.index("I-PER")] = 50.0
    directory = save_model(model, load_tokenizer(), tmp_path_factory.mktemp("model") / "best")
    return MultiTaskPipeline.from_pretrained(directory)


def test_widgets_with_a_real_saved_model(real_pipeline):
    demo = ner_widget(real_pipeline)
    demo.text.value = "Maria Okafor lives in Lisbon"
    page = read(demo.output.value)
    assert page.text == "Maria Okafor lives in Lisbon"
    assert [(start, end, attrs["data-entity"]) for start, end, attrs in page.marks] == [(0, 28, "PER")]

    demo = qa_widget(real_pipeline, top_k=3)
    answers = real_pipeline.qa(demo.question.value, demo.context.value, top_k=3)
    page = read(demo.output.value.split("<table")[0])
    assert [(start, end) for start, end, _ in page.marks] == [(answers[0]["start"], answers[0]["end"])]
    assert demo.output.value.count("<tr>") == 1 + len(answers)


# == the lab bench: pure functions of demo and demo_views ==========================================
def test_the_first_piece_of_a_word_carries_its_label_and_the_others_get_minus_100():
    tokens = ["[CLS]", "ok", "##afor", "lives", "[SEP]"]
    rows = demo.piece_rows(tokens, [None, 0, 0, 1, None], ["B-PER", "O"])
    assert [row.label for row in rows] == ["-100", "B-PER", "-100", "O", "-100"]
    assert [row.word for row in rows] == [None, 0, 0, 1, None]


def test_word_tag_probabilities_are_read_where_each_word_is_scored():
    features = {"word_ids": [[-1, 0, -1, -1], [-1, -1, 1, -1]]}  # word 1 is scored in the second window
    logits = [np.zeros((4, 3)), np.zeros((4, 3))]
    logits[0][1] = [5.0, 0.0, 0.0]
    logits[1][2] = [0.0, 0.0, 5.0]
    table = demo.word_tag_probabilities(features, logits, num_words=3, num_labels=3)
    assert table.shape == (3, 3)
    assert table[0].argmax() == 0 and table[1].argmax() == 2 and not table[2].any()  # word 2: no piece
    assert np.allclose(table[:2].sum(axis=1), 1.0)


ERROR_KINDS = ("correct", "missed", "spurious", "wrong type", "wrong boundary")
GOLD = [("PER", 0, 2), ("LOC", 4, 5), ("ORG", 7, 9), ("MISC", 11, 12)]
PREDICTED = [("PER", 0, 2), ("ORG", 4, 5), ("ORG", 7, 8), ("LOC", 13, 14)]


def test_entity_errors_are_named_missed_spurious_wrong_type_wrong_boundary():
    rows = demo.compare_entities(GOLD, PREDICTED)
    assert [(row.kind, row.gold, row.predicted) for row in rows] == [
        ("correct", ("PER", 0, 2), ("PER", 0, 2)),
        ("wrong type", ("LOC", 4, 5), ("ORG", 4, 5)),
        ("wrong boundary", ("ORG", 7, 9), ("ORG", 7, 8)),
        ("missed", ("MISC", 11, 12), None),
        ("spurious", None, ("LOC", 13, 14)),
    ]
    split = demo.compare_entities([("LOC", 0, 3)], [("LOC", 0, 2), ("LOC", 2, 3)])  # one gold, two guesses
    assert [row.kind for row in split] == ["wrong boundary", "wrong boundary"]
    assert [row.kind for row in demo.compare_entities(GOLD, GOLD)] == ["correct"] * 4


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_every_gold_and_predicted_entity_appears_in_the_comparison(data):
    tags = st.lists(st.sampled_from(NER_LABELS), min_size=0, max_size=12)
    gold, predicted = demo.iob2_spans(data.draw(tags)), demo.iob2_spans(data.draw(tags))
    rows = demo.compare_entities(gold, predicted)
    assert {row.gold for row in rows if row.gold} == set(gold)
    assert {row.predicted for row in rows if row.predicted} == set(predicted)
    assert all(row.kind in ERROR_KINDS for row in rows)
    assert all((row.kind == "correct") == (row.gold == row.predicted) for row in rows)


def fake_qa_features():
    """Two windows over characters 0-30 and 20-50 (question tokens and [CLS] have no offsets)."""
    first = [None, None] + [(start, start + 5) for start in range(0, 30, 5)] + [None]
    second = [None, None] + [(start, start + 5) for start in range(20, 50, 5)] + [None]
    return {"offset_mapping": [first, second]}


def test_span_map_windows_their_overlap_and_the_windows_holding_a_span():
    features = fake_qa_features()
    starts = [np.zeros(9), np.zeros(9)]
    starts[1][4] = 10.0  # second window: "start here" at characters 30-35
    windows = demo.window_scores(features, starts, [np.zeros(9), np.zeros(9)])
    assert [(window.char_start, window.char_end) for window in windows] == [(0, 30), (20, 50)]
    assert len(windows[0].tokens) == 6 and abs(windows[0].tokens[0].start_probability - 1 / 9) < 1e-9
    assert windows[1].tokens[2].start_probability > 0.99
    spans = demo.SpanMap("q?", "x" * 50, windows, [{"answer": "x" * 5, "start": 30, "end": 35, "score": 0.9}])
    assert spans.overlaps() == [(20, 30)]
    assert spans.windows_holding(22, 28) == [0, 1] and spans.windows_holding(30, 35) == [1]


def test_span_map_html_marks_windows_overlaps_the_answer_and_runner_ups():
    windows = demo.window_scores(fake_qa_features(), [np.zeros(9)] * 2, [np.zeros(9)] * 2)
    context = "".join(chr(ord("a") + index // 5) for index in range(50))  # aaaaabbbbb...: a token = a letter
    answers = [{"answer": "ggggg", "start": 30, "end": 35, "score": 0.7},
               {"answer": "eeeee", "start": 20, "end": 25, "score": 0.2}]
    html = span_map_html(demo.SpanMap("q?", context, windows, answers))
    assert html.count('class="nerqa-window"') == 2 and 'data-windows="2"' in html
    best = re.findall(r'class="nerqa-token nerqa-span-best"[^>]*><span[^>]*>(\w+)<', html)
    assert best == ["ggggg"]  # only in the second window
    runner_up = re.findall(r'class="nerqa-token nerqa-overlap nerqa-span-runner-up"', html)
    assert len(runner_up) == 2  # characters 20-25 lie in both windows, in the shared part
    assert html.count("nerqa-overlap") == 2 * 2  # 20-30: two tokens, in each of the two windows
    assert html.count('<tr class="nerqa-span-answer">') == 2


def column(html, css_class):
    """The inside of the side-by-side column ``<div class="css_class" ...>`` up to the next column."""
    inside = html.split(f'class="{css_class}"', 1)[1].split(">", 1)[1]
    return inside.split('<div class="nerqa-predicted"', 1)[0]


def test_ner_example_html_shows_gold_and_predicted_and_names_each_error():
    words = "Ana Silva met Bo in Rome with Acme Corp and Zed .".split()
    gold = ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "O", "O", "O"]
    predicted = ["B-PER", "I-PER", "O", "O", "O", "B-ORG", "O", "B-ORG", "O", "O", "B-LOC", "O"]
    example = demo.NerExample(words, gold, predicted, demo.compare_entities(
        demo.iob2_spans(gold), demo.iob2_spans(predicted)))
    html = ner_example_html(example)
    assert re.findall(r'data-kind="([^"]+)"', html) == ["correct", "missed", "wrong type", "wrong boundary", "spurious"]
    gold_part, predicted_part = column(html, "nerqa-gold"), column(html, "nerqa-predicted")
    assert read(gold_part).text.startswith("gold" + " ".join(words))
    assert [attrs["data-entity"] for _, _, attrs in read(gold_part).marks] == ["PER", "PER", "LOC", "ORG"]
    assert [attrs["data-entity"] for _, _, attrs in read(predicted_part).marks] == ["PER", "ORG", "ORG", "LOC"]


def test_qa_example_scores_em_and_f1_against_every_gold_answer():
    row = {"question": "Where?", "context": CONTEXT,
           "answers": {"text": ["Oslo", "in Oslo"], "answer_start": [CONTEXT.rindex("Oslo"), CONTEXT.rindex("in Oslo")]}}
    example = demo.qa_example(StubPipeline(), row)  # the stub answers "Maria Okafor"
    assert (example.exact_match, example.f1) == (0.0, 0.0)
    assert [CONTEXT[gold["start"]:gold["end"]] for gold in example.gold] == ["Oslo", "in Oslo"]
    html = qa_example_html(example)
    assert 'data-exact-match="0.0"' in html and "Maria Okafor" in html
    gold, predicted = read(column(html, "nerqa-gold")), read(column(html, "nerqa-predicted"))
    assert [gold.text[start:end] for start, end, _ in gold.marks] == ["Oslo"]
    assert [predicted.text[start:end] for start, end, _ in predicted.marks] == ["Maria Okafor"]


def test_task_mix_follows_the_sampling_plan_for_real_sizes_and_lambda():
    counts = {"ner": 320, "qa": 96}  # training features
    mix = demo_runs.task_mix_over_steps(counts, "proportional", batch_size=32)
    assert mix.batch_counts == {"ner": 10, "qa": 3} and len(mix.schedule) == 13
    assert mix.shares == {"ner": 10 / 13, "qa": 3 / 13}
    assert mix.cumulative().iloc[-1].to_dict() == pytest.approx(mix.shares)
    epochs = demo_runs.task_mix_over_steps(counts, "proportional", batch_size=32, task_epochs={"ner": 2, "qa": 1})
    assert epochs.batch_counts == {"ner": 20, "qa": 3}
    robin = demo_runs.task_mix_over_steps(counts, "round_robin", batch_size=32)
    assert robin.schedule[:6] == ["ner", "qa"] * 3
    weighted = demo_runs.task_mix_over_steps(counts, "proportional", lambdas={"ner": 0.3, "qa": 1.0}, batch_size=32)
    assert weighted.weighted_shares["ner"] == pytest.approx(10 * 0.3 / (10 * 0.3 + 3))
    alone = demo_runs.task_mix_over_steps(counts, "temperature", lambdas={"ner": 0.0, "qa": 1.0}, batch_size=32)
    assert set(alone.schedule) == {"qa"} and alone.shares == {"qa": 1.0}
    with pytest.raises(ValueError, match="No task left"):
        demo_runs.task_mix_over_steps(counts, lambdas={"ner": 0, "qa": 0})


def history_records(weights=None, eval_scores=(20.0, 30.0)):
    records = []
    for step in range(1, 9):
        task = "ner" if step % 2 else "qa"
        record = {"kind": "train", "step": step, "task": task, "loss": float(10 - step), "lr": 1e-4}
        if weights:
            record.update({f"weight_{name}": value + step / 100 for name, value in weights.items()})
        records.append(record)
    for step, score in zip((4, 8), eval_scores):
        records.append({"kind": "eval", "step": step, "ner_f1": score, "qa_exact_match": score / 2,
                        "qa_f1": score / 2 + 1, "score": score})
    return records


def test_loss_curves_smooth_per_task_and_weight_curves_come_from_balanced_runs():
    histories = {"plain": pd.DataFrame(history_records()),
                 "gradnorm": pd.DataFrame(history_records({"ner": 1.2, "qa": 0.8}))}
    curves = demo_runs.loss_curves(histories, "ner", window=2)
    plain = curves[curves["run"] == "plain"]
    assert list(plain["step"]) == [1, 3, 5, 7] and list(plain["loss"]) == [9, 7, 5, 3]
    assert list(plain["smoothed"]) == [9, 8, 6, 4]
    weights = demo_runs.task_weight_curves(histories)
    assert set(weights["run"]) == {"gradnorm"} and set(weights["task"]) == {"ner", "qa"}
    assert weights[(weights["task"] == "ner")]["weight"].iloc[0] == pytest.approx(1.21)
    assert demo_runs.task_weight_curves({"plain": histories["plain"]}).empty


def test_find_runs_reads_scores_from_the_best_checkpoint_first(tmp_path):
    (tmp_path / "workbook-tiny" / "best").mkdir(parents=True)
    (tmp_path / "workbook-tiny" / "best" / "config.json").write_text("{}")
    (tmp_path / "workbook-tiny" / "workbook.json").write_text(json.dumps({"metrics": {"ner_f1": 50.0, "qa_f1": 9}}))
    (tmp_path / "notebook-06" / "GradNorm").mkdir(parents=True)
    (tmp_path / "notebook-06" / "GradNorm" / "history.json").write_text(json.dumps(history_records(eval_scores=(40, 35))))
    (tmp_path / "notebook-06" / "GradNorm" / "metrics.json").write_text(json.dumps({"ner_f1": 35.0}))
    (tmp_path / "final-only").mkdir()
    (tmp_path / "final-only" / "metrics.json").write_text(json.dumps({"ner_f1": 12.0, "task_mix": {"ner": 1}}))
    (tmp_path / "empty").mkdir()
    runs = {run.name: run for run in demo_runs.find_runs(tmp_path)}
    assert list(runs) == ["final-only", "notebook-06/GradNorm", "workbook-tiny"]
    assert runs["workbook-tiny"].scores == {"ner_f1": 50.0, "qa_f1": 9.0}
    assert runs["workbook-tiny"].model_dir == tmp_path / "workbook-tiny" / "best"
    assert runs["notebook-06/GradNorm"].scores == {"ner_f1": 40, "qa_exact_match": 20, "qa_f1": 21}  # best eval
    assert runs["notebook-06/GradNorm"].model_dir is None and runs["final-only"].history_path is None
    assert runs["final-only"].scores == {"ner_f1": 12.0}
    assert demo_runs.find_runs(tmp_path / "missing") == []


# == the lab bench: widgets with tiny models ========================================================
def tiny_bert_model(tokenizer, task_weights=None, seed=0):
    """A random 2-layer BERT with width 32 (fast) and decisive heads, so predictions hold entities."""
    from transformers import BertConfig

    from nerqa_helpers.model import MultiTaskConfig, MultiTaskModel

    torch.manual_seed(seed)
    encoder = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         vocab_size=tokenizer.vocab_size)
    model = MultiTaskModel(MultiTaskConfig(encoder_config=encoder.to_dict(), ner_label_names=NER_LABELS,
                                           task_weights=task_weights))
    with torch.no_grad():
        model.ner_head.weight.normal_(0, 2.0)
    return model


@pytest.fixture(scope="module")
def tiny_pipeline(tokenizer):
    """A tiny model behind short QA windows (64 tokens, stride 16), so a paragraph takes several."""
    from nerqa_helpers.inference import MultiTaskPipeline

    return MultiTaskPipeline(tiny_bert_model(tokenizer), tokenizer, qa_max_length=64, doc_stride=16)


@pytest.fixture(scope="module")
def runs_dir(tokenizer, tmp_path_factory):
    """A runs folder as notebooks 04-08 leave it: two saved models (multi-task, NER only) with their
    scores and histories, and a GradNorm run that kept only its history."""
    from nerqa_helpers.training import save_model

    root = tmp_path_factory.mktemp("runs")
    for name, weights, scores in (("workbook-tiny", None, (30.0, 40.0)), ("ner-alone", {"ner": 1.0, "qa": 0.0}, (35.0, 45.0))):
        save_model(tiny_bert_model(tokenizer, weights, seed=len(name)), tokenizer, root / name / "best")
        (root / name / "history.json").write_text(json.dumps(history_records(eval_scores=scores)))
    (root / "notebook-06-tiny" / "GradNorm").mkdir(parents=True)
    (root / "notebook-06-tiny" / "GradNorm" / "history.json").write_text(
        json.dumps(history_records({"ner": 1.1, "qa": 0.9})))
    return root


def test_subword_widget_shows_pieces_labels_and_the_pipelines_tags(tiny_pipeline):
    demo_widget = subword_widget(tiny_pipeline, text="Okafor visited Brackenquay")
    view = demo.subword_view(tiny_pipeline, "Okafor visited Brackenquay")
    assert view.tags == tiny_pipeline.ner_tags(view.words)  # the same tags the pipeline gives
    assert view.probabilities.shape == (3, len(NER_LABELS)) and np.allclose(view.probabilities.sum(axis=1), 1)
    labels = re.findall(r'class="nerqa-piece-label" data-label="([^"]+)"', demo_widget.output.value)
    pieces = re.findall(r'class="nerqa-piece"[^>]*>([^<]+)<', demo_widget.output.value)
    assert len(pieces) > 5 and pieces[0] == "[CLS]" and any(piece.startswith("##") for piece in pieces)
    assert [label for label in labels if label != "-100"] == view.tags  # one label per word, at its first piece
    assert labels.count("-100") == len(pieces) - 3
    demo_widget.text.value = "Lisbon"
    assert demo_widget.output.value.count('<tr data-word="') == 1
    demo_widget.text.value = "   "
    assert "(no words)" in demo_widget.output.value


def test_span_map_widget_shows_several_windows_for_a_long_context(tiny_pipeline):
    long_context = " ".join([CONTEXT] * 8)
    demo_widget = span_map_widget(tiny_pipeline, context=CONTEXT, question="Who was born in Lisbon?", top_k=3)
    assert 'data-windows="1"' in demo_widget.output.value
    demo_widget.context.value = long_context
    html = demo_widget.output.value
    windows = int(re.search(r'data-windows="(\d+)"', html).group(1))
    assert windows >= 3 and html.count('class="nerqa-window"') == windows and "nerqa-overlap" in html
    best = tiny_pipeline.qa("Who was born in Lisbon?", long_context)
    assert f'data-start="{best["start"]}"' in html and "nerqa-span-best" in html
    assert html.count('<tr class="nerqa-span-answer">') == 3
    starts = [float(value) for value in re.findall(r'data-start-probability="([\d.]+)"', html)]
    assert all(0 <= value <= 1 for value in starts)
    demo_widget.question.value = ""
    assert "nerqa-error" in demo_widget.output.value


def test_example_browser_walks_validation_examples_of_both_tasks(tiny_pipeline):
    from nerqa_helpers.data import load_tiny

    ner, qa = load_tiny("ner")["validation"], load_tiny("qa")["validation"]
    browser = example_browser(tiny_pipeline, ner, qa)
    assert browser.task.value == "ner" and browser.index.max == len(ner) - 1
    assert 'data-task="ner"' in browser.output.value and "nerqa-errors" in browser.output.value
    kinds = re.findall(r'data-kind="([^"]+)"', browser.output.value)
    gold = demo.iob2_spans([demo.tag_names(ner)[tag] for tag in ner[0]["ner_tags"]])
    assert len(kinds) >= len(gold) and set(kinds) <= set(ERROR_KINDS)
    browser.next.click()
    assert browser.index.value == 1
    browser.task.value = "qa"
    assert browser.index.value == 0 and browser.index.max == len(qa) - 1
    assert 'data-task="qa"' in browser.output.value and "data-exact-match=" in browser.output.value
    assert escape(qa[0]["question"]) in browser.output.value
    browser.index.value = len(qa) - 1
    assert escape(qa[len(qa) - 1]["question"]) in browser.output.value


def test_model_switcher_loads_models_lazily_and_compares_them(runs_dir):
    switcher = model_switcher(runs_dir)
    assert switcher.models.options == ("ner-alone", "workbook-tiny")  # the GradNorm run kept no model
    assert switcher.shelf.loaded == {} and "Compare" in switcher.output.value
    switcher.models.value = ("workbook-tiny",)
    switcher.button.click()
    assert list(switcher.shelf.loaded) == ["workbook-tiny"]
    switcher.models.value = ("workbook-tiny", "ner-alone")
    switcher.text.value = "Maria Okafor flew to Oslo."
    switcher.button.click()
    html = switcher.output.value
    assert re.findall(r'data-run="([^"]+)"', html) == ["workbook-tiny", "ner-alone"]
    assert "40.0" in html and "45.0" in html  # each model's best validation NER F1
    assert html.count("nerqa-ner-result") == 2
    assert html.count("nerqa-model-answer") == 1 and "not trained on this task" in html  # NER alone: no QA
    assert "loaded: workbook-tiny, ner-alone" in switcher.status.value
    switcher.models.value = ()
    switcher.button.click()
    assert "Choose one or more" in switcher.output.value


def test_model_switcher_without_runs_says_what_to_do(tmp_path):
    switcher = model_switcher(tmp_path)
    assert switcher.models.options == () and "run notebook 04" in switcher.status.value


def png_outputs(output):
    return [item for item in output.outputs if "image/png" in item.get("data", {})]


def test_task_mix_lab_redraws_the_plan_and_trains_live_with_a_launcher():
    calls = []

    def launch(strategy, temperature, lambdas, steps, step_hook):
        calls.append((strategy, temperature, lambdas, steps))
        for step in range(1, steps + 1):
            step_hook(step, {"ner" if step % 2 else "qa": torch.tensor(5.0 / step)})

    lab = task_mix_lab({"ner": 320, "qa": 960}, batch_size=32, launch=launch)
    assert 'data-task="ner" data-share="0.250000"' in lab.summary.value and "40 steps" in lab.summary.value
    assert len(png_outputs(lab.figure)) == 1
    lab.strategy.value = "round_robin"
    assert 'data-task="ner" data-share="0.250000"' in lab.summary.value  # turns, then qa alone
    lab.strategy.value = "temperature"
    lab.temperature.value = 100.0
    share = float(re.search(r'data-task="ner" data-share="([\d.]+)"', lab.summary.value).group(1))
    assert 0.3 < share < 0.7
    lab.lambda_qa.value = 0.0
    assert 'data-task="qa"' not in lab.summary.value and "ner 100.0%" in lab.summary.value
    lab.lambda_ner.value = 0.0
    assert "nerqa-error" in lab.summary.value and lab.figure.outputs == ()
    lab.lambda_ner.value, lab.lambda_qa.value = 1.0, 2.0
    lab.train_steps.value = 10
    lab.train.click()
    assert calls == [("temperature", 100.0, {"ner": 1.0, "qa": 2.0}, 10)]
    assert len(lab.trained[-1]) == 10 and len(png_outputs(lab.curves)) == 1 and "trained 10 steps" in lab.status.value


def test_task_mix_lab_launches_a_real_short_run(tokenizer, tmp_path):
    from transformers import BertConfig, BertModel

    from nerqa_helpers.data import load_tiny
    from nerqa_helpers.tasks import build_tasks

    encoder = tmp_path / "encoder"
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         vocab_size=tokenizer.vocab_size), add_pooling_layer=False).save_pretrained(encoder)
    ner = load_tiny("ner", max_examples={"train": 16, "validation": 4, "test": 4})
    qa = load_tiny("qa", max_examples={"train": 8, "validation": 2})
    tasks = build_tasks(tokenizer, ner, qa, qa_max_length=128, doc_stride=32)
    tokenizer.save_pretrained(encoder)

    def launch(**choices):
        return demo_runs.short_training_run(tasks, tokenizer, NER_LABELS, encoder=str(encoder), batch_size=4,
                                            **choices)

    counts = {task: len(data.train_features) for task, data in tasks.items()}
    lab = task_mix_lab(counts, batch_size=4, launch=launch)
    lab.strategy.value = "round_robin"
    lab.train_steps.value = 4
    lab.train.click()
    assert "trained 4 steps" in lab.status.value, lab.status.value
    assert [row["task"] for row in lab.trained[-1]] == ["ner", "qa", "ner", "qa"]
    assert len(png_outputs(lab.curves)) == 1


def test_history_explorer_plots_chosen_runs_and_balancer_weights(runs_dir):
    explorer = history_explorer(runs_dir, task="ner", window=3)
    assert explorer.runs.options == ("ner-alone", "notebook-06-tiny/GradNorm", "workbook-tiny")
    assert len(png_outputs(explorer.figure)) == 1 and 'data-weights="True"' in explorer.scores.value
    explorer.runs.value = ("workbook-tiny", "ner-alone")
    assert 'data-weights="False"' in explorer.scores.value and "<td>40.0</td>" in explorer.scores.value
    figure_before = png_outputs(explorer.figure)[0]["data"]["image/png"]
    explorer.task.value = "qa"
    explorer.smoothing.value = 1
    assert png_outputs(explorer.figure)[0]["data"]["image/png"] != figure_before
    assert set(explorer.histories) == {"ner-alone", "notebook-06-tiny/GradNorm", "workbook-tiny"}
