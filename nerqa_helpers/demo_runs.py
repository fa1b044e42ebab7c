"""What notebook 09's lab bench computes about training runs, as plain functions: no widgets, no HTML.

    find_runs(runs_dir), ModelShelf       the saved runs and their scores; models loaded on first use
    compare_models(shelf, names, ...)     the same sentence and question through several saved models
    task_mix_over_steps(feature_counts)   the schedule ``sampling`` plans for this run's dataset sizes
    short_training_run(tasks, ...)        a fresh model trained for a few steps; only its history is kept
    load_run_history(run)                 a saved run's ``history.json`` as a DataFrame
    loss_curves, task_weight_curves       smoothed losses and balancer weights from histories

A run is a folder under the runs folder (``workbook.settings().runs_dir``) with a saved model,
a history or scores. ``demo`` computes what the bench shows about one input; ``demo_views`` turns
the results into HTML and figures; ``widgets`` wraps them in ipywidgets.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .presets import TASKS
from .sampling import MultiTaskDataLoader

SCORE_KEYS = ("ner_f1", "qa_exact_match", "qa_f1")
RUN_FILES = ("workbook.json", "metrics.json", "history.json")
IGNORED_FOLDERS = {"best", "checkpoint"}


# -- 4. saved runs and the model switcher ----------------------------------------------------------
@dataclass
class SavedRun:
    """A training run found in the runs folder: its name (path under the runs folder), its folder,
    its validation scores, and where its model and history are, if it kept them."""

    name: str
    directory: Path
    scores: dict

    @property
    def model_dir(self) -> Path | None:
        for folder in (self.directory / "best", self.directory):
            if (folder / "config.json").is_file():
                return folder
        return None

    @property
    def history_path(self) -> Path | None:
        path = self.directory / "history.json"
        return path if path.is_file() else None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_scores(directory: Path) -> dict:
    """Validation scores of a run: the best checkpoint's (``workbook.json``, else the best
    evaluation in ``history.json``), else the final ones (``metrics.json``); only ``SCORE_KEYS``."""
    record = _read_json(directory / "workbook.json")
    found = record.get("metrics") if isinstance(record, dict) else None
    if found is None:
        evaluations = [row for row in _read_json(directory / "history.json") or [] if row.get("kind") == "eval"]
        found = max(evaluations, key=lambda row: row.get("score", float("-inf")), default=None)
    if found is None:
        found = _read_json(directory / "metrics.json")
    return {key: float(found[key]) for key in SCORE_KEYS if isinstance(found, dict) and found.get(key) is not None}


def find_runs(runs_dir: str | Path, depth: int = 3) -> list[SavedRun]:
    """Every run under ``runs_dir`` (down to ``depth`` folders): a folder with a saved model
    (``best/config.json``), ``history.json``, ``metrics.json`` or ``workbook.json``. Sorted by name."""
    root, runs = Path(runs_dir), []
    folders = [root] if root.is_dir() else []
    for _ in range(depth + 1):
        children = []
        for folder in folders:
            if any((folder / name).is_file() for name in RUN_FILES) or (folder / "best" / "config.json").is_file():
                runs.append(SavedRun(folder.relative_to(root).as_posix() or ".", folder, run_scores(folder)))
            children += [child for child in sorted(folder.iterdir()) if child.is_dir()
                         and child.name not in IGNORED_FOLDERS and not child.name.startswith(".")]
        folders = children
    return sorted(runs, key=lambda run: run.name)


class ModelShelf:
    """The pipelines of saved runs, each loaded the first time it is asked for and then kept.

    ``runs``: ``SavedRun``s (those without a model are left out); ``load``: folder → pipeline
    (default ``MultiTaskPipeline.from_pretrained``)."""

    def __init__(self, runs: Sequence[SavedRun], load: Callable | None = None):
        self.runs = {run.name: run for run in runs if run.model_dir is not None}
        self.load = load
        self.loaded: dict = {}

    def names(self) -> list[str]:
        return list(self.runs)

    def pipeline(self, name: str):
        if name not in self.loaded:
            load = self.load
            if load is None:
                from .inference import MultiTaskPipeline

                load = MultiTaskPipeline.from_pretrained
            self.loaded[name] = load(self.runs[name].model_dir)
        return self.loaded[name]


@dataclass
class ModelOutputs:
    """One model's answers to the same inputs; ``None`` for a task it was not trained on (λ = 0)."""

    name: str
    scores: dict
    entities: list[dict] | None
    answer: dict | None


def trained_tasks(pipeline) -> list[str]:
    """The tasks the pipeline's model was trained on: those with λ > 0 in its config."""
    weights = getattr(pipeline.model.config, "task_weights", {}) or {}
    return [task for task in TASKS if float(weights.get(task, 1.0)) > 0]


def compare_models(shelf: ModelShelf, names: Sequence[str], text: str, question: str, context: str) -> list[ModelOutputs]:
    """The same sentence and question through each named model (loaded now if not yet)."""
    outputs = []
    for name in names:
        pipeline = shelf.pipeline(name)
        tasks = trained_tasks(pipeline)
        entities = pipeline.ner(text) if "ner" in tasks else None
        answer = pipeline.qa(question, context) if "qa" in tasks else None
        outputs.append(ModelOutputs(name, shelf.runs[name].scores, entities, answer))
    return outputs


# -- 5. task-mix lab -------------------------------------------------------------------------------
@dataclass
class TaskMix:
    """A planned schedule: the task of every step, the batches each task brings, the share of
    steps each task gets, and each task's share of the loss once weighted by λ."""

    schedule: list[str]
    batch_counts: dict[str, int]
    shares: dict[str, float]
    weighted_shares: dict[str, float]

    def cumulative(self) -> pd.DataFrame:
        """(steps, tasks): the share of the steps so far that trained each task."""
        tasks = list(self.batch_counts)
        counts = pd.DataFrame({task: np.cumsum([step == task for step in self.schedule]) for task in tasks})
        counts.index = pd.RangeIndex(1, len(self.schedule) + 1, name="step")
        return counts.div(counts.index.to_numpy(), axis=0)


def task_mix_over_steps(feature_counts: Mapping[str, int], strategy: str = "proportional", temperature: float = 2.0,
                        lambdas: Mapping[str, float] | None = None, batch_size: int = 32,
                        task_epochs: float | Mapping[str, float] = 1.0, total_steps: int | None = None,
                        seed: int = 0) -> TaskMix:
    """The schedule the training loop would plan for tasks of ``feature_counts`` training features.

    The plan is ``sampling.MultiTaskDataLoader``'s own (same batching, epochs and strategy); a task
    with λ = 0 is left out, as in training. ``weighted_shares``: share × λ, normalised to sum to 1.
    """
    lambdas = dict(lambdas or {})
    active = {task: int(count) for task, count in feature_counts.items() if count > 0 and lambdas.get(task, 1.0) > 0}
    if not active:
        raise ValueError("No task left: every task has λ = 0 or no training features.")
    loader = MultiTaskDataLoader({task: range(count) for task, count in active.items()}, collators={},
                                 batch_size=batch_size, task_epochs=task_epochs, strategy=strategy,
                                 temperature=temperature, total_steps=total_steps, group_by_length=False, seed=seed)
    schedule = [task for task, _ in loader.schedule]
    shares = loader.planned_mix()
    weighted = {task: shares[task] * lambdas.get(task, 1.0) for task in active}
    total = sum(weighted.values()) or 1.0
    return TaskMix(schedule, {task: len(batches) for task, batches in loader.task_batches.items()}, shares,
                   {task: value / total for task, value in weighted.items()})


def short_training_run(tasks, tokenizer, label_names: Sequence[str], strategy: str = "proportional",
                       temperature: float = 2.0, lambdas: Mapping[str, float] | None = None, steps: int = 20,
                       batch_size: int = 8, encoder: str = "default", step_hook: Callable | None = None,
                       seed: int = 0) -> pd.DataFrame:
    """Train a fresh model for ``steps`` steps on ``tasks`` (``tasks.build_tasks``); nothing is
    kept but its training history (one row per task step: step, task, loss, ...)."""
    import torch

    from .model import MultiTaskModel
    from .training import TrainingConfig, train

    torch.manual_seed(seed)
    model = MultiTaskModel.from_encoder(encoder, list(label_names), task_weights=dict(lambdas or dict.fromkeys(TASKS, 1.0)))
    with tempfile.TemporaryDirectory(prefix="nerqa-lab-") as folder:
        config = TrainingConfig(output_dir=folder, max_steps=steps, batch_size=batch_size, strategy=strategy,
                                temperature=temperature, log_every=1, save_best=False, progress=False, seed=seed)
        result = train(model, tokenizer, tasks, config, step_hook=step_hook)
    return result.history.frame("train")


# -- 6. training histories -------------------------------------------------------------------------
def load_run_history(run: SavedRun) -> pd.DataFrame:
    """A run's ``history.json`` as a DataFrame (one row per logged step or evaluation)."""
    if run.history_path is None:
        raise FileNotFoundError(f"The run {run.name} has no history.json")
    return pd.DataFrame(json.loads(run.history_path.read_text()))


def _train_rows(history: pd.DataFrame) -> pd.DataFrame:
    return history[history["kind"] == "train"] if "kind" in history.columns else history


def loss_curves(histories: Mapping[str, pd.DataFrame], task: str, window: int = 1) -> pd.DataFrame:
    """Columns run, step, loss, smoothed: ``task``'s training loss in each run, with the running
    mean over the last ``window`` logged steps of that task (fewer at the start)."""
    frames = []
    for name, history in histories.items():
        rows = _train_rows(history)
        if "task" not in rows.columns:
            continue
        rows = rows[rows["task"] == task].sort_values("step")
        smoothed = rows["loss"].rolling(max(int(window), 1), min_periods=1).mean()
        frames.append(pd.DataFrame({"run": name, "step": rows["step"], "loss": rows["loss"], "smoothed": smoothed}))
    columns = ["run", "step", "loss", "smoothed"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def task_weight_curves(histories: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Columns run, step, task, weight: the loss weights a balancer (GradNorm, uncertainty) used
    at each step, from the ``weight_<task>`` columns; empty when no run has them."""
    frames = []
    for name, history in histories.items():
        rows = _train_rows(history)
        columns = [column for column in rows.columns if column.startswith("weight_")]
        if not columns:
            continue
        rows = rows.drop_duplicates("step").sort_values("step")
        long = rows.melt(id_vars="step", value_vars=columns, var_name="task", value_name="weight").dropna()
        long["task"] = long["task"].str.removeprefix("weight_")
        frames.append(long.assign(run=name))
    columns = ["run", "step", "task", "weight"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
