"""The widget demos: pure HTML/table functions first, then the widgets driven without a browser.

The HTML is read back with ``html.parser``: the visible text must be the input text exactly, and
the marks must cover exactly the given character spans. The widgets are driven the way a student
drives them (set a value, press the button) against a stub pipeline with fixed answers, and once
against a real saved model.
"""
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerqa_helpers.sampling import task_probabilities
from nerqa_helpers.widgets import (
    answers_table,
    highlight_answer_html,
    highlight_entities_html,
    ner_widget,
    qa_widget,
    sampling_widget,
    task_mix_for_temperature,
    task_mix_html,
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


def test_sampling_widget_redraws_the_mix_for_the_slider_value():
    sizes = {"ner": 40, "qa": 360}
    demo = sampling_widget(sizes, temperature=1.0)
    assert "nerqa-mix-output" in classes(demo.output)
    assert 'data-task="ner" data-share="0.100000"' in demo.output.value
    demo.temperature.value = 100.0
    expected = task_mix_for_temperature(sizes, demo.temperature.value)["ner"]
    assert f'data-task="ner" data-share="{expected:.6f}"' in demo.output.value and expected > 0.45


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
