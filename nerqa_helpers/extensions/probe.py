"""A gradient-conflict probe: do NER and QA pull the shared encoder the same way?

Every ``every`` steps the probe takes one fixed batch per task, computes each task's gradient on
the shared encoder parameters, and records the cosine similarity of the two gradients, per encoder
layer and over all shared parameters::

    cos(g_ner, g_qa) = g_ner · g_qa / (‖g_ner‖ ‖g_qa‖)      1: same direction, −1: opposite

Negative cosines are the "negative transfer" that soft sharing, LoRA and PCGrad try to avoid.

It plugs into ``training.train(..., step_hook=probe)``. It does not change the run: the probe's
forward passes use eval mode (no dropout), restore the random-number state, and take gradients
with ``torch.autograd.grad``, which leaves the training step's ``.grad`` untouched.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Mapping

import pandas as pd
import torch
from torch import nn

_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_name(parameter_name: str) -> str:
    """Group of an encoder parameter: ``"layer 3"``, ``"embeddings"`` or ``"other"``."""
    match = _LAYER.search(parameter_name)
    if match:
        return f"layer {int(match.group(1))}"
    return "embeddings" if "embeddings" in parameter_name else "other"


def shared_encoder_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The trainable parameters of ``model.encoder`` (the shared part), grouped by layer.

    Soft sharing moves the unshared top layers out of ``model.encoder``; a frozen LoRA encoder
    has no shared trainable parameters (each adapter is one task's), which is an error here.
    """
    groups: dict[str, list[nn.Parameter]] = defaultdict(list)
    for name, parameter in model.encoder.named_parameters():
        if parameter.requires_grad and "lora_" not in name:
            groups[layer_name(name)].append(parameter)
    if not groups:
        raise ValueError("The encoder has no shared trainable parameters to probe.")
    return dict(groups)


class GradientConflictProbe:
    """Records cosine similarities between two tasks' gradients on the shared encoder.

    ``probe_batches``: task → a fixed batch (dict of tensors with that task's targets), exactly
    two tasks. ``every``: probe on steps ``every``, ``2·every``, ... Call it as
    ``probe(step, task_losses, model)`` (the loop's ``step_hook``); :meth:`frame` gives the rows.
    """

    def __init__(self, model: nn.Module, probe_batches: Mapping[str, Mapping[str, torch.Tensor]], every: int = 50):
        if len(probe_batches) != 2:
            raise ValueError(f"The probe compares two tasks, got {list(probe_batches)}")
        self.probe_batches = dict(probe_batches)
        self.every = every
        self.groups = shared_encoder_parameters(model)
        self.records: list[dict] = []

    def __call__(self, step: int, task_losses=None, model: nn.Module | None = None) -> None:
        if model is not None and step % self.every == 0:
            self.measure(model, step)

    def measure(self, model: nn.Module, step: int = 0) -> list[dict]:
        """Probe now: one row per layer group plus ``"all"``, each {step, layer, cosine, norm_<task>}."""
        gradients = {task: self._task_gradients(model, task, batch) for task, batch in self.probe_batches.items()}
        first, second = gradients
        rows = []
        for layer in [*self.groups, "all"]:
            a, b = gradients[first][layer], gradients[second][layer]
            cosine = torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-12).clamp(-1, 1)
            rows.append({"step": step, "layer": layer, "cosine": float(cosine),
                         f"norm_{first}": float(a.norm()), f"norm_{second}": float(b.norm())})
        self.records.extend(rows)
        return rows

    def _task_gradients(self, model: nn.Module, task: str, batch) -> dict[str, torch.Tensor]:
        """Flattened float32 gradient of ``task``'s loss per layer group (and ``"all"``)."""
        groups = shared_encoder_parameters(model)
        parameters = [parameter for group in groups.values() for parameter in group]
        device = parameters[0].device
        batch = {key: value.to(device) for key, value in batch.items()}
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            loss = model(**batch, task=task).task_loss
        model.train(was_training)
        gradients = torch.autograd.grad(loss, parameters, allow_unused=True, materialize_grads=True)
        flat, start = {}, 0
        for layer, group in groups.items():
            flat[layer] = torch.cat([g.float().reshape(-1) for g in gradients[start : start + len(group)]])
            start += len(group)
        flat["all"] = torch.cat([flat[layer] for layer in groups])
        return flat

    def frame(self) -> pd.DataFrame:
        """All probes so far: columns step, layer, cosine, norm_<task> for each task."""
        if not self.records:
            return pd.DataFrame(columns=["step", "layer", "cosine"])
        return pd.DataFrame(self.records)

    def summary(self) -> pd.DataFrame:
        """Cosine per layer (rows) and step (columns), for a heat map."""
        frame = self.frame()
        if not len(frame):
            return frame
        table = frame.pivot(index="layer", columns="step", values="cosine")
        return table.reindex([*self.groups, "all"])  # bottom layer first, not alphabetical
