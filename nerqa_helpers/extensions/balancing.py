"""Loss balancers: how the task losses of one step become the one loss the loop back-propagates.

Every balancer plugs into ``training.train(..., balancer=...)`` through the same four members:

* ``joint`` — ``True``: each step takes one batch of *every* task (``iterate_joint``);
* ``combine(task_losses, step) -> loss`` — ``task_losses`` maps task → scalar loss tensor;
  ``task_terms(task_losses, step) -> {task: (w_task, term)}`` is the same loss split by task (the
  loop clips each task's gradient on its own: ``training.CLIPPING_RULES``), and ``combine`` is the
  sum of the terms;
* ``parameters()`` — extra learnable tensors the loop's optimiser should also update;
* ``weights() -> {task: float}`` — the current weights, logged as ``weight_<task>``;
  ``weight_tensors()`` gives the same without a host-device sync (the loop logs every step's);
* ``state_dict()`` / ``load_state_dict(state)`` — what a checkpoint keeps of the balancer (the
  loop registers it with ``accelerator.register_for_checkpointing``).

NER sentences and QA windows are different inputs of different lengths, so a joint step runs
two forward passes, one per task, each on its own batch; the balancer sees the two losses
together and (for GradNorm and PCGrad) compares the gradients they send into the shared encoder.

Balancers here: :class:`StaticWeights` (fixed λ), :class:`GradNorm` (Chen et al., 2018),
:class:`UncertaintyWeighting` (Kendall et al., 2018) and :class:`PCGrad` (Yu et al., 2020).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..model import encoder_layers
from ..presets import TASKS


class LossBalancer:
    """The seam's defaults: not joint, fixed unit weights, nothing to learn. A subclass defines
    :meth:`task_terms` (or only ``combine``, whose loss is then clipped as one)."""

    joint = False

    def task_terms(self, task_losses: Mapping[str, torch.Tensor], step: int) -> dict[str, tuple]:
        """``{task: (w_task, term)}``: the task's weight and its part of the loss."""
        return {"all": (1.0, self.combine(task_losses, step))}

    def combine(self, task_losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        return sum(term for _, term in self.task_terms(task_losses, step).values())

    def parameters(self) -> list[torch.Tensor]:
        return []

    def weights(self) -> dict[str, float]:
        return {}

    def weight_tensors(self) -> dict[str, float | torch.Tensor]:
        """``weights()`` as they are now; learned ones as detached 0-d tensors, read later."""
        return self.weights()

    def state_dict(self) -> dict:
        """What changes while training (nothing for fixed weights), for a checkpoint."""
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        """Put back a :meth:`state_dict`."""


class StaticWeights(LossBalancer):
    """The guide's fixed weighting: loss = Σ λ_task · L_task over the tasks in the step.

    ``weights``: λ per task (a task left out counts 1.0). ``joint=True`` trains both tasks in
    every step; ``False`` keeps the loop's one-task-per-step schedule.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, joint: bool = False):
        self.lambdas = {task: 1.0 for task in TASKS} | dict(weights or {})
        self.joint = joint

    def task_terms(self, task_losses, step):
        return {task: (self.lambdas.get(task, 1.0), self.lambdas.get(task, 1.0) * loss)
                for task, loss in task_losses.items()}

    def weights(self):
        return {task: float(value) for task, value in self.lambdas.items()}


# -- GradNorm ---------------------------------------------------------------------------------
def last_shared_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of the last encoder layer both tasks go through (GradNorm's W).

    Hard sharing: the encoder's top layer. Soft sharing with N shared layers: layer N - 1
    (the layers above it belong to one task each). N = 0: the embeddings.
    """
    encoder = model.encoder
    layers = encoder_layers(encoder)
    module = layers[-1] if len(layers) else encoder.embeddings
    parameters = [parameter for name, parameter in module.named_parameters()
                  if parameter.requires_grad and "lora_" not in name]  # an adapter belongs to one task
    if not parameters:
        raise ValueError("The last shared encoder layer has no trainable parameters (a frozen LoRA "
                         "encoder shares nothing trainable); GradNorm needs shared weights.")
    return parameters


class GradNorm(LossBalancer):
    """GradNorm (Chen et al., 2018): learn task weights w_i that equalise gradient magnitudes.

    At each step, on the shared weights W (the last shared layer, see
    :func:`last_shared_parameters`)::

        G_i      = ‖∇_W w_i L_i‖ = w_i ‖∇_W L_i‖            gradient norm of task i
        r_i      = (L_i / L_i(0)) / mean_j (L_j / L_j(0))    relative inverse training rate
        target_i = mean_j G_j · r_i^α                         (held constant)
        L_grad   = Σ_i |G_i − target_i|

    A task that trains slower (larger r_i) or whose gradients are small gets a larger weight.
    ``L_grad`` updates only w, with its own Adam (learning rate ``lr``); afterwards w is kept
    positive and rescaled to sum to the number of tasks. The model is trained on
    Σ w_i L_i with the weights taken before the update. Because G_i is linear in w_i, the norm
    ‖∇_W L_i‖ is computed once (no second-order graph) and only through W, never the whole model.

    ``shared``: the model (W = its last shared layer), a callable returning W, or W itself.
    ``joint`` is ``True``: every step has one batch of each task, and the gradient norms compare
    those two batches. Run it single-process (the norms are taken on this process's batch).
    """

    joint = True

    def __init__(self, tasks: Sequence[str], shared, alpha: float = 1.5, lr: float = 0.025,
                 minimum: float = 1e-3):
        self.tasks = tuple(tasks)
        self.shared = shared
        self.alpha = alpha
        self.minimum = minimum
        self.task_weights = torch.ones(len(self.tasks), requires_grad=True)
        self.optimizer = torch.optim.Adam([self.task_weights], lr=lr)
        self.initial_losses: torch.Tensor | None = None

    def shared_parameters(self) -> list[torch.Tensor]:
        if isinstance(self.shared, nn.Module):
            return last_shared_parameters(self.shared)
        if callable(self.shared):
            return list(self.shared())
        return list(self.shared)

    def task_terms(self, task_losses, step):
        losses = torch.stack([task_losses[task].float() for task in self.tasks])  # (K,)
        if self.initial_losses is None:
            self.initial_losses = losses.detach().clamp_min(1e-8)
        if self.task_weights.device != losses.device:  # follow the model (before Adam has state)
            self.task_weights.data = self.task_weights.data.to(losses.device)
            self.initial_losses = self.initial_losses.to(losses.device)
        weights = self.task_weights.detach().clone()  # w(t), before the update
        if losses.requires_grad:
            self.update(losses)
        return {task: (weight, weight * loss) for task, weight, loss in zip(self.tasks, weights.unbind(), losses.unbind())}

    def update(self, losses: torch.Tensor) -> torch.Tensor:
        """One GradNorm step on w from the task losses (K,); returns L_grad (detached)."""
        shared = self.shared_parameters()
        norms = torch.stack([_gradient_norm(loss, shared) for loss in losses])  # ‖∇_W L_i‖, (K,)
        gradient_norms = self.task_weights * norms  # G_i, (K,)
        ratios = losses.detach() / self.initial_losses
        relative = ratios / ratios.mean()
        target = (gradient_norms.mean() * relative**self.alpha).detach()
        gradnorm_loss = (gradient_norms - target).abs().sum()
        self.optimizer.zero_grad(set_to_none=True)
        gradnorm_loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.task_weights.clamp_(min=self.minimum)
            self.task_weights.mul_(len(self.tasks) / self.task_weights.sum())
        return gradnorm_loss.detach()

    def weights(self):
        return dict(zip(self.tasks, self.task_weights.detach().tolist()))

    def weight_tensors(self):
        return dict(zip(self.tasks, self.task_weights.detach().clone().unbind()))

    def state_dict(self) -> dict:
        """The weights w (K,), their Adam state and the first step's losses L_i(0) (K,) or None."""
        return {"task_weights": self.task_weights.detach().clone(), "optimizer": self.optimizer.state_dict(),
                "initial_losses": self.initial_losses}

    def load_state_dict(self, state: Mapping) -> None:
        """Put back a :meth:`state_dict` in place (Adam keeps pointing at the same w)."""
        with torch.no_grad():
            self.task_weights.copy_(state["task_weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        initial = state["initial_losses"]
        self.initial_losses = None if initial is None else initial.to(self.task_weights.device)


def _gradient_norm(loss: torch.Tensor, parameters: Sequence[torch.Tensor]) -> torch.Tensor:
    """‖∂loss/∂parameters‖₂ in float32, leaving the graph (and every ``.grad``) intact."""
    gradients = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    squares = [gradient.float().pow(2).sum() for gradient in gradients if gradient is not None]
    return torch.stack(squares).sum().sqrt() if squares else loss.new_zeros((), dtype=torch.float32)


# -- uncertainty weighting ----------------------------------------------------------------------
class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty weighting (Kendall, Gal and Cipolla, 2018).

    Each task has a learnable log-variance s_i = log σ_i², and::

        loss = Σ_i exp(−s_i) · L_i + s_i

    For a fixed L_i the best s_i is log L_i, so the weight exp(−s_i) settles near 1 / L_i: a task
    whose loss stays high (noisy labels, a harder target) is trusted less. The paper's exact
    constants differ by task kind — a Gaussian (regression) term is ½ exp(−s)·L + ½ s and a
    softmax (classification) term exp(−s)·L + ½ s — and both of our tasks are classification;
    the common form above doubles the regulariser, which only halves where the weight settles
    (1 / L instead of 1 / (2L)) and keeps one formula for every task.

    ``parameters()`` returns the log-variances; the loop adds them to its optimiser (at its
    learning rate, so with 1e-4 they move slowly). ``weights()`` reports exp(−s_i). With
    ``joint=False`` each step sees one task's term only; the weights still learn.
    """

    def __init__(self, tasks: Sequence[str] = TASKS, initial_log_variance: float = 0.0, joint: bool = True):
        super().__init__()
        self.tasks = tuple(tasks)
        self.joint = joint
        self.log_variances = nn.Parameter(torch.full((len(self.tasks),), float(initial_log_variance)))

    def task_terms(self, task_losses, step):
        first = next(iter(task_losses.values()))
        if self.log_variances.device != first.device:  # the loop does not move the balancer
            self.log_variances.data = self.log_variances.data.to(first.device)
        terms = {}
        for index, task in enumerate(self.tasks):
            if task in task_losses:
                s = self.log_variances[index]
                terms[task] = (torch.exp(-s).detach(), torch.exp(-s) * task_losses[task].float() + s)
        return terms

    def combine(self, task_losses, step):
        return sum(term for _, term in self.task_terms(task_losses, step).values())

    def weights(self):
        return dict(zip(self.tasks, torch.exp(-self.log_variances.detach()).tolist()))

    def weight_tensors(self):
        return dict(zip(self.tasks, torch.exp(-self.log_variances.detach()).unbind()))


# -- PCGrad -------------------------------------------------------------------------------------
class PCGrad(LossBalancer):
    """Gradient surgery (Yu et al., 2020): when two tasks' gradients on the shared weights point
    against each other (negative dot product), remove from each the component along the other::

        g_i ← g_i − (g_i · g_j / ‖g_j‖²) g_j     if g_i · g_j < 0

    then use the sum of the projected gradients. Parameters only one task reaches (heads, task
    layers, adapters) get that task's gradient unchanged. With ``max_grad_norm`` set (the loop sets
    it under per-task clipping, ``training.CLIPPING_RULES``), each task's whole gradient is first
    clipped to ``max_grad_norm``·λ_task, before the surgery.

    How it fits the seam: ``combine`` computes each task's gradient itself (one backward pass per
    task, the same work as one backward of the summed loss, since the two batches have separate
    graphs), adds the result to ``.grad`` and returns a zero loss with no graph behind it, so the
    loop's ``backward`` adds nothing. Limits that follow: one process (gradients written by hand
    skip DDP's all-reduce), no fp16 loss scaling (bf16 and fp32 are fine), and
    ``gradient_accumulation_steps`` must be passed here to match the loop's.

    ``weights``: optional fixed λ per task applied before the surgery. ``seed`` fixes the random
    order in which each task's gradient is projected (it matters with three or more tasks).
    """

    joint = True
    supports_loss_scaling = False
    """``training.make_accelerator`` trains in float32 where fp16 would be picked."""
    writes_gradients = True
    """It fills ``.grad`` itself; the loop hands it the per-task clip threshold."""

    def __init__(self, model: nn.Module, weights: Mapping[str, float] | None = None,
                 gradient_accumulation_steps: int = 1, seed: int = 0):
        self.model = model
        self.lambdas = dict(weights or {})
        self.accumulation = gradient_accumulation_steps
        self.generator = torch.Generator().manual_seed(seed)
        self.conflicts: list[float] = []  # cosine between the two tasks' shared gradients, per step
        self.max_grad_norm: float | None = None  # per-task clip, set by the loop

    def task_terms(self, task_losses, step):
        return {"all": (1.0, self.combine(task_losses, step))}

    def combine(self, task_losses, step):
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            raise RuntimeError("PCGrad writes gradients by hand and runs on one process only.")
        parameters = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        last = len(task_losses) - 1
        gradients = {
            task: torch.autograd.grad(self.lambdas.get(task, 1.0) * loss / self.accumulation,
                                      parameters, allow_unused=True, retain_graph=index < last)
            for index, (task, loss) in enumerate(task_losses.items())
        }
        if self.max_grad_norm:
            gradients = {task: clip_gradients(grads, self.max_grad_norm * self.lambdas.get(task, 1.0) / self.accumulation)
                         for task, grads in gradients.items()}
        shared = [index for index in range(len(parameters))
                  if sum(gradients[task][index] is not None for task in gradients) > 1]
        projected = self.project({task: _flatten([grads[i] for i in shared]) for task, grads in gradients.items()})
        self._write(parameters, shared, gradients, projected)
        first = next(iter(task_losses.values()))
        return first.new_zeros((), requires_grad=True)

    def project(self, flat: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the tasks' shared gradients (each (P,)) after projecting away conflicts; (P,)."""
        tasks = list(flat)
        if len(tasks) == 2:
            self.conflicts.append(float(nn.functional.cosine_similarity(*flat.values(), dim=0)))
        total = torch.zeros_like(flat[tasks[0]])
        for task in tasks:
            gradient = flat[task].clone()
            others = [tasks[i] for i in torch.randperm(len(tasks), generator=self.generator).tolist()
                      if tasks[i] != task]
            for other in others:
                dot = torch.dot(gradient, flat[other])
                if dot < 0:
                    gradient -= dot / flat[other].pow(2).sum().clamp_min(1e-20) * flat[other]
            total += gradient
        return total

    def _write(self, parameters, shared, gradients, projected) -> None:
        """Add the projected shared gradient and the task-only gradients into ``.grad``."""
        pieces = iter(projected.split([parameters[i].numel() for i in shared]))
        shared_set = set(shared)
        for index, parameter in enumerate(parameters):
            if index in shared_set:
                update = next(pieces).view_as(parameter).to(parameter.dtype)
            else:
                parts = [grads[index] for grads in gradients.values() if grads[index] is not None]
                if not parts:
                    continue
                update = torch.stack(parts).sum(0)
            parameter.grad = update if parameter.grad is None else parameter.grad + update

    def weights(self):
        return {task: float(value) for task, value in self.lambdas.items()}

    def state_dict(self) -> dict:
        """The projection-order generator and the cosines logged so far."""
        return {"generator": self.generator.get_state(), "conflicts": list(self.conflicts)}

    def load_state_dict(self, state: Mapping) -> None:
        self.generator.set_state(state["generator"])
        self.conflicts = list(state["conflicts"])


def clip_gradients(gradients: Sequence[torch.Tensor | None], max_norm: float) -> list[torch.Tensor | None]:
    """One task's gradients scaled so that their joint L2 norm is at most ``max_norm`` (as
    ``torch.nn.utils.clip_grad_norm_`` does to ``.grad``)."""
    present = [gradient for gradient in gradients if gradient is not None]
    if not present:
        return list(gradients)
    norm = torch.stack([gradient.float().pow(2).sum() for gradient in present]).sum().sqrt()
    factor = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    return [None if gradient is None else gradient * factor.to(gradient.dtype) for gradient in gradients]


def _flatten(gradients: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([gradient.float().reshape(-1) for gradient in gradients]) if gradients else torch.zeros(0)

