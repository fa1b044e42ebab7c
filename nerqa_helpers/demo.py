"""What notebook 09's lab bench computes, as plain functions: no widgets, no HTML.

    subword_view(pipeline, text)          word pieces, the piece that carries each word's label, P(tag | word)
    span_map(pipeline, question, context) per QA window: P(start), P(end) of each context token, overlaps, top-k
    compare_entities(gold, predicted)     NER errors: missed, spurious, wrong type, wrong boundary
    ner_example / qa_example              one validation example, gold against predicted, with its scores
    find_runs(runs_dir), ModelShelf       the saved runs and their scores; models loaded on first use
    task_mix_over_steps(feature_counts)   the schedule ``sampling`` plans for this run's dataset sizes
    loss_curves, task_weight_curves       smoothed losses and balancer weights from saved histories

The model is called through the pipeline's public pieces (``qa_features``, ``ner_features``) and
``evaluation.predict_features``, so the windows are exactly those the pipeline and evaluation use.
``demo_views`` turns these results into HTML and figures; ``widgets`` wraps both in ipywidgets.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from .inference import iob2_spans, split_words
from .metrics import exact_match, token_f1
from .preprocessing import first_positions
from .presets import TASKS
from .sampling import MultiTaskDataLoader

SCORE_KEYS = ("ner_f1", "qa_exact_match", "qa_f1")
RUN_FILES = ("workbook.json", "metrics.json", "history.json")
IGNORED_FOLDERS = {"best", "checkpoint"}


# -- the model, window by window -------------------------------------------------------------------
def window_logits(pipeline, features, task: str) -> list:
    """Run ``task``'s head over every window in ``features`` (``evaluation.predict_features``, the
    forward pass the pipeline and evaluation use). Returns per window, trimmed to its length T:
    NER logits (T, C), or QA ``(start (T,), end (T,))``; numpy."""
    from .evaluation import predict_features

    return predict_features(pipeline.model, features, task, pipeline.tokenizer, pipeline.batch_size,
                            pipeline.device, ner_logits=True)


def softmax_rows(logits) -> np.ndarray:
    """Softmax over the last axis: (..., C) logits → probabilities that sum to 1 per row."""
    values = np.asarray(logits, dtype=np.float64)
    values = np.exp(values - values.max(axis=-1, keepdims=True))
    return values / values.sum(axis=-1, keepdims=True)


# -- 1. sub-words of NER ---------------------------------------------------------------------------
class Piece(NamedTuple):
    """One word piece: its text (``"##ina"``), its word (None for [CLS]/[SEP]) and its label in
    training: the word's tag at the word's first piece, ``"-100"`` (ignored by the loss) elsewhere."""

    token: str
    word: int | None
    label: str


@dataclass
class SubwordView:
    """A sentence as the NER head sees it. ``probabilities``: (N words, C tags), each row the
    softmax at the piece that scores the word (zeros for a word that has no piece)."""

    words: list[str]
    pieces: list[Piece]
    tags: list[str]
    probabilities: np.ndarray
    label_names: list[str]


def piece_rows(tokens: Sequence[str], word_ids: Sequence[int | None], tags: Sequence[str]) -> list[Piece]:
    """Pieces with their training labels: a word's tag at its first piece, "-100" on the others."""
    firsts = set(first_positions(word_ids).values())
    return [Piece(token, word, tags[word] if position in firsts else "-100")
            for position, (token, word) in enumerate(zip(tokens, word_ids))]


def word_tag_probabilities(features, logits: Sequence[np.ndarray], num_words: int, num_labels: int) -> np.ndarray:
    """(N, C): for one example, the softmax over tags at the piece that scores each word, the
    position ``ner_logits_to_tags`` reads (``features["word_ids"]`` >= 0); zeros if unscored."""
    table = np.zeros((num_words, num_labels))
    for word_ids, window in zip(features["word_ids"], logits):
        for position, word in enumerate(word_ids):
            if word >= 0:
                table[word] = softmax_rows(window[position])
    return table


def subword_view(pipeline, text_or_words: str | Sequence[str], tags: Sequence[str] | None = None) -> SubwordView:
    """The sentence's pieces, their labels and the tag probabilities of every word.

    ``tags``: gold tags to put on the label row (default: the model's predicted tags).
    """
    words = split_words(text_or_words)[0] if isinstance(text_or_words, str) else list(text_or_words)
    names = pipeline.label_names
    if not words:
        return SubwordView([], [], [], np.zeros((0, len(names))), names)
    features = pipeline.ner_features([words])
    probabilities = word_tag_probabilities(features, window_logits(pipeline, features, "ner"), len(words), len(names))
    predicted = [names[int(row.argmax())] if row.any() else "O" for row in probabilities]
    encoding = pipeline.tokenizer(words, is_split_into_words=True)
    pieces = piece_rows(encoding.tokens(), encoding.word_ids(), list(tags) if tags is not None else predicted)
    return SubwordView(words, pieces, predicted, probabilities, names)


# -- 2. QA span map --------------------------------------------------------------------------------
class TokenScore(NamedTuple):
    """A context token of one window: characters [start, end) and P(answer starts / ends here)."""

    start: int
    end: int
    start_probability: float
    end_probability: float


@dataclass
class Window:
    """One QA window: its number and its context tokens (question and special tokens left out)."""

    index: int
    tokens: list[TokenScore]

    @property
    def char_start(self) -> int:
        return self.tokens[0].start if self.tokens else 0

    @property
    def char_end(self) -> int:
        return self.tokens[-1].end if self.tokens else 0


@dataclass
class SpanMap:
    """Start/end probabilities of every window of a context, and the ranked answers (best first)."""

    question: str
    context: str
    windows: list[Window]
    answers: list[dict] = field(default_factory=list)

    def overlaps(self) -> list[tuple[int, int]]:
        """Character ranges that two neighbouring windows share (the ``doc_stride`` overlap)."""
        return [(after.char_start, before.char_end) for before, after in zip(self.windows, self.windows[1:])
                if after.char_start < before.char_end]

    def windows_holding(self, start: int, end: int) -> list[int]:
        """Numbers of the windows whose context holds all of characters [start, end)."""
        return [window.index for window in self.windows if window.char_start <= start and end <= window.char_end]


def window_scores(features, start_logits: Sequence, end_logits: Sequence) -> list[Window]:
    """Windows with P(start) and P(end) per context token: a softmax over all T positions of the
    window, as the training loss sees them. ``features["offset_mapping"]``: (F, T), None outside
    the context (``prepare_qa_eval_features``)."""
    windows = []
    for index, (offsets, starts, ends) in enumerate(zip(features["offset_mapping"], start_logits, end_logits)):
        start_probabilities, end_probabilities = softmax_rows(starts), softmax_rows(ends)
        tokens = [TokenScore(int(offset[0]), int(offset[1]), float(start_probabilities[position]),
                             float(end_probabilities[position]))
                  for position, offset in enumerate(offsets[: len(starts)]) if offset is not None]
        windows.append(Window(index, tokens))
    return windows


def span_map(pipeline, question: str, context: str, top_k: int = 5) -> SpanMap:
    """The span map of ``question`` in ``context``: the pipeline's windows and answers."""
    _, features = pipeline.qa_features([question], [context])
    logits = window_logits(pipeline, features, "qa")
    windows = window_scores(features, [start for start, _ in logits], [end for _, end in logits])
    answers = pipeline.qa(question, context, top_k=top_k)
    return SpanMap(question, context, windows, [answers] if isinstance(answers, Mapping) else list(answers))


# -- 3. example browser ----------------------------------------------------------------------------
class EntityError(NamedTuple):
    """One row of an NER comparison; entities are ``(type, first word, last word + 1)``.

    kind: "correct", "missed" (gold, no prediction over it), "spurious" (predicted, no gold under
    it), "wrong type" (same words, other type), "wrong boundary" (overlapping, other words; the
    type may differ too)."""

    kind: str
    gold: tuple | None
    predicted: tuple | None


def _overlap(first: tuple, second: tuple) -> bool:
    return first[1] < second[2] and second[1] < first[2]


def compare_entities(gold: Sequence[tuple], predicted: Sequence[tuple]) -> list[EntityError]:
    """Gold entities against predicted ones, one row per entity, in order of position."""
    rows, used = [], set()
    for entity in gold:
        same_words = [guess for guess in predicted if guess[1:] == entity[1:]]
        overlapping = [guess for guess in predicted if _overlap(guess, entity)]
        if same_words:
            guess = same_words[0]
            rows.append(EntityError("correct" if guess[0] == entity[0] else "wrong type", entity, guess))
        elif overlapping:
            guess = overlapping[0]
            rows.append(EntityError("wrong boundary", entity, guess))
        else:
            rows.append(EntityError("missed", entity, None))
            continue
        used.add(guess)
    for guess in predicted:
        if guess in used:
            continue
        under = [entity for entity in gold if _overlap(guess, entity)]
        rows.append(EntityError("wrong boundary", under[0], guess) if under else EntityError("spurious", None, guess))
    return sorted(rows, key=lambda row: ((row.gold or row.predicted)[1], (row.predicted or row.gold)[1]))


@dataclass
class NerExample:
    """A sentence with its gold and predicted tags (one per word) and the entity comparison."""

    words: list[str]
    gold_tags: list[str]
    predicted_tags: list[str]
    errors: list[EntityError]


def ner_example(pipeline, words: Sequence[str], gold_tags: Sequence[str]) -> NerExample:
    """Tag ``words`` with the pipeline and compare the entities with ``gold_tags``."""
    predicted = pipeline.ner_tags(list(words))
    return NerExample(list(words), list(gold_tags), list(predicted),
                      compare_entities(iob2_spans(gold_tags), iob2_spans(predicted)))


@dataclass
class QaExample:
    """A question with its gold answers, the predicted answer, and SQuAD EM and F1 (0-100)."""

    question: str
    context: str
    gold: list[dict]
    predicted: dict
    exact_match: float
    f1: float


def qa_example(pipeline, row: Mapping) -> QaExample:
    """Answer one SQuAD row (``question``, ``context``, ``answers``) and score it."""
    answers = row["answers"]
    gold = [{"answer": text, "start": int(start), "end": int(start) + len(text)}
            for text, start in zip(answers["text"], answers["answer_start"])]
    predicted = pipeline.qa(row["question"], row["context"])
    references = [answer["answer"] for answer in gold]
    return QaExample(row["question"], row["context"], gold, predicted,
                     100 * exact_match(predicted["answer"], references), 100 * token_f1(predicted["answer"], references))


def tag_names(dataset) -> list[str]:
    """The tag names of a CoNLL-style dataset's ``ner_tags`` column."""
    return dataset.features["ner_tags"].feature.names


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
