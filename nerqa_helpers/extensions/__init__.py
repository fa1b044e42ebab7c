"""Extensions of the multi-task model and loop, each through a small seam.

* ``balancing`` — loss balancers for ``train(..., balancer=...)``: fixed λ, GradNorm,
  uncertainty weighting, PCGrad gradient surgery.
* ``lora`` — one frozen encoder with a LoRA adapter per task (``MultiTaskConfig(lora=...)``);
  importing it registers the adapters in ``model.ENCODER_ADAPTERS``, the model's seam for them.
* ``probe`` — a gradient-conflict probe for ``train(..., step_hook=...)``.

Soft parameter sharing needs no module of its own: it is ``MultiTaskConfig(shared_layers=N)``.
"""
from .balancing import GradNorm, LossBalancer, PCGrad, StaticWeights, UncertaintyWeighting, last_shared_parameters
from .lora import add_task_adapters, trainable_parameters
from .probe import GradientConflictProbe

__all__ = [
    "GradNorm", "LossBalancer", "PCGrad", "StaticWeights", "UncertaintyWeighting", "last_shared_parameters",
    "add_task_adapters", "trainable_parameters", "GradientConflictProbe",
]
