"""Gradient clipping in the training loop: each task's gradient on its own, or their sum as one.

``training.train`` calls :func:`weighted_terms` to split a step's loss by task and
:func:`backward_and_clip` to back-propagate and clip it by ``TrainingConfig.clipping``
(:data:`CLIPPING_RULES`); ``config`` is a ``training.TrainingConfig`` (its ``max_grad_norm`` and
``clipping``).
"""
from __future__ import annotations

from typing import Mapping

import torch


CLIPPING_RULES = {
    "per_task": "each task's gradient g_i is clipped on its own, then weighted: Σ w_i · clip(g_i, max_grad_norm)",
    "total": "the weighted sum is clipped as one: clip(Σ w_i · g_i, max_grad_norm)",
}
"""How ``TrainingConfig.clipping`` treats the gradient norm. In a one-task step both rules clip that
task's gradient alone (``per_task`` before its weight λ, ``total`` after it). In a joint step they
differ: under ``total`` the task with the larger gradient (QA's is often 5-20x NER's) sets the
scale of the clipped update, so the other task's share shrinks by the same factor."""


def weighted_terms(task_losses: Mapping[str, torch.Tensor], step: int, balancer, model) -> dict:
    """``{task: (w_task, term)}``: each task's weight and its part of the step's loss (``term`` is
    w_task · L_task for fixed λ; a balancer's :meth:`task_terms` may add its own regulariser)."""
    if balancer is not None and hasattr(balancer, "task_terms"):
        return balancer.task_terms(task_losses, step)
    if balancer is not None:  # a balancer with only ``combine``: its loss is clipped as one
        return {"all": (1.0, balancer.combine(task_losses, step))}
    return {task: (model.task_weight(task), model.task_weight(task) * loss) for task, loss in task_losses.items()}


def backward_and_clip(accelerator, model, terms: Mapping[str, tuple], config) -> None:
    """Back-propagate the step's loss Σ term and clip the gradient by ``config.clipping``.

    ``terms``: ``{task: (w_task, term)}`` (:func:`weighted_terms`). ``per_task``: each task's
    gradient w_i·g_i is clipped to ``max_grad_norm``·w_i, that is w_i·clip(g_i), and the clipped
    gradients are summed in ``.grad``. A joint step back-propagates each term on its own and keeps
    the clipped gradient aside while the next is computed; with fp16 the thresholds are in the loss
    scaler's units, since gradients can be unscaled only once a step. ``total``: one backward of the
    sum, clipped once. A balancer that writes ``.grad`` itself (PCGrad) clips per task itself.
    With gradient accumulation over k micro-steps, a joint step's per-task clip applies to each
    micro-step's gradient (threshold / k, as the loss is divided by k); other steps clip at the update.
    """
    norm, sync = config.max_grad_norm, accelerator.sync_gradients
    if _writes_gradients(terms):  # the balancer has written .grad; its term carries no graph
        accelerator.backward(sum(term for _, term in terms.values()))
        if norm and sync and config.clipping == "total":
            accelerator.clip_grad_norm_(model.parameters(), norm)
        return
    if len(terms) == 1 or config.clipping == "total" or not norm:
        accelerator.backward(sum(term for _, term in terms.values()))
        if norm and sync:
            weight = float(next(iter(terms.values()))[0]) if len(terms) == 1 and config.clipping == "per_task" else 1.0
            accelerator.clip_grad_norm_(model.parameters(), norm * weight)
        return
    if accelerator.num_processes > 1:
        raise ValueError("Per-task clipping in joint steps runs on one process; use clipping='total' with several.")
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    scale = accelerator.scaler.get_scale() if accelerator.scaler is not None else 1.0
    scale /= accelerator.gradient_accumulation_steps
    kept = [parameter.grad for parameter in parameters]  # earlier micro-steps' gradients, if any
    for index, (weight, term) in enumerate(terms.values()):
        for parameter in parameters:
            parameter.grad = None
        accelerator.backward(term, retain_graph=index < len(terms) - 1)
        torch.nn.utils.clip_grad_norm_(parameters, norm * float(weight) * scale)
        kept = [new if old is None else (old if new is None else old + new)
                for old, new in zip(kept, (parameter.grad for parameter in parameters))]
    for parameter, grad in zip(parameters, kept):
        parameter.grad = grad


def _writes_gradients(terms) -> bool:
    """True when the step's loss has no graph behind it: a balancer wrote ``.grad`` by hand."""
    return all(term.grad_fn is None for _, term in terms.values())


def hand_over_clipping(balancer, config) -> None:
    """A balancer that writes gradients by hand (``writes_gradients``, e.g. PCGrad) clips each task's
    gradient itself under the per-task rule; under ``total`` the loop clips the sum it wrote."""
    if getattr(balancer, "writes_gradients", False):
        balancer.max_grad_norm = config.max_grad_norm if config.clipping == "per_task" else None
