"""The multi-task data loader: which task's batch comes next, and how batches are formed.

A training run is planned up front as a *schedule*: one ``(task, example indices)`` pair per step.
Planning first makes the run deterministic for a seed, lets a resumed run skip to any step for
free, and lets a student plot the task mix before spending a second on training.

Strategies (``p_i`` is the chance that a step trains task ``i``, ``n_i`` its number of batches):

* ``round_robin``  — tasks take turns; a task that runs out drops out of the rotation.
* ``proportional`` — p_i ∝ n_i; every batch is used exactly once per pass (a shuffled merge).
* ``temperature``  — p_i ∝ n_i^(1/T); T = 1 is proportional, T → ∞ is uniform.
* ``annealed``     — p_i moves linearly from proportional (first step) to uniform (last step).

The last two draw tasks at random and cycle a task's batches when they run out.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .presets import STRATEGIES

ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
"""The feature columns the encoder reads (a forward pass without targets needs only these)."""
MODEL_INPUTS = ENCODER_INPUTS + ("labels", "start_positions", "end_positions")
"""Every column a training batch carries: the encoder inputs and each task's targets."""


def task_probabilities(
    batch_counts: Mapping[str, int], strategy: str, temperature: float = 2.0, progress: float = 0.0
) -> dict[str, float]:
    """Target chance of each task per step. ``progress`` in [0, 1] is used by ``annealed``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown sampling strategy {strategy!r}; choose one of {STRATEGIES}")
    sizes = np.array([float(n) for n in batch_counts.values()])
    if strategy == "round_robin":
        weights = np.ones_like(sizes)
    elif strategy == "proportional":
        weights = sizes
    elif strategy == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        weights = sizes ** (1.0 / temperature)
    else:  # annealed
        uniform = np.full_like(sizes, 1.0 / len(sizes))
        weights = (1.0 - progress) * sizes / sizes.sum() + progress * uniform
    return dict(zip(batch_counts, (weights / weights.sum()).tolist()))


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, group_by_length: bool = True
) -> list[list[int]]:
    """Shuffle example indices into batches; with grouping, similar lengths share a batch.

    Grouping sorts each shuffled chunk of 50 batches by length (longest first), then shuffles the
    batch order, so padding shrinks but batches still arrive in random order.
    """
    order = rng.permutation(len(lengths))
    if group_by_length:
        chunk = 50 * batch_size
        lengths = np.asarray(lengths)
        order = np.concatenate(
            [part[np.argsort(-lengths[part], kind="stable")] for part in np.array_split(order, max(1, -(-len(order) // chunk)))]
        ) if len(order) else order
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def shard_indices(size: int, num_replicas: int, rank: int) -> np.ndarray:
    """This process's share of ``range(size)``; shares are equal (indices wrap around to pad)."""
    per_rank = -(-size // num_replicas)
    padded = np.resize(np.arange(size), per_rank * num_replicas)
    return padded[rank::num_replicas]


def plan_schedule(
    batch_counts: Mapping[str, int],
    strategy: str = "proportional",
    total_steps: int | None = None,
    temperature: float = 2.0,
    seed: int = 0,
) -> list[str]:
    """The task of every step. ``batch_counts``: batches each task brings to the run."""
    rng = np.random.default_rng(seed)
    tasks = [task for task, count in batch_counts.items() if count > 0]
    if not tasks:
        raise ValueError("No task has any batch to train on.")
    natural = sum(batch_counts[task] for task in tasks)
    steps = natural if total_steps is None else int(total_steps)
    if strategy == "round_robin":
        left = {task: batch_counts[task] for task in tasks}
        order: list[str] = []
        while len(order) < steps:
            active = [task for task in tasks if left[task] > 0] or tasks
            for task in active:
                order.append(task)
                left[task] -= 1
        return order[:steps]
    if strategy == "proportional" and total_steps is None:
        order = np.repeat(tasks, [batch_counts[task] for task in tasks])
        return rng.permutation(order).tolist()
    counts = {task: batch_counts[task] for task in tasks}
    if strategy == "annealed":
        picks = []
        for step in range(steps):
            p = task_probabilities(counts, strategy, progress=step / max(steps - 1, 1))
            picks.append(rng.choice(tasks, p=list(p.values())))
        return [str(task) for task in picks]
    p = task_probabilities(counts, strategy, temperature)
    return [str(task) for task in rng.choice(tasks, size=steps, p=list(p.values()))]


class _ScheduledBatches(Dataset):
    """Step ``i`` → the collated batch of step ``i``; lets a DataLoader prefetch with workers."""

    def __init__(self, loader: "MultiTaskDataLoader", start_step: int):
        self.loader, self.start_step = loader, start_step

    def __len__(self) -> int:
        return len(self.loader.schedule) - self.start_step

    def __getitem__(self, position: int):
        task, indices = self.loader.schedule[self.start_step + position]
        return task, self.loader.collate(task, indices)


class MultiTaskDataLoader:
    """Batches from several task datasets, interleaved by a sampling strategy.

    Args:
        datasets: task → tokenized ``datasets.Dataset`` (model inputs plus any extra columns).
        collators: task → callable turning a list of feature dicts into a padded batch of tensors
            (e.g. ``DataCollatorForTokenClassification``); padding is per batch.
        batch_size: one size for all tasks or task → size.
        task_epochs: passes over each task's data in the run (one number or task → number).
        strategy, temperature: see the module docstring; ``total_steps`` overrides the run length.
        group_by_length: put examples of similar length into the same batch.
        num_replicas, rank: shard every task's data for distributed training; all processes
            get the same task schedule, so they always run the same head together.

    Iterating yields ``(task, batch)`` with ``batch`` a dict of tensors (B, T) / (B,).
    """

    def __init__(
        self,
        datasets: Mapping[str, Dataset],
        collators: Mapping[str, Callable],
        batch_size: int | Mapping[str, int] = 32,
        task_epochs: float | Mapping[str, float] = 1.0,
        strategy: str = "proportional",
        temperature: float = 2.0,
        total_steps: int | None = None,
        group_by_length: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        if not datasets:
            raise ValueError("MultiTaskDataLoader needs at least one task dataset.")
        self.datasets, self.collators = dict(datasets), dict(collators)
        self.strategy, self.seed = strategy, seed
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.task_batches = {
            task: self._plan_task(task, _per_task(batch_size, task), _per_task(task_epochs, task),
                                  group_by_length, num_replicas, rank)
            for task in self.datasets
        }
        counts = {task: len(batches) for task, batches in self.task_batches.items()}
        tasks = plan_schedule(counts, strategy, total_steps, temperature, seed)
        cursor = Counter()
        self.schedule: list[tuple[str, list[int]]] = []
        for task in tasks:
            batches = self.task_batches[task]
            self.schedule.append((task, batches[cursor[task] % len(batches)]))
            cursor[task] += 1
        self.target_mix = task_probabilities(counts, strategy, temperature, progress=0.5)
        self.produced: Counter = Counter()

    def _plan_task(self, task, batch_size, epochs, group_by_length, num_replicas, rank) -> list[list[int]]:
        """Batches of example indices for ``epochs`` passes over this process's shard."""
        dataset = self.datasets[task]
        if len(dataset) == 0:
            raise ValueError(f"The {task} training set is empty.")
        shard = shard_indices(len(dataset), num_replicas, rank)
        lengths = [len(ids) for ids in dataset[shard.tolist()]["input_ids"]] if group_by_length else [0] * len(shard)
        task_seed = [self.seed, sum(map(ord, task))]
        passes, batches = int(np.ceil(epochs)), []
        for number in range(passes):
            rng = np.random.default_rng(task_seed + [number])
            local = length_grouped_batches(lengths, batch_size, rng, group_by_length)
            batches += [shard[batch].tolist() for batch in local]
        whole = int(round(epochs * len(batches) / max(passes, 1)))
        return batches[: max(whole, 1)]

    def __len__(self) -> int:
        return len(self.schedule)

    def collate(self, task: str, indices: list[int]) -> dict[str, torch.Tensor]:
        """Collate the examples ``indices`` of ``task`` into one padded batch."""
        rows = self.datasets[task][indices]
        keys = [key for key in MODEL_INPUTS if key in rows]
        features = [{key: rows[key][i] for key in keys} for i in range(len(indices))]
        return self.collators[task](features)

    def iterate(self, start_step: int = 0) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
        """Yield ``(task, batch)`` from ``start_step`` to the end of the schedule."""
        steps = _ScheduledBatches(self, start_step)
        loader = DataLoader(steps, batch_size=None, shuffle=False, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, persistent_workers=False)
        for task, batch in loader:
            self.produced[task] += 1
            yield task, batch

    def __iter__(self):
        return self.iterate(0)

    def iterate_joint(self, steps: int | None = None, start_step: int = 0):
        """Yield ``{task: batch}`` with one batch of *every* task per step (for loss balancers
        such as GradNorm that compare the tasks' gradients within a step). Each task walks its
        own batches in order and wraps around; ``steps`` defaults to the longest task's count."""
        steps = steps or max(len(batches) for batches in self.task_batches.values())
        for step in range(start_step, steps):
            joint = {}
            for task, batches in self.task_batches.items():
                joint[task] = self.collate(task, batches[step % len(batches)])
                self.produced[task] += 1
            yield joint

    def planned_mix(self) -> dict[str, float]:
        """Share of steps each task gets in the planned schedule."""
        counts = Counter(task for task, _ in self.schedule)
        return {task: counts[task] / len(self.schedule) for task in self.datasets}

    def task_mix(self) -> dict[str, float]:
        """Share of steps each task actually got among the batches produced so far."""
        total = sum(self.produced.values()) or 1
        return {task: self.produced[task] / total for task in self.datasets}


def _per_task(value, task):
    return value[task] if isinstance(value, Mapping) else value


def make_collators(tokenizer, pad_to_multiple_of: int | None = None) -> dict[str, Callable]:
    """Per-batch padding for each task: NER labels pad with -100, QA positions are scalars."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    return {
        "ner": DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_to_multiple_of),
        "qa": DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of),
    }
