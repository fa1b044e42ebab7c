"""LoRA: one frozen encoder, one low-rank adapter per task, trained through the ``peft`` library.

A LoRA adapter adds ``B @ A`` (rank r) to a frozen weight matrix W (out × in)::

    h = W x + (alpha / r) · B (A x)        A: (r, in)   B: (out, r), B starts at zero

so an untrained adapter leaves the encoder exactly as it was. Each task gets its own adapter on
the attention ``query`` and ``value`` projections (by default); the heads stay fully trainable.

The model switches adapters by task in ``MultiTaskModel.encode``. peft's ``set_adapter`` freezes
every adapter but the active one, which would hide the other task's adapter from an optimiser
built afterwards; :class:`TaskAdapterModel` keeps all adapters trainable. The inactive adapter
takes no part in the forward pass, so its gradient stays ``None`` and AdamW leaves it alone.
"""
from __future__ import annotations

import warnings
from typing import Mapping

from peft import LoraConfig, PeftModel
from torch import nn

from ..model import ENCODER_ADAPTERS, EncoderAdapter
from ..presets import TASKS
DEFAULT_SETTINGS = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"]}


class TaskAdapterModel(PeftModel):
    """A ``PeftModel`` whose adapter switch keeps every adapter trainable (see the module doc)."""

    def set_adapter(self, adapter_name: str, inference_mode: bool = False) -> None:
        if adapter_name == self.active_adapter and not inference_mode:
            return
        super().set_adapter(adapter_name, inference_mode=inference_mode)
        if not inference_mode:
            self.set_requires_grad(list(self.peft_config), True)


def lora_config(settings: Mapping | None = None) -> LoraConfig:
    """peft's ``LoraConfig`` from the workbook's settings dict (``r``, ``alpha``, ``dropout``,
    ``target_modules``); missing keys take :data:`DEFAULT_SETTINGS`."""
    merged = {**DEFAULT_SETTINGS, **dict(settings or {})}
    unknown = set(merged) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ValueError(f"Unknown LoRA settings {sorted(unknown)}; expected {sorted(DEFAULT_SETTINGS)}")
    return LoraConfig(
        r=int(merged["r"]),
        lora_alpha=float(merged["alpha"]),
        lora_dropout=float(merged["dropout"]),
        target_modules=list(merged["target_modules"]),
        bias="none",
    )


def add_task_adapters(model: nn.Module, settings: Mapping | None = None, tasks=TASKS) -> nn.Module:
    """Wrap ``model.encoder`` in a frozen :class:`TaskAdapterModel` with one adapter per task.

    Called by ``MultiTaskModel.__init__`` when ``config.lora`` is set (through
    ``model.ENCODER_ADAPTERS``, where this module registers it), so ``from_pretrained`` rebuilds
    the same structure before the weights load. Heads (and soft-sharing task layers)
    stay trainable. Sets ``model.lora_tasks``; returns ``model``.
    """
    with warnings.catch_warnings():  # peft reads a property transformers has deprecated
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        encoder = TaskAdapterModel(model.encoder, lora_config(settings), adapter_name=tasks[0])
    for task in tasks[1:]:
        encoder.add_adapter(task, lora_config(settings))
    model.encoder = encoder
    model.lora_tasks = tuple(tasks)
    return freeze_encoder(model)


def freeze_encoder(model: nn.Module) -> nn.Module:
    """Freeze the wrapped encoder's own weights and make every task's adapter trainable.

    ``MultiTaskModel.from_pretrained`` calls this again after loading, because loading replaces
    each parameter with a new, trainable one.
    """
    model.encoder.requires_grad_(False)
    model.encoder.set_requires_grad(list(model.lora_tasks), True)
    return model


def parameter_owner(name: str, tasks=TASKS) -> str:
    """Which task a parameter belongs to, by its name (heads, task layers, adapters), or "shared"."""
    for task in tasks:
        if name.startswith((f"{task}_head", f"task_layers.{task}.")) or f".{task}." in name:
            return task
    return "shared"


def trainable_parameters(model: nn.Module, tasks=TASKS) -> dict[str, int]:
    """Counts of trainable parameters: ``{"shared", <each task>, "total", "all"}``.

    ``all`` counts every parameter, trainable or frozen, so ``total / all`` is the trained share.
    """
    counts = {"shared": 0, **{task: 0 for task in tasks}, "total": 0, "all": 0}
    for name, parameter in model.named_parameters():
        counts["all"] += parameter.numel()
        if parameter.requires_grad:
            counts[parameter_owner(name, tasks)] += parameter.numel()
            counts["total"] += parameter.numel()
    return counts


ENCODER_ADAPTERS["lora"] = EncoderAdapter(attach=add_task_adapters, after_load=freeze_encoder)
