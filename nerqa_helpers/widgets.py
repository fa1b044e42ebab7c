"""Interactive demos for notebook 09: entities in a sentence, an answer in a paragraph, a task mix.

Each widget is a thin shell around a pure function that turns plain data into HTML or a table:

    highlight_entities_html(text, entities)   entities as <mark> elements, coloured by type
    highlight_answer_html(context, answer)     the answer span as a <mark> inside the paragraph
    answers_table(answers)                     the top-k answers and their scores, best first
    task_mix_for_temperature(sizes, T)         the chance of each task per step, p_i ∝ n_i^(1/T)

The widgets (``ner_widget``, ``qa_widget``, ``sampling_widget``) only read the inputs, call a
pipeline (``inference.MultiTaskPipeline`` or anything with the same ``.ner`` / ``.qa``) and write
the HTML. They use only what ipywidgets 7.7 (Colab) and 8 both offer. Each returns a ``VBox``
whose parts are also attributes, so a test can drive it without a browser::

    demo = ner_widget(pipeline)
    demo.text.value = "Maria Okafor lives in Lisbon."
    demo.update()                 # what the button does
    "<mark" in demo.output.value

Stable CSS classes (``nerqa-ner-output``, ``nerqa-qa-output``, ``nerqa-mix-output`` on the result
widgets, ``nerqa-entity`` / ``nerqa-answer`` on the marks) let a browser test find the results.
A face module: nothing in the package imports it.
"""
from __future__ import annotations

from html import escape
from typing import Mapping, Sequence

import pandas as pd

from .sampling import task_probabilities

ENTITY_COLOURS = {"PER": "#ffd6a5", "ORG": "#bde0fe", "LOC": "#caffbf", "MISC": "#e4c1f9"}
OTHER_COLOUR = "#e0e0e0"
ANSWER_COLOUR = "#fff3a3"
TASK_COLOURS = {"ner": "#1f77b4", "qa": "#ff7f0e"}
MARK_STYLE = "padding:0.1em 0.3em;margin:0 0.1em;border-radius:0.3em;line-height:2"
LABEL_STYLE = "font-size:0.7em;font-weight:bold;margin-left:0.3em;vertical-align:middle"

NER_EXAMPLE = "Maria Okafor left Veltrix Systems in March and moved from Lisbon to Oslo."
QA_EXAMPLE_CONTEXT = ("The Hollowmere Syndicate built its first barge in Brackenquay in 1911. Its founder, "
                      "Marisol Quenby, later moved the workshop to Vantorsk, where the company still "
                      "repairs river ferries.")
QA_EXAMPLE_QUESTION = "Who founded the Hollowmere Syndicate?"


# -- pure functions -------------------------------------------------------------------------------
def _checked_spans(text: str, items: Sequence[Mapping], kind: str) -> list[Mapping]:
    """``items`` sorted by start; ValueError when a span leaves the text or two spans overlap."""
    ordered = sorted(items, key=lambda item: (int(item["start"]), int(item["end"])))
    previous_end = 0
    for item in ordered:
        start, end = int(item["start"]), int(item["end"])
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"{kind} span ({start}, {end}) lies outside the text of length {len(text)}")
        if start < previous_end:
            raise ValueError(f"{kind} spans overlap at character {start}; give non-overlapping spans")
        previous_end = end
    return ordered


def entity_mark(text: str, entity_type: str, score: float | None = None) -> str:
    """One ``<mark>``: the (escaped) entity text, coloured by type, with the type as a label."""
    colour = ENTITY_COLOURS.get(entity_type, OTHER_COLOUR)
    kind = escape(entity_type, quote=True)
    title = f' title="{kind} {score:.2f}"' if score is not None else f' title="{kind}"'
    return (f'<mark class="nerqa-entity" data-entity="{kind}"{title} style="background:{colour};{MARK_STYLE}">'
            f'{escape(text)}<span class="nerqa-entity-label" style="{LABEL_STYLE}">{kind}</span></mark>')


def highlight_entities_html(text: str, entities: Sequence[Mapping]) -> str:
    """HTML of ``text`` with every entity as a coloured ``<mark data-entity="TYPE">``.

    ``entities``: dicts with ``start``, ``end`` (character offsets into ``text``), ``entity``
    (the type: PER, ORG, LOC, MISC, ...) and optionally ``score`` — what ``pipeline.ner(text)``
    returns. Everything from ``text`` is HTML-escaped; spans must not overlap. Returns one
    ``<div class="nerqa-ner-result">``; with no entities it says so below the text.
    """
    pieces, position = [], 0
    for entity in _checked_spans(text, entities, "Entity"):
        start, end = int(entity["start"]), int(entity["end"])
        pieces.append(escape(text[position:start]))
        pieces.append(entity_mark(text[start:end], str(entity["entity"]), entity.get("score")))
        position = end
    pieces.append(escape(text[position:]))
    note = "" if entities else '<div class="nerqa-note" style="color:#666">(no entities found)</div>'
    return f'<div class="nerqa-ner-result" style="line-height:2.2;white-space:pre-wrap">{"".join(pieces)}</div>{note}'


def entity_legend_html() -> str:
    """The colour of each entity type, as a key (plain spans, not marks)."""
    keys = "".join(f'<span style="background:{colour};{MARK_STYLE}">{kind}</span>'
                   for kind, colour in ENTITY_COLOURS.items())
    return f'<div class="nerqa-legend" style="font-size:0.85em">{keys}</div>'


def highlight_answer_html(context: str, answer: Mapping | None) -> str:
    """HTML of ``context`` with the answer span marked: ``<mark class="nerqa-answer">``.

    ``answer``: a dict with ``start`` and ``end`` (character offsets into ``context``) and
    optionally ``answer`` (its text, checked against ``context[start:end]``) and ``score``, as
    ``pipeline.qa`` returns it. An empty span (``start == end``, SQuAD v2's "no answer") or
    ``None`` marks nothing and says so. The context is HTML-escaped.
    """
    empty = answer is None or int(answer["start"]) == int(answer["end"])
    if not empty:
        start, end = int(answer["start"]), int(answer["end"])
        _checked_spans(context, [answer], "Answer")
        expected = answer.get("answer")
        if expected is not None and expected != context[start:end]:
            raise ValueError(f"The answer text {expected!r} is not context[{start}:{end}] = {context[start:end]!r}")
    if empty:
        body = escape(context) + '<div class="nerqa-note" style="color:#666">(no answer in this paragraph)</div>'
    else:
        score = answer.get("score")
        title = f' title="score {score:.3f}"' if score is not None else ""
        body = (f"{escape(context[:start])}<mark class=\"nerqa-answer\"{title} "
                f"style=\"background:{ANSWER_COLOUR};{MARK_STYLE}\">{escape(context[start:end])}</mark>"
                f"{escape(context[end:])}")
    return f'<div class="nerqa-qa-result" style="line-height:1.8;white-space:pre-wrap">{body}</div>'


def answers_table(answers: Mapping | Sequence[Mapping]) -> pd.DataFrame:
    """The candidate answers as a table, highest score first.

    ``answers``: one answer dict or a list of them (``answer``, ``score``, ``start``, ``end``), as
    ``pipeline.qa(..., top_k=k)`` returns. Columns: answer, score, start, end; index: rank 1, 2, ...
    """
    rows = [answers] if isinstance(answers, Mapping) else list(answers)
    table = pd.DataFrame(rows, columns=["answer", "score", "start", "end"])
    table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    return table


def task_mix_for_temperature(sizes: Mapping[str, int], temperature: float) -> dict[str, float]:
    """The chance that a training step picks each task under temperature sampling.

    ``sizes``: task → number of training batches (or examples). Returns task → p with
    p_i = n_i^(1/T) / Σ_j n_j^(1/T): T = 1 follows the sizes, a large T approaches uniform and
    T < 1 favours the big task even more. The same formula as ``sampling.task_probabilities``.
    """
    return task_probabilities(dict(sizes), "temperature", float(temperature))


def task_mix_html(mix: Mapping[str, float], sizes: Mapping[str, int] | None = None) -> str:
    """Horizontal bars (plain HTML) for a task mix: one ``<div data-task>`` per task, width ∝ p."""
    rows = []
    for index, (task, share) in enumerate(mix.items()):
        colour = TASK_COLOURS.get(task, f"hsl({97 * index % 360},60%,55%)")
        size = f" ({sizes[task]:,} batches)" if sizes and task in sizes else ""
        rows.append(
            f'<div class="nerqa-mix-row" data-task="{escape(task, quote=True)}" data-share="{share:.6f}" '
            f'style="display:flex;align-items:center;margin:2px 0">'
            f'<span style="width:11em">{escape(task)}{escape(size)}</span>'
            f'<span style="display:inline-block;height:1.1em;width:{100 * share:.1f}%;max-width:60%;'
            f'background:{colour}"></span><span style="margin-left:0.5em">{100 * share:.1f}%</span></div>'
        )
    return f'<div class="nerqa-mix-result">{"".join(rows)}</div>'


def error_html(error: Exception) -> str:
    """An error message a student can read in place of a result."""
    return f'<div class="nerqa-error" style="color:#b00020">{escape(type(error).__name__)}: {escape(str(error))}</div>'


# -- widgets ---------------------------------------------------------------------------------------
def _widgets():
    import ipywidgets  # imported here so the pure functions work without it

    return ipywidgets


def _wide(widgets, height: str | None = None):
    return widgets.Layout(width="95%", height=height) if height else widgets.Layout(width="95%")


def ner_widget(pipeline, text: str = NER_EXAMPLE):
    """Type a sentence, press the button (or leave the box), see its entities highlighted.

    ``pipeline``: anything with ``.ner(text) -> [{"entity", "start", "end", "score"}, ...]``.
    Returns a ``VBox`` with children ``[text, button, output, legend]``, also available as
    attributes; ``update()`` runs the pipeline and writes ``output.value``.
    """
    widgets = _widgets()
    box_text = widgets.Textarea(value=text, description="Sentence", layout=_wide(widgets, "4em"),
                                continuous_update=False)
    button = widgets.Button(description="Find entities", button_style="primary")
    output = widgets.HTML()
    legend = widgets.HTML(entity_legend_html())
    for widget, name in ((box_text, "nerqa-ner-input"), (button, "nerqa-ner-button"), (output, "nerqa-ner-output")):
        widget.add_class(name)

    def update(*_):
        try:
            output.value = highlight_entities_html(box_text.value, pipeline.ner(box_text.value))
        except Exception as error:  # a widget callback has nowhere else to show it
            output.value = error_html(error)

    button.on_click(update)
    box_text.observe(update, names="value")
    container = widgets.VBox([box_text, button, output, legend])
    container.text, container.button, container.output, container.legend = box_text, button, output, legend
    container.update = update
    update()
    return container


def qa_widget(pipeline, context: str = QA_EXAMPLE_CONTEXT, question: str = QA_EXAMPLE_QUESTION, top_k: int = 3):
    """Ask a question about a paragraph; see the answer highlighted and the top-k alternatives.

    ``pipeline``: anything with ``.qa(question, context, top_k=k)`` returning one answer dict
    (k = 1) or a list of them, best first (k > 1). Returns a ``VBox`` with children
    ``[question, context, top_k, button, output]``, also available as attributes;
    ``update()`` runs the pipeline and writes ``output.value`` (highlight + table).
    """
    widgets = _widgets()
    question_box = widgets.Text(value=question, description="Question", layout=_wide(widgets),
                                continuous_update=False)
    context_box = widgets.Textarea(value=context, description="Context", layout=_wide(widgets, "8em"),
                                   continuous_update=False)
    slider = widgets.IntSlider(value=top_k, min=1, max=10, description="top k", continuous_update=False)
    button = widgets.Button(description="Answer", button_style="primary")
    output = widgets.HTML()
    for widget, name in ((question_box, "nerqa-qa-question"), (context_box, "nerqa-qa-context"),
                         (slider, "nerqa-qa-top-k"), (button, "nerqa-qa-button"), (output, "nerqa-qa-output")):
        widget.add_class(name)

    def update(*_):
        try:
            answers = pipeline.qa(question_box.value, context_box.value, top_k=slider.value)
            answers = [answers] if isinstance(answers, Mapping) else list(answers)
            table = answers_table(answers).to_html(classes="nerqa-answers-table", float_format="{:.3f}".format)
            output.value = highlight_answer_html(context_box.value, answers[0] if answers else None) + table
        except Exception as error:
            output.value = error_html(error)

    button.on_click(update)
    for widget in (question_box, context_box, slider):
        widget.observe(update, names="value")
    container = widgets.VBox([question_box, context_box, slider, button, output])
    container.question, container.context, container.top_k = question_box, context_box, slider
    container.button, container.output, container.update = button, output, update
    update()
    return container


def sampling_widget(sizes: Mapping[str, int], temperature: float = 2.0):
    """Move the temperature T and watch the share of training steps each task gets.

    ``sizes``: task → number of batches. Returns a ``VBox`` with children ``[temperature,
    output]`` (a log slider from 0.1 to 100, and the bars of ``task_mix_html``), also available
    as attributes; ``update()`` redraws the bars.
    """
    widgets = _widgets()
    slider = widgets.FloatLogSlider(value=temperature, base=10, min=-1, max=2, step=0.05,
                                    description="T", readout_format=".2f")
    output = widgets.HTML()
    slider.add_class("nerqa-temperature")
    output.add_class("nerqa-mix-output")

    def update(*_):
        output.value = task_mix_html(task_mix_for_temperature(sizes, slider.value), sizes)

    slider.observe(update, names="value")
    container = widgets.VBox([slider, output])
    container.temperature, container.output, container.update = slider, output, update
    update()
    return container
