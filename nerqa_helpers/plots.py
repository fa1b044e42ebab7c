"""Pictures for the notebooks: task mix, loss curves, scores, lengths, task weights, conflicts.

Every function takes plain data (lists, dicts, DataFrames), draws on a new Figure and returns it.
Nothing here calls ``plt.show()``: a notebook shows a returned Figure by itself, a script saves it
with ``figure.savefig(path)``. :class:`LiveLossPlot` is a ``step_hook`` for ``training.train`` that
redraws the loss curves while a model trains. A face module: only the experiment report (another
face) imports it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

TASK_COLOURS = {"ner": "tab:blue", "qa": "tab:orange"}


def _colour(task: str, index: int) -> str:
    return TASK_COLOURS.get(task, f"C{index + 2}")


def _new(width: float = 6.5, height: float = 3.5, ncols: int = 1, sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """A Figure outside pyplot's list of open figures: a notebook shows it once (as the cell's
    value), and it is freed as soon as nothing refers to it."""
    figure = plt.figure(figsize=(width, height), layout="constrained")
    plt.close(figure)  # still drawable; made by pyplot only so that Jupyter's inline display is set up
    return figure, figure.subplots(1, ncols, squeeze=False, sharey=sharey)[0]


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Running mean (N,) of ``values`` over the last ``window`` points (fewer at the start)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


# -- the multi-task loader ----------------------------------------------------------------------
def plot_task_mix(mixes: Mapping[str, Sequence[str] | Mapping[str, float]]) -> Figure:
    """How each sampling strategy shares the steps between the tasks.

    mixes: strategy → either a schedule (the task name of every step, as ``plan_schedule``
    returns) or task → probability. Schedules give one panel per strategy with one line per task:
    batches of that task used so far, against the step. Probabilities give grouped bars.
    """
    if all(isinstance(mix, Mapping) for mix in mixes.values()):
        return _task_mix_bars(mixes)
    figure, axes = _new(3.2 * len(mixes), 3.2, ncols=len(mixes), sharey=True)
    tasks = sorted({task for schedule in mixes.values() for task in schedule})
    for ax, (strategy, schedule) in zip(axes, mixes.items()):
        steps = np.arange(1, len(schedule) + 1)
        for index, task in enumerate(tasks):
            used = np.cumsum([step_task == task for step_task in schedule])
            ax.plot(steps, used, label=task, color=_colour(task, index))
        ax.set_title(strategy)
        ax.set_xlabel("step")
    axes[0].set_ylabel("batches used so far")
    axes[0].legend()
    return figure


def _task_mix_bars(probabilities: Mapping[str, Mapping[str, float]]) -> Figure:
    """Grouped bars: per strategy, the chance that a step trains each task."""
    figure, (ax,) = _new()
    tasks = sorted({task for mix in probabilities.values() for task in mix})
    positions = np.arange(len(probabilities))
    width = 0.8 / len(tasks)
    for index, task in enumerate(tasks):
        heights = [mix.get(task, 0.0) for mix in probabilities.values()]
        ax.bar(positions + index * width, heights, width, label=task, color=_colour(task, index))
    ax.set_xticks(positions + width * (len(tasks) - 1) / 2, list(probabilities))
    ax.set_ylabel("P(step trains task)")
    ax.set_ylim(0, 1)
    ax.legend()
    return figure


# -- training curves ----------------------------------------------------------------------------
def plot_losses(history: pd.DataFrame, window: int = 10, show_raw: bool = True) -> Figure:
    """Training loss per task against the step: raw points faint, running mean bold.

    history: one row per logged task step with columns ``step``, ``task``, ``loss`` (rows of
    other kinds are dropped when a ``kind`` column is present). Draws one smoothed line per task,
    plus one faint raw line per task when ``show_raw``.
    """
    frame = _train_rows(history)
    figure, (ax,) = _new()
    for index, (task, rows) in enumerate(frame.groupby("task", sort=True)):
        rows = rows.sort_values("step")
        colour = _colour(task, index)
        if show_raw:
            ax.plot(rows["step"], rows["loss"], color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(rows["step"], smooth(rows["loss"], window), color=colour, label=f"{task} (mean of {window})")
    ax.set_xlabel("step")
    ax.set_ylabel("task loss")
    ax.legend()
    return figure


def plot_learning_rate(history: pd.DataFrame) -> Figure:
    """The learning rate against the step (warm-up, then linear decay): one line."""
    frame = _train_rows(history).drop_duplicates("step").sort_values("step")
    figure, (ax,) = _new(5.0, 3.0)
    ax.plot(frame["step"], frame["lr"], color="tab:green")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    return figure


def plot_task_weights(history: pd.DataFrame) -> Figure:
    """Loss weights λ against the step: one line per ``weight_<task>`` column (GradNorm etc.)."""
    frame = _train_rows(history).drop_duplicates("step").sort_values("step")
    columns = [column for column in frame.columns if column.startswith("weight_")]
    if not columns:
        raise ValueError("The history has no weight_<task> columns; was a loss balancer used?")
    figure, (ax,) = _new(5.5, 3.2)
    for index, column in enumerate(columns):
        task = column.removeprefix("weight_")
        ax.plot(frame["step"], frame[column], label=f"λ {task}", color=_colour(task, index))
    ax.set_xlabel("step")
    ax.set_ylabel("task weight λ")
    ax.legend()
    return figure


def plot_gradient_conflict(frame: pd.DataFrame) -> Figure:
    """Cosine between the NER and QA gradients of each layer over training, as a heat map.

    frame: columns ``step``, ``layer``, ``cosine`` (one row per probe). Rows of the image are
    layers (in order of first appearance), columns are steps; red = the tasks pull apart (< 0).
    """
    layers = list(dict.fromkeys(frame["layer"]))
    table = frame.pivot_table(index="layer", columns="step", values="cosine", aggfunc="mean").reindex(layers)
    figure, (ax,) = _new(7.0, 0.35 * len(layers) + 1.6)
    image = ax.imshow(table.to_numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(layers)), [str(layer) for layer in layers])
    steps = list(table.columns)
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int))
    ax.set_xticks(ticks, [str(steps[tick]) for tick in ticks])
    ax.set_xlabel("step")
    figure.colorbar(image, ax=ax, label="cosine(∇L_NER, ∇L_QA)")
    return figure


def _train_rows(history: pd.DataFrame) -> pd.DataFrame:
    if "kind" in history.columns:
        history = history[history["kind"] == "train"]
    if history.empty:
        raise ValueError("The history holds no training steps to plot.")
    return history


# -- evaluation ---------------------------------------------------------------------------------
def plot_per_type_f1(per_type: Mapping[str, Mapping[str, float]]) -> Figure:
    """One bar per entity type: its F1 (0–100), labelled with how many gold entities it has.

    per_type: TYPE → {"precision", "recall", "f1", "number"} as ``metrics.ner_scores`` returns.
    """
    types = sorted(per_type, key=lambda name: -per_type[name].get("f1", 0.0))
    figure, (ax,) = _new(5.0, 3.0)
    scores = [per_type[name]["f1"] for name in types]
    bars = ax.bar(range(len(types)), scores, color="tab:blue")
    ax.bar_label(bars, fmt="%.1f")
    ax.set_xticks(range(len(types)), [f"{name}\n(n={per_type[name].get('number', '?')})" for name in types])
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 105)
    return figure


def plot_entity_confusion(matrix: pd.DataFrame) -> Figure:
    """Heat map of a confusion table: rows = gold entity type, columns = predicted type.

    matrix: counts (DataFrame, index gold types, columns predicted types; a "none" row/column
    may stand for a missed or invented entity). Every cell is written on the image.
    """
    values = matrix.to_numpy(dtype=float)
    figure, (ax,) = _new(0.8 * values.shape[1] + 2.2, 0.6 * values.shape[0] + 1.4)
    ax.imshow(values, cmap="Blues")
    top = values.max() if values.size else 0
    for (row, column), count in np.ndenumerate(values):
        colour = "white" if top and count > top / 2 else "black"
        ax.text(column, row, f"{count:g}", ha="center", va="center", color=colour)
    ax.set_xticks(range(values.shape[1]), [str(name) for name in matrix.columns])
    ax.set_yticks(range(values.shape[0]), [str(name) for name in matrix.index])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    return figure


def plot_length_histogram(lengths: Sequence[int] | Mapping[str, Sequence[int]], max_length: int | None = None,
                          bins: int = 30) -> Figure:
    """Histogram of token counts (one series, or name → series overlaid), with ``max_length``
    as a dashed line so a student sees how many inputs a window size cuts."""
    series = dict(lengths) if isinstance(lengths, Mapping) else {"length": list(lengths)}
    figure, (ax,) = _new(5.5, 3.2)
    every = np.concatenate([np.asarray(values, dtype=float) for values in series.values()])
    edges = np.histogram_bin_edges(every, bins=bins)
    for index, (name, values) in enumerate(series.items()):
        ax.hist(values, bins=edges, alpha=0.6, label=name, color=_colour(name, index))
    if max_length is not None:
        ax.axvline(max_length, color="black", linestyle="--", label=f"max_length = {max_length}")
    ax.set_xlabel("tokens")
    ax.set_ylabel("count")
    ax.legend()
    return figure


# -- theory -------------------------------------------------------------------------------------
def plot_architecture(num_layers: int = 6, shared_layers: int | None = None) -> Figure:
    """Boxes-and-arrows picture of the model: shared encoder layers, per-task layers, two heads.

    ``shared_layers=None`` is hard sharing (every layer shared); N < ``num_layers`` is soft
    sharing with the top layers copied per task. Draws one box per layer per path, plus input,
    heads and outputs.
    """
    shared = num_layers if shared_layers is None else min(shared_layers, num_layers)
    figure, (ax,) = _new(6.0, 0.42 * (num_layers + 6))
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, num_layers + 3.5)
    _box(ax, 5, 0, "input tokens  [CLS] … [SEP]", "white")
    for layer in range(shared):
        _box(ax, 5, 1 + layer, f"shared layer {layer + 1}", "#d9d9d9")
    for task, x in (("ner", 2.5), ("qa", 7.5)):
        for layer in range(shared, num_layers):
            _box(ax, x, 1 + layer, f"{task.upper()} layer {layer + 1}", "#f2f2f2", width=3.6)
        head = "NER head: Linear(H, 9)" if task == "ner" else "QA head: Linear(H, 2)"
        output = "a tag per token" if task == "ner" else "start / end per token"
        _box(ax, x, num_layers + 1.5, head, TASK_COLOURS[task], width=3.6, alpha=0.35)
        _box(ax, x, num_layers + 3, output, "white", width=3.6)
        if shared < num_layers:  # the fork: the shared part feeds both task stacks
            ax.annotate("", (x, shared + 0.65), (5, shared + 0.35), arrowprops={"arrowstyle": "->"})
        ax.annotate("", (x, num_layers + 1.2), (5 if shared == num_layers else x, num_layers + 0.3),
                    arrowprops={"arrowstyle": "->"})
        ax.annotate("", (x, num_layers + 2.7), (x, num_layers + 1.8), arrowprops={"arrowstyle": "->"})
    kind = "hard sharing" if shared == num_layers else f"soft sharing: {shared} of {num_layers} layers shared"
    ax.set_title(kind)
    return figure


def _box(ax, x: float, y: float, text: str, colour: str, width: float = 6.0, alpha: float = 1.0) -> None:
    ax.add_patch(Rectangle((x - width / 2, y - 0.35), width, 0.7, facecolor=colour, edgecolor="black",
                               alpha=alpha))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


# -- live curves during training ----------------------------------------------------------------
class LiveLossPlot:
    """A ``step_hook`` for ``training.train``: keeps every task loss and redraws
    :func:`plot_losses` in place every ``every`` steps (in Jupyter; elsewhere it only records)."""

    def __init__(self, every: int = 10, window: int = 10):
        self.every, self.window = every, window
        self.rows: list[dict] = []
        self.handle = None

    def __call__(self, step: int, task_losses, model=None) -> None:
        for task, loss in task_losses.items():
            self.rows.append({"step": step, "task": task, "loss": float(loss.detach())})
        if step % self.every == 0:
            self.show()

    def frame(self) -> pd.DataFrame:
        """The recorded losses: columns step, task, loss."""
        return pd.DataFrame(self.rows, columns=["step", "task", "loss"])

    def show(self) -> Figure | None:
        """Draw (or redraw) the curves so far; returns the figure."""
        if not self.rows:
            return None
        figure = plot_losses(self.frame(), self.window)
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return figure
        if get_ipython() is None:
            return figure
        if self.handle is None:
            self.handle = display(figure, display_id=True)
        else:
            self.handle.update(figure)
        return figure


# -- experiment reports (records: the run JSON of nerqa_helpers.experiments) ---------------------
def plot_method_scores(records: Sequence[Mapping], summary: pd.DataFrame) -> Figure:
    """NER F1 and QA F1 per method: bars = mean, error bars = std over seeds, dots = single seeds.

    summary: one row per method with ``method`` and ``<metric>_mean`` / ``<metric>_std`` columns.
    """
    figure, axes = _new(10, 3.8, ncols=2)
    for ax, (metric, label), colour in zip(axes, (("ner_f1", "NER F1"), ("qa_f1", "QA F1")), TASK_COLOURS.values()):
        rows = summary.dropna(subset=[f"{metric}_mean"]) if f"{metric}_mean" in summary else summary.iloc[:0]
        positions = np.arange(len(rows))
        ax.bar(positions, rows.get(f"{metric}_mean", []), yerr=rows.get(f"{metric}_std", pd.Series()).fillna(0),
               color=colour, alpha=0.7, capsize=3)
        for position, method in zip(positions, rows["method"]):
            seeds = [r[metric] for r in records if r["method"] == method and r.get(metric) is not None]
            ax.plot([position] * len(seeds), seeds, "k.", markersize=4)
        ax.set_xticks(positions, list(rows["method"]), rotation=45, ha="right")
        ax.set_ylabel(label)
    return figure


def plot_weight_curves(records: Sequence[Mapping]) -> Figure | None:
    """Task weights against the step for every method with a learned balancer (one panel each;
    one line per task and seed); ``None`` when no record has weights."""
    methods = list(dict.fromkeys(r["method"] for r in records if r.get("task_weights")))
    if not methods:
        return None
    figure, axes = _new(4.2 * len(methods), 3.2, ncols=len(methods))
    for ax, method in zip(axes, methods):
        for record in [r for r in records if r["method"] == method]:
            curve = np.array(record["task_weights"]["curve"])  # (points, 1 + tasks): step, then weights
            for index, task in enumerate(record["task_weights"]["tasks"]):
                ax.plot(curve[:, 0], curve[:, index + 1], color=_colour(task, index), alpha=0.8,
                        label=f"{task}, seed {record['seed']}")
        ax.set(title=method, xlabel="step", ylabel="task weight")
        ax.legend(fontsize=7)
    return figure


def plot_conflict_by_layer(conflict: pd.DataFrame) -> Figure | None:
    """Mean cosine between the NER and QA gradients per shared layer, one line per method, and over
    all shared parameters (layer ``"all"``) at the right; bars = std over seeds.

    conflict: columns ``method``, ``layer``, ``mean``, ``std`` (``None`` when it is empty).
    """
    if conflict.empty:
        return None
    layers = [layer for layer in dict.fromkeys(conflict["layer"]) if layer != "all"]
    figure, (ax,) = _new(7.5, 3.8)
    for index, (method, rows) in enumerate(conflict.groupby("method", sort=False)):
        x = np.array([layers.index(layer) if layer != "all" else len(layers) for layer in rows["layer"]]) + 0.04 * index
        means, stds, whole = rows["mean"].to_numpy(), np.nan_to_num(rows["std"].to_numpy()), rows["layer"].eq("all")
        line = ax.errorbar(x[~whole], means[~whole], yerr=stds[~whole], marker="o", capsize=2, label=method)
        ax.errorbar(x[whole], means[whole], yerr=stds[whole], marker="s", capsize=2, color=line.lines[0].get_color())
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(len(layers) - 0.5, color="grey", linewidth=0.5, linestyle=":")
    ax.set_xticks(range(len(layers) + 1), [*layers, "all shared"], rotation=30)
    ax.set_ylabel("cosine(∇L_NER, ∇L_QA)")
    ax.legend(fontsize=7, ncol=2)
    return figure


# -- the study's questions (nerqa_helpers.experiments.questions) ----------------------------------
def plot_seed_scores(records: Sequence[Mapping], methods: Sequence[str]) -> Figure:
    """NER F1, QA F1 of ``methods`` (in order): one dot per seed, a bar at the mean; a task's panel
    is left out when no method has its score."""
    panels = [(metric, label) for metric, label in (("ner_f1", "NER F1"), ("qa_f1", "QA F1"))
              if any(r.get(metric) is not None for r in records)]
    figure, axes = _new(4.5 * len(panels), 3.6, ncols=len(panels))
    for ax, (metric, label) in zip(axes, panels):
        colour = TASK_COLOURS[metric.split("_")[0]]
        shown = [m for m in methods if any(r["method"] == m and r.get(metric) is not None for r in records)]
        for position, method in enumerate(shown):
            seeds = [r[metric] for r in records if r["method"] == method and r.get(metric) is not None]
            ax.plot([position] * len(seeds), seeds, "o", color=colour, alpha=0.7)
            ax.hlines(np.mean(seeds), position - 0.3, position + 0.3, color="black")
        ax.set_xticks(range(len(shown)), shown, rotation=30, ha="right")
        ax.set_ylabel(label)
    return figure


def plot_learning_curve(records: Sequence[Mapping], curves: Mapping[str, Sequence[str]]) -> Figure:
    """NER F1 against the NER training sentences a run saw, one line per curve (label → methods,
    one per size); dots are seeds, the line joins the means."""
    figure, (ax,) = _new(6, 3.8)
    for index, (label, methods) in enumerate(curves.items()):
        points = []
        for method in methods:
            runs = [r for r in records if r["method"] == method and r.get("ner_f1") is not None]
            if runs:
                size = runs[0]["data"].get("method_ner_train_sentences") or runs[0]["data"]["ner_train_sentences"]
                ax.plot([size] * len(runs), [r["ner_f1"] for r in runs], ".", color=f"C{index}", alpha=0.6)
                points.append((size, np.mean([r["ner_f1"] for r in runs])))
        if points:
            ax.plot(*zip(*sorted(points)), "-o", color=f"C{index}", label=label)
    ax.set(xscale="log", xlabel="NER training sentences", ylabel="NER F1 (validation)")
    sizes = sorted({round(x) for line in ax.get_lines() for x in line.get_xdata()})
    ax.set_xticks(sizes, [f"{size:,}" for size in sizes])
    ax.minorticks_off()
    ax.legend()
    return figure


def plot_run_losses(records: Sequence[Mapping], methods: Sequence[str], window: int = 5) -> Figure:
    """Training loss per task against the step for ``methods`` (one colour each): every seed faint,
    their mean, smoothed by a centred rolling mean over ``window`` logged points, bold. A curve
    still falling at the right edge has not converged."""
    tasks = [task for task in TASK_COLOURS if any(task in r.get("loss_curve", {}) for r in records)]
    figure, axes = _new(4.5 * len(tasks), 3.4, ncols=len(tasks))
    for ax, task in zip(axes, tasks):
        for index, method in enumerate(methods):
            curves = [np.array(r["loss_curve"][task]) for r in records
                      if r["method"] == method and len(r.get("loss_curve", {}).get(task, []))]
            for curve in curves:
                ax.plot(curve[:, 0], curve[:, 1], color=f"C{index}", alpha=0.2, linewidth=0.8)
            if curves:
                length = min(len(curve) for curve in curves)
                steps = np.mean([curve[:length, 0] for curve in curves], axis=0)
                mean = pd.Series(np.mean([curve[:length, 1] for curve in curves], axis=0))
                smooth = mean.rolling(window, center=True, min_periods=1).mean()
                ax.plot(steps, smooth, color=f"C{index}", linewidth=2,
                        label=f"{method} (mean of {len(curves)})" if len(curves) > 1 else method)
        ax.set(title=f"{task.upper()} training loss", xlabel="step", yscale="log")
        ax.legend(fontsize=7)
    return figure
