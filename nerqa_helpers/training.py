"""The custom multi-task training loop and the history it keeps.

One step = one batch of one task: forward on that task's head, loss λ_task · L_task, backward,
clip, optimiser and scheduler step. A joint step (a loss balancer with ``joint``) takes one batch of
every task; each task's gradient is clipped on its own before the weighted sum (``clipping``). ``accelerate.Accelerator`` makes the same code run on a CPU,
one GPU, or several processes (``accelerate launch`` / ``torchrun``).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .base import jsonable
from .evaluation import evaluate
from .sampling import MultiTaskDataLoader, make_collators
from .tasks import TaskData
from .precision import precision_for
from .presets import DEFAULTS
from .clipping import CLIPPING_RULES, backward_and_clip, hand_over_clipping, weighted_terms  # noqa: F401
from .checkpoint import (check_settings, check_weights, load_checkpoint, nonfinite_parameters, read_checkpoint,
                         replace_directory, rescale_learning_rate, save_unwrapped_weights, set_deterministic,
                         write_checkpoint)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step, task and batch."""


@dataclass
class TrainingConfig:
    """Everything the loop needs to know besides the model and the data.

    The schedule's defaults are ``presets.DEFAULTS``; :meth:`from_preset` takes a named preset's.
    ``mixed_precision``: "auto" follows ``precision.precision_for`` (bf16 from compute capability
    8.0, fp16 with loss scaling on 7.x, bf16 on a CPU with bfloat16 instructions, else float32);
    "bf16", "fp16" or "no" override it. Training and every evaluation it runs use that precision.
    """

    output_dir: str = "runs/multitask"
    learning_rate: float = DEFAULTS.learning_rate
    weight_decay: float = 0.01
    batch_size: int | dict = DEFAULTS.batch_size  # or {task: examples per batch}
    eval_batch_size: int = 128
    task_epochs: dict = field(default_factory=lambda: dict(DEFAULTS.task_epochs))
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    clipping: str = "per_task"  # or "total": see CLIPPING_RULES
    gradient_accumulation_steps: int = 1
    strategy: str = DEFAULTS.strategy
    temperature: float = 2.0
    group_by_length: bool = True
    eval_every: int | None = DEFAULTS.eval_every
    early_stopping_patience: int | None = None
    log_every: int = 10
    mixed_precision: str = "auto"
    seed: int = 0
    save_best: bool = True
    num_workers: int = 0
    n_best_size: int = 20
    max_answer_length: int = 30
    progress: bool = True
    cpu: bool = False
    checkpoint_every: int | None = None  # steps between resumable checkpoints in output_dir/checkpoint
    stop_after_steps: int | None = None  # end the run after this step (the schedule still spans all steps)
    deterministic: bool = False  # deterministic GPU kernels (the CPU loop is deterministic anyway)
    torch_compile: bool = False  # compiles on the first steps of each task and shape: see benchmarks/

    @classmethod
    def from_preset(cls, preset, **overrides) -> "TrainingConfig":
        """The config of a ``presets.Preset`` run (its learning rate, batch size, epochs, strategy and
        evaluation interval); keyword arguments set any other field or replace one of these."""
        values = dict(learning_rate=preset.learning_rate, batch_size=preset.batch_size,
                      task_epochs=dict(preset.task_epochs), strategy=preset.strategy, eval_every=preset.eval_every)
        return cls(**{**values, **overrides})


class History:
    """Every logged training step and every evaluation, as records → DataFrame / JSON."""

    def __init__(self, records: list[dict] | None = None):
        self.records = list(records or [])

    def log(self, **record) -> None:
        self.records.append(record)

    def frame(self, kind: str | None = None) -> pd.DataFrame:
        """All records (or those of one ``kind``: ``"train"`` / ``"eval"``) as a DataFrame."""
        rows = [r for r in self.records if kind is None or r.get("kind") == kind]
        return pd.DataFrame(rows)

    def to_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.records, indent=1))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "History":
        return cls(json.loads(Path(path).read_text()))


@dataclass
class TrainResult:
    history: History
    metrics: dict
    best_metrics: dict | None
    output_dir: str
    train_seconds: float


# -- training ---------------------------------------------------------------------------------
def make_accelerator(config: TrainingConfig, balancer=None) -> Accelerator:
    """Accelerator in the precision ``precision.precision_for`` picks for its device (or
    ``config.mixed_precision``), DDP tolerant of idle heads. A balancer that writes gradients by
    hand (``supports_loss_scaling = False``, e.g. PCGrad) trains in float32 where fp16 would be
    picked: fp16's loss scaling would divide its unscaled gradients once more."""
    precision = precision_for("cpu" if config.cpu else None, config.mixed_precision)
    if precision == "fp16" and not getattr(balancer, "supports_loss_scaling", True):
        print(f"notice: {type(balancer).__name__} cannot train with fp16 loss scaling; training in float32.")
        precision = "no"
    _forget_other_accelerator_state(precision, config.cpu)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    return Accelerator(mixed_precision=precision, cpu=config.cpu, kwargs_handlers=handlers,
                       gradient_accumulation_steps=config.gradient_accumulation_steps)


def _forget_other_accelerator_state(precision: str, cpu: bool) -> None:
    """``accelerate`` keeps one state per process and refuses a second ``Accelerator`` with another
    precision or device ("restart your runtime"). A notebook asks for one when a float32 CPU run
    (notebook 04's drift guard) comes before the real run in bf16 or on the GPU. In a single process
    nothing else holds that state, so it is cleared; a distributed run keeps its own."""
    if not AcceleratorState._shared_state:
        return
    state = AcceleratorState()
    wanted = "cpu" if cpu or not torch.cuda.is_available() else "cuda"
    if state.mixed_precision == precision and state.device.type == wanted:
        return
    if PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)


def make_optimizer(model, config: TrainingConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and LayerNorm weights; fused (one kernel for all
    parameters) on CUDA and CPU: on 2 CPU cores a step takes ~40 ms instead of ~500 ms."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=device.type in ("cuda", "cpu"))


def active_tasks(model, tasks: Mapping[str, TaskData]) -> list[str]:
    """Tasks with training data and λ > 0 (λ = 0 or no data gives single-task training)."""
    return [task for task, data in tasks.items() if data.train_features is not None and model.task_weight(task) > 0]


def train(model, tokenizer, tasks: Mapping[str, TaskData], config: TrainingConfig | None = None,
          step_hook: Callable | None = None, balancer=None,
          resume_from: str | os.PathLike | bool | None = None) -> TrainResult:
    """Train ``model`` on ``tasks`` with the multi-task loop; evaluate, keep the best checkpoint.

    Two seams for the extensions: ``step_hook(step, task_losses, model)`` is called after each
    backward pass, before the optimiser step (gradient probes); ``balancer`` replaces the fixed
    λ weighting (``balancer.combine(task_losses, step) -> loss``; with ``balancer.joint`` every
    step takes one batch of each task; ``balancer.parameters()`` are optimised too and
    ``balancer.weights()`` are logged). Returns the history and the final and best metrics;
    ``output_dir`` holds ``best/`` (model + tokenizer), ``history.json`` and ``metrics.json``.

    With ``config.checkpoint_every`` a resumable ``checkpoint/`` is written every that many steps
    (``nerqa_helpers.checkpoint``). ``resume_from``: ``True`` (this ``output_dir``), a run folder or
    a checkpoint folder: go on after the checkpoint's step, with the same settings (the learning
    rate may differ); the run ends as the uninterrupted run would have. A NaN or infinite loss
    raises :class:`TrainingDiverged`, leaving ``best/`` and ``checkpoint/`` as they were.
    """
    config = config or TrainingConfig()
    if config.clipping not in CLIPPING_RULES:
        raise ValueError(f"clipping must be one of {sorted(CLIPPING_RULES)}, got {config.clipping!r}")
    hand_over_clipping(balancer, config)
    set_seed(config.seed)
    set_deterministic(config.deterministic)
    accelerator = make_accelerator(config, balancer)
    training = active_tasks(model, tasks)
    if not training:
        raise ValueError("Nothing to train: every task has λ = 0 or no training data.")
    loader = MultiTaskDataLoader(
        {task: tasks[task].train_features for task in training}, make_collators(tokenizer),
        batch_size=config.batch_size, task_epochs=config.task_epochs, strategy=config.strategy,
        temperature=config.temperature, total_steps=config.max_steps, group_by_length=config.group_by_length,
        seed=config.seed, num_replicas=accelerator.num_processes, rank=accelerator.process_index,
        num_workers=config.num_workers, pin_memory=accelerator.device.type == "cuda",
    )
    joint = balancer is not None and getattr(balancer, "joint", False)
    total = (config.max_steps or max(map(len, loader.task_batches.values()))) if joint else len(loader)
    optimizer = make_optimizer(model, config, accelerator.device)
    if balancer is not None and list(balancer.parameters()):
        rate = getattr(balancer, "learning_rate", config.learning_rate)  # balancers may want a faster rate
        optimizer.add_param_group({"params": list(balancer.parameters()), "weight_decay": 0.0, "lr": rate})
    updates = math.ceil(total / config.gradient_accumulation_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * updates), updates)
    settings = _schedule_settings(config, tasks, training, joint, total, accelerator.num_processes)
    resumed = _resume(resume_from, config, model, settings)
    start = resumed["step"] if resumed else 0
    steps = loader.iterate_joint(total, start_step=start) if joint else ({task: batch} for task, batch in loader.iterate(start))
    model, optimizer = accelerator.prepare(model, optimizer)
    _register_for_checkpoints(accelerator, scheduler, balancer)
    if config.torch_compile:
        model = torch.compile(model, dynamic=True)  # lengths vary per batch: one graph for all of them
    output_dir = Path(config.output_dir)
    history = History(resumed["history"] if resumed else None)
    state = {"best": None, "bad_evals": 0, "stop": False, **(resumed["state"] if resumed else {})}
    loader.produced.update(resumed["produced"] if resumed else {})
    pending: list = []
    progress = tqdm(total=total, initial=start, desc="training", disable=not (config.progress and accelerator.is_main_process))
    started = time.perf_counter() - (resumed["elapsed_seconds"] if resumed else 0.0)
    model.train()
    step = start
    for step, batches in enumerate(steps, start=start + 1):
        if resumed and step == start + 1:  # after the loader's first draw, as in the uninterrupted run
            _load_resumed_state(accelerator, resumed, optimizer, scheduler, config)
        with accelerator.accumulate(model):
            task_losses = {}
            lr = optimizer.param_groups[0]["lr"]  # what this step uses, and the balancer's weights (if any)
            weights = _weight_snapshot(balancer) if balancer is not None else None
            for task, batch in batches.items():
                batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in batch.items()}
                task_losses[task] = model(**batch, task=task).task_loss
                pending.append((step, task, task_losses[task].detach(), int(batch["input_ids"].numel()),
                                batch["attention_mask"].sum(), lr, weights))
            terms = weighted_terms(task_losses, step, balancer, accelerator.unwrap_model(model))
            backward_and_clip(accelerator, model, terms, config)
            if step_hook is not None:
                step_hook(step, task_losses, accelerator.unwrap_model(model))
            optimizer.step()
            if accelerator.sync_gradients:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if step % config.log_every == 0 or step == total:
            _flush(pending, history, scheduler, started, loader, balancer)
            progress.set_postfix(_postfix(history))
        progress.update(1)
        if config.eval_every and step % config.eval_every == 0 and step < total:
            _flush(pending, history, scheduler, started, loader, balancer)  # never keep a diverged model
            _evaluate_and_keep(model, tokenizer, tasks, config, accelerator, history, state, step, output_dir)
            if state["stop"]:
                break
        if config.stop_after_steps and step >= config.stop_after_steps:
            break
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total and accelerator.sync_gradients:
            _flush(pending, history, scheduler, started, loader, balancer)
            _save_checkpoint(accelerator, model, tokenizer, output_dir,
                             _trainer_state(step, total, started, history, state, loader, settings, config))
    progress.close()
    _flush(pending, history, scheduler, started, loader, balancer)
    train_seconds = time.perf_counter() - started
    metrics = _evaluate_and_keep(model, tokenizer, tasks, config, accelerator, history, state, step, output_dir)
    metrics.update(train_seconds=train_seconds, steps=step, task_mix=loader.task_mix(),
                   mixed_precision=accelerator.mixed_precision)
    accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # the caller's model forgets the training autocast
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        history.to_json(output_dir / "history.json")
        (output_dir / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=1))
    accelerator.wait_for_everyone()
    return TrainResult(history, metrics, state["best"], str(output_dir), train_seconds)


def _flush(pending, history: History, scheduler, started: float, loader, balancer=None) -> None:
    """Move the buffered per-step losses to the host in one sync, check them, and log them with
    the learning rate and task weights each step used."""
    if not pending:
        return
    losses = torch.stack([entry[2].float() for entry in pending]).tolist()
    real = torch.stack([torch.as_tensor(entry[4]) for entry in pending]).tolist()
    for (step, task, _, tokens, _, lr, weights), loss, real_tokens in zip(pending, losses, real):
        if not math.isfinite(loss):
            pending.clear()
            batch = _batch_of(loader, step, task, joint=getattr(balancer, "joint", False))
            raise TrainingDiverged(
                f"Loss became {loss} at step {step} on task {task!r} (batch of training features {batch[:8]}"
                f"{'...' if len(batch) > 8 else ''}); lower the learning rate or check that batch. "
                "Checkpoints written before this step are kept."
            )
        logged = {f"weight_{name}": float(value) for name, value in (weights or {}).items()}
        history.log(kind="train", step=step, task=task, loss=loss, lr=lr, tokens=tokens,
                    real_tokens=int(real_tokens), time=time.perf_counter() - started, **logged)
    pending.clear()


def _weight_snapshot(balancer) -> dict:
    """The balancer's task weights now, learned ones as tensors (read at the next flush, no sync)."""
    snapshot = getattr(balancer, "weight_tensors", None)
    return snapshot() if snapshot is not None else balancer.weights()


def _batch_of(loader, step: int, task: str, joint: bool = False) -> list[int]:
    """Feature indices of ``task``'s batch at ``step`` (1-based), as the loader planned it."""
    if joint:  # iterate_joint: each task walks its own batches in order
        batches = loader.task_batches[task]
        return batches[(step - 1) % len(batches)]
    return loader.schedule[step - 1][1] if step <= len(loader.schedule) else []


def _postfix(history: History) -> dict:
    last = {}
    for record in reversed(history.records):
        if record.get("kind") == "train" and record["task"] not in last:
            last[record["task"]] = f"{record['loss']:.3f}"
    return last


def _evaluate_and_keep(model, tokenizer, tasks, config, accelerator, history, state, step, output_dir) -> dict:
    """Evaluate, log, and save the model when its combined score is the best so far."""
    unwrapped = accelerator.unwrap_model(model)
    metrics = evaluate(unwrapped, tokenizer, tasks, config)
    history.log(kind="eval", step=step, **{k: v for k, v in metrics.items() if not isinstance(v, dict)})
    score = metrics["score"]
    best = state["best"]
    if best is None or (math.isfinite(score) and score > best["score"]):
        state["best"], state["bad_evals"] = {**metrics, "step": step}, 0
        if config.save_best and accelerator.is_main_process:
            save_model(unwrapped, tokenizer, output_dir / "best")
    else:
        state["bad_evals"] += 1
        patience = config.early_stopping_patience
        state["stop"] = patience is not None and state["bad_evals"] >= patience
    accelerator.wait_for_everyone()
    return metrics


def save_model(model, tokenizer, directory: str | os.PathLike) -> Path:
    """Write model + tokenizer to ``directory`` atomically: into a temporary folder, then swapped in
    with ``checkpoint.replace_directory`` (the old folder stays complete until the new one is)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    if temporary.exists():
        shutil.rmtree(temporary)
    model.save_pretrained(temporary)
    tokenizer.save_pretrained(temporary)
    replace_directory(temporary, directory)
    return directory


# -- checkpoints and resume (nerqa_helpers.checkpoint) --------------------------------------------
def _schedule_settings(config: TrainingConfig, tasks, training, joint: bool, total: int, processes: int) -> dict:
    """What fixes the run's sequence of steps and batches: a resumed run must agree on all of it."""
    return {"seed": config.seed, "tasks": list(training), "strategy": config.strategy,
            "train_features": {task: len(tasks[task].train_features) for task in training},
            "batch_size": config.batch_size, "task_epochs": config.task_epochs, "temperature": config.temperature,
            "group_by_length": config.group_by_length, "max_steps": config.max_steps, "total_steps": total,
            "gradient_accumulation_steps": config.gradient_accumulation_steps, "warmup_ratio": config.warmup_ratio,
            "joint": joint, "processes": processes}


def _trainer_state(step, total, started, history, state, loader, settings, config) -> dict:
    """The JSON part of a checkpoint: where the run is and what it has seen so far."""
    return {"step": step, "total_steps": total, "elapsed_seconds": time.perf_counter() - started,
            "learning_rate": config.learning_rate, "settings": settings, "history": history.records,
            "best": state["best"], "bad_evals": state["bad_evals"], "produced": dict(loader.produced)}


def _register_for_checkpoints(accelerator, scheduler, balancer) -> None:
    """Have ``accelerator.save_state`` / ``load_state`` keep the scheduler and the loss balancer
    (custom objects 0 and 1) and the unwrapped model's weights, beside the optimiser and the
    random generators they keep anyway."""
    extra = [balancer] if hasattr(balancer, "state_dict") and hasattr(balancer, "load_state_dict") else []
    accelerator.register_for_checkpointing(scheduler, *extra)
    save_unwrapped_weights(accelerator)


def _save_checkpoint(accelerator, model, tokenizer, output_dir, trainer_state) -> None:
    """Write ``output_dir/checkpoint`` once the weights are checked to be finite numbers."""
    unwrapped = accelerator.unwrap_model(model)
    broken = nonfinite_parameters(unwrapped)
    if broken:
        raise TrainingDiverged(f"Weights became NaN or infinite by step {trainer_state['step']} ({', '.join(broken)}); "
                               "the checkpoint before is kept. Lower the learning rate and resume from it.")
    write_checkpoint(accelerator, output_dir, unwrapped, tokenizer, trainer_state)


def _resume(resume_from, config, model, settings) -> dict | None:
    """Find the checkpoint to resume and check that it fits this run (settings, weights), before
    anything is trained; return its step, history, best scores, sample counts and time (None:
    a fresh run). Its state is loaded at the first step, by :func:`_load_resumed_state`."""
    if resume_from is None or resume_from is False:
        return None
    checkpoint = read_checkpoint(config.output_dir if resume_from is True else resume_from)
    check_settings(checkpoint, settings)
    check_weights(model, checkpoint.directory)
    saved = checkpoint.trainer_state
    return {"checkpoint": checkpoint, "step": checkpoint.step, "history": saved["history"],
            "produced": saved["produced"], "state": {"best": saved["best"], "bad_evals": saved["bad_evals"]},
            "elapsed_seconds": saved["elapsed_seconds"], "learning_rate": saved["learning_rate"]}


def _load_resumed_state(accelerator, resumed: dict, optimizer, scheduler, config) -> None:
    """Weights, optimiser, scheduler, balancer and random generators as the checkpoint holds them
    (``accelerator.load_state``), then the learning rate of this run if it differs.

    Called after the loader's first draw: starting the DataLoader draws a seed from torch's
    generator, which the uninterrupted run did at step 1, so the saved generator goes back after it.
    """
    load_checkpoint(accelerator, resumed["checkpoint"])
    rescale_learning_rate(optimizer, scheduler, config.learning_rate / resumed["learning_rate"])
