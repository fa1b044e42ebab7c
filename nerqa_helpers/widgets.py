"""The lab bench of notebook 09 as ipywidgets: each widget reads its inputs, calls a pure function
of ``demo`` (one input) or ``demo_runs`` (training runs) and draws the result with ``demo_views``.

    ner_widget / qa_widget        entities in a sentence; an answer in a paragraph with the top k
    subword_widget                word pieces, the -100 labels, P(tag | word) as a heat table
    span_map_widget               P(start) / P(end) over every QA window, overlaps, answer and runner-ups
    example_browser               validation examples, gold against predicted, errors named, EM / F1
    model_switcher                the same input through several saved runs, with their scores
    task_mix_lab                  strategy and λ → the planned batch mix; a short live training run
    history_explorer              loss curves of saved runs, smoothed; balancer weights over the steps

Only what ipywidgets 7.7 (Colab) and 8 both offer is used. Each widget is a ``VBox`` whose parts
are also attributes, so a test drives it without a browser: set ``.value``, ``button.click()``,
read ``output.value`` (HTML) or ``output.outputs`` (figures, as PNG). Stable CSS classes on the
parts (``nerqa-ner-output``, ``nerqa-span-output``, ``nerqa-example-output``, ...) let a browser
test find them. A face module: nothing in the package imports it.
"""
from __future__ import annotations

import time
from io import BytesIO
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from . import demo, demo_runs
from .demo_views import (  # noqa: F401  (the pure functions, importable from here as before)
    answers_table,
    comparison_html,
    entity_legend_html,
    error_html,
    highlight_answer_html,
    highlight_entities_html,
    loss_figure,
    ner_example_html,
    qa_example_html,
    span_map_html,
    subword_html,
    task_mix_figure,
    task_mix_for_temperature,
    task_mix_html,
)
from .presets import STRATEGIES, TASKS

NER_EXAMPLE = "Maria Okafor left Veltrix Systems in March and moved from Lisbon to Oslo."
QA_EXAMPLE_CONTEXT = ("The Hollowmere Syndicate built its first barge in Brackenquay in 1911. Its founder, "
                      "Marisol Quenby, later moved the workshop to Vantorsk, where the company still "
                      "repairs river ferries.")
QA_EXAMPLE_QUESTION = "Who founded the Hollowmere Syndicate?"


# -- shared pieces ---------------------------------------------------------------------------------
def _widgets():
    import ipywidgets  # imported here so the pure functions work without it

    return ipywidgets


def _wide(widgets, height: str | None = None):
    return widgets.Layout(width="95%", height=height) if height else widgets.Layout(width="95%")


def _labelled(pairs) -> None:
    """Add a CSS class to each widget: ``(widget, "nerqa-...")`` pairs."""
    for widget, name in pairs:
        widget.add_class(name)


def _container(widgets, children: Sequence, **parts):
    """A VBox of ``children``; ``parts`` (name → widget or function) become its attributes."""
    box = widgets.VBox(list(children))
    for name, part in parts.items():
        setattr(box, name, part)
    return box


def _guarded(output, render: Callable[[], str]) -> None:
    """``output.value = render()``, or the error as text: a widget callback has nowhere else to show it."""
    try:
        output.value = render()
    except Exception as error:
        output.value = error_html(error)


def figure_image(figure):
    """A Matplotlib Figure as an ``IPython.display.Image`` (PNG) that any front end shows."""
    from IPython.display import Image

    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return Image(data=buffer.getvalue(), format="png")


def show_figure(output, figure) -> None:
    """Replace what ``output`` (an ``ipywidgets.Output``) shows by ``figure``; works in and out of a kernel."""
    output.outputs = ()
    output.append_display_data(figure_image(figure))


def _runs(runs_or_folder) -> list:
    return demo_runs.find_runs(runs_or_folder) if isinstance(runs_or_folder, (str, Path)) else list(runs_or_folder)


# -- today's two -----------------------------------------------------------------------------------
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



# -- 1. sub-words and 2. span map ------------------------------------------------------------------
def subword_widget(pipeline, text: str = NER_EXAMPLE):
    """A sentence → its word pieces, which piece carries each word's label (-100 on the others),
    and P(tag | word) as a heat table (``demo.subword_view``). Children ``[text, button, output]``."""
    widgets = _widgets()
    box_text = widgets.Text(value=text, description="Sentence", layout=_wide(widgets), continuous_update=False)
    button = widgets.Button(description="Show pieces", button_style="primary")
    output = widgets.HTML()
    _labelled(((box_text, "nerqa-subword-input"), (button, "nerqa-subword-button"), (output, "nerqa-subword-output")))

    def update(*_):
        _guarded(output, lambda: subword_html(demo.subword_view(pipeline, box_text.value)))

    button.on_click(update)
    box_text.observe(update, names="value")
    update()
    return _container(widgets, [box_text, button, output], text=box_text, button=button, output=output, update=update)


def span_map_widget(pipeline, context: str = QA_EXAMPLE_CONTEXT, question: str = QA_EXAMPLE_QUESTION, top_k: int = 5):
    """A question about a paragraph → P(start) and P(end) of every context token in every window,
    the windows' overlaps, the chosen span and the runner-ups (``demo.span_map``). Children
    ``[question, context, top_k, button, output]``."""
    widgets = _widgets()
    question_box = widgets.Text(value=question, description="Question", layout=_wide(widgets), continuous_update=False)
    context_box = widgets.Textarea(value=context, description="Context", layout=_wide(widgets, "8em"),
                                   continuous_update=False)
    slider = widgets.IntSlider(value=top_k, min=1, max=10, description="top k", continuous_update=False)
    button = widgets.Button(description="Map the spans", button_style="primary")
    output = widgets.HTML()
    _labelled(((question_box, "nerqa-span-question"), (context_box, "nerqa-span-context"),
               (button, "nerqa-span-button"), (output, "nerqa-span-output")))

    def update(*_):
        _guarded(output, lambda: span_map_html(demo.span_map(pipeline, question_box.value, context_box.value, slider.value)))

    button.on_click(update)
    for widget in (question_box, context_box, slider):
        widget.observe(update, names="value")
    update()
    return _container(widgets, [question_box, context_box, slider, button, output], question=question_box,
                      context=context_box, top_k=slider, button=button, output=output, update=update)


# -- 3. example browser ----------------------------------------------------------------------------
def example_browser(pipeline, ner_examples=None, qa_examples=None, task: str | None = None, index: int = 0):
    """Validation examples one by one: gold and predicted side by side, NER errors named, QA EM/F1.

    ``ner_examples``: a CoNLL-style ``Dataset`` (``tokens``, ``ner_tags``); ``qa_examples``: a
    SQuAD-style one; either may be None. Children ``[task, index, next, output]``: a task
    dropdown, an example slider, a "next" button and the HTML.
    """
    widgets = _widgets()
    sources = {name: data for name, data in (("ner", ner_examples), ("qa", qa_examples)) if data is not None and len(data)}
    if not sources:
        raise ValueError("example_browser needs a non-empty NER or QA dataset")
    labels = {"ner": "NER sentence", "qa": "QA question"}
    chooser = widgets.Dropdown(options=[(labels[name], name) for name in sources], value=task or next(iter(sources)),
                               description="Task")
    slider = widgets.IntSlider(value=0, min=0, max=len(sources[chooser.value]) - 1, description="Example",
                               continuous_update=False)
    button = widgets.Button(description="Next example")
    output = widgets.HTML()
    _labelled(((chooser, "nerqa-example-task"), (slider, "nerqa-example-index"), (button, "nerqa-example-next"),
               (output, "nerqa-example-output")))

    def render() -> str:
        dataset, row = sources[chooser.value], sources[chooser.value][slider.value]
        if chooser.value == "ner":
            names = demo.tag_names(dataset)
            return ner_example_html(demo.ner_example(pipeline, row["tokens"], [names[tag] for tag in row["ner_tags"]]))
        return qa_example_html(demo.qa_example(pipeline, row))

    def update(*_):
        _guarded(output, render)

    def switch_task(*_):
        slider.value = 0
        slider.max = len(sources[chooser.value]) - 1
        update()

    def next_example(*_):
        slider.value = (slider.value + 1) % (slider.max + 1)

    chooser.observe(switch_task, names="value")
    slider.observe(update, names="value")
    button.on_click(next_example)
    slider.value = min(max(index, 0), slider.max)
    update()
    return _container(widgets, [widgets.HBox([chooser, slider, button]), output], task=chooser, index=slider,
                      next=button, output=output, update=update)


# -- 4. model switcher -----------------------------------------------------------------------------
def model_switcher(runs, text: str = NER_EXAMPLE, question: str = QA_EXAMPLE_QUESTION,
                   context: str = QA_EXAMPLE_CONTEXT, load: Callable | None = None):
    """The same sentence and question through several saved models, side by side with their
    validation scores. ``runs``: the runs folder (``workbook.settings().runs_dir``) or
    ``demo_runs.SavedRun``s; a model is loaded when first compared (``demo_runs.ModelShelf``;
    ``load``: folder → pipeline). Children ``[models, text, question, context, button, status,
    output]``."""
    widgets = _widgets()
    shelf = demo_runs.ModelShelf(_runs(runs), load)
    names = shelf.names()
    chooser = widgets.SelectMultiple(options=names, value=tuple(names[:2]), description="Models",
                                     rows=min(max(len(names), 2), 8), layout=_wide(widgets))
    box_text = widgets.Text(value=text, description="Sentence", layout=_wide(widgets))
    question_box = widgets.Text(value=question, description="Question", layout=_wide(widgets))
    context_box = widgets.Textarea(value=context, description="Context", layout=_wide(widgets, "5em"))
    button = widgets.Button(description="Compare", button_style="primary")
    status, output = widgets.HTML(), widgets.HTML()
    _labelled(((chooser, "nerqa-switcher-models"), (button, "nerqa-switcher-button"), (output, "nerqa-switcher-output")))

    def show_status():
        loaded = ", ".join(shelf.loaded) or "none yet"
        status.value = (f'<div class="nerqa-note" style="color:#555">{len(names)} saved models found; '
                        f"loaded: {loaded}</div>" if names else
                        '<div class="nerqa-note">No saved model in the runs folder yet: run notebook 04 (and 05–08).</div>')

    def update(*_):
        if not chooser.value:
            output.value = '<div class="nerqa-note">Choose one or more models.</div>'
            return
        _guarded(output, lambda: comparison_html(demo_runs.compare_models(
            shelf, chooser.value, box_text.value, question_box.value, context_box.value), box_text.value))
        show_status()

    button.on_click(update)
    show_status()
    output.value = '<div class="nerqa-note">Choose models and press Compare (each loads on first use).</div>'
    return _container(widgets, [chooser, box_text, question_box, context_box, button, status, output], models=chooser,
                      text=box_text, question=question_box, context=context_box, button=button, status=status,
                      output=output, shelf=shelf, update=update)


# -- 5. task-mix lab -------------------------------------------------------------------------------
class LiveCurves:
    """A ``step_hook`` for ``training.train`` that records each task's loss and redraws the curves
    into an ``Output`` every ``every`` steps (``redraw()`` draws the rest at the end)."""

    def __init__(self, output, every: int = 5, window: int = 5):
        self.output, self.every, self.window = output, every, window
        self.rows: list[dict] = []

    def __call__(self, step: int, task_losses, model=None) -> None:
        for task, loss in task_losses.items():
            self.rows.append({"kind": "train", "step": step, "task": task, "loss": float(loss.detach())})
        if step % self.every == 0:
            self.redraw()

    def redraw(self) -> None:
        history = {"this run": pd.DataFrame(self.rows)}
        curves = pd.concat([demo_runs.loss_curves(history, task, self.window).assign(run=task)
                            for task in sorted({row["task"] for row in self.rows})], ignore_index=True)
        show_figure(self.output, loss_figure(curves, task="task"))


def task_mix_lab(feature_counts: Mapping[str, int], batch_size: int = 32, task_epochs=1.0, strategy: str = "proportional",
                 temperature: float = 2.0, launch: Callable | None = None, seed: int = 0):
    """Pick a sampling strategy, a temperature and λ per task; see the batch mix the training loop
    would plan for this run's ``feature_counts`` (training features per task), over the steps.

    ``launch``: optional ``launch(strategy=, temperature=, lambdas=, steps=, step_hook=)`` that trains
    a fresh model (``demo_runs.short_training_run`` with the data bound); a button then runs it and
    the loss curves are drawn live. Children ``[strategy, temperature, lambda_ner, lambda_qa, summary,
    figure]`` (+ ``[train_steps, train, status, curves]`` with ``launch``).
    """
    widgets = _widgets()
    chooser = widgets.Dropdown(options=list(STRATEGIES), value=strategy, description="Strategy")
    slider = widgets.FloatLogSlider(value=temperature, base=10, min=-1, max=2, step=0.05, description="T",
                                    readout_format=".2f", continuous_update=False)
    lambdas = {task: widgets.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.1, description=f"λ {task}",
                                         continuous_update=False) for task in TASKS}
    summary, figure = widgets.HTML(), widgets.Output()
    _labelled(((chooser, "nerqa-mix-strategy"), (summary, "nerqa-mix-output"), (figure, "nerqa-mix-figure")))

    def current() -> dict:
        return {"strategy": chooser.value, "temperature": slider.value,
                "lambdas": {task: box.value for task, box in lambdas.items()}}

    def update(*_):
        slider.disabled = chooser.value != "temperature"  # T only matters to temperature sampling
        try:
            mix = demo_runs.task_mix_over_steps(feature_counts, batch_size=batch_size, task_epochs=task_epochs,
                                                seed=seed, **current())
        except Exception as error:
            summary.value, figure.outputs = error_html(error), ()
            return
        weighted = " · ".join(f"{task} {100 * share:.1f}%" for task, share in mix.weighted_shares.items())
        summary.value = (f"{task_mix_html(mix.shares, mix.batch_counts)}<div class=\"nerqa-weighted-share\">"
                         f"{len(mix.schedule)} steps; share of the loss once weighted by λ: {weighted}</div>")
        show_figure(figure, task_mix_figure(mix))

    for widget in (chooser, slider, *lambdas.values()):
        widget.observe(update, names="value")
    update()
    children = [chooser, slider, *lambdas.values(), summary, figure]
    parts = dict(strategy=chooser, temperature=slider, lambda_ner=lambdas["ner"], lambda_qa=lambdas["qa"],
                 summary=summary, figure=figure, update=update)
    if launch is not None:
        steps = widgets.IntSlider(value=20, min=2, max=200, description="steps")
        button = widgets.Button(description="Train a fresh model", button_style="warning")
        status, curves, trained = widgets.HTML(), widgets.Output(), []
        _labelled(((button, "nerqa-lab-train"), (status, "nerqa-lab-status"), (curves, "nerqa-lab-curves")))

        def train(*_):
            hook, started = LiveCurves(curves, every=max(steps.value // 10, 1)), time.perf_counter()
            status.value = f"training {steps.value} steps ..."
            try:
                launch(steps=steps.value, step_hook=hook, **current())
                hook.redraw()
                status.value = f"trained {steps.value} steps in {time.perf_counter() - started:.0f} s"
            except Exception as error:
                status.value = error_html(error)
            trained.append(hook.rows)

        button.on_click(train)
        children += [widgets.HBox([steps, button]), status, curves]
        parts.update(train_steps=steps, train=button, status=status, curves=curves, trained=trained)
    return _container(widgets, children, **parts)


# -- 6. training histories -------------------------------------------------------------------------
def history_explorer(runs, task: str = "ner", window: int = 10, chosen: Sequence[str] | None = None):
    """Loss curves of saved runs for one task, smoothed over ``window`` steps, and the task weights
    of runs that used a loss balancer. ``runs``: the runs folder or ``demo_runs.SavedRun``s (those
    with a ``history.json``). Children ``[runs, task, smoothing, scores, figure]``."""
    widgets = _widgets()
    found = {run.name: run for run in _runs(runs) if run.history_path is not None}
    names = list(found)
    default = sorted(names, key=lambda name: not name.startswith("workbook"))[:3]  # the notebook 04 run first
    chooser = widgets.SelectMultiple(options=names, value=tuple(chosen if chosen is not None else default),
                                     description="Runs", rows=min(max(len(names), 2), 8), layout=_wide(widgets))
    task_box = widgets.Dropdown(options=["ner", "qa"], value=task, description="Task")
    smoothing = widgets.IntSlider(value=window, min=1, max=50, description="Smoothing", continuous_update=False)
    scores, figure = widgets.HTML(), widgets.Output()
    _labelled(((chooser, "nerqa-history-runs"), (scores, "nerqa-history-output"), (figure, "nerqa-history-figure")))
    histories: dict = {}

    def update(*_):
        try:
            for name in chooser.value:
                if name not in histories:
                    histories[name] = demo_runs.load_run_history(found[name])
            chosen_histories = {name: histories[name] for name in chooser.value}
            curves = demo_runs.loss_curves(chosen_histories, task_box.value, smoothing.value)
            weights = demo_runs.task_weight_curves(chosen_histories)
            table = pd.DataFrame({name: found[name].scores for name in chooser.value}).T.reindex(
                columns=list(demo_runs.SCORE_KEYS))
            note = (f"task weights of {', '.join(weights['run'].unique())}" if len(weights)
                    else "no chosen run used a loss balancer (no task weights logged)")
            scores.value = (table.round(2).to_html(classes="nerqa-history-scores", na_rep="—")
                            + f'<div class="nerqa-note" data-weights="{len(weights) > 0}">{note}</div>')
            show_figure(figure, loss_figure(curves, weights, task_box.value))
        except Exception as error:
            scores.value, figure.outputs = error_html(error), ()

    for widget in (chooser, task_box, smoothing):
        widget.observe(update, names="value")
    update()
    return _container(widgets, [chooser, widgets.HBox([task_box, smoothing]), scores, figure], runs=chooser,
                      task=task_box, smoothing=smoothing, scores=scores, figure=figure, histories=histories,
                      update=update)
