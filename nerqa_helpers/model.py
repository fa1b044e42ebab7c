"""The multi-task model: one shared encoder, a NER head and an extractive-QA head.

    input_ids (B, T) ──► shared encoder ──► hidden (B, T, H) ─┬─► ner_head ──► logits (B, T, C)
                         (bottom N layers shared;             └─► qa_head  ──► start, end (B, T)
                          top layers per task when N < L)

The loss the training loop back-propagates is the weighted task loss λ_task · L_task, with the
weights λ kept in the config. Soft parameter sharing is the config field ``shared_layers``.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .base import NER_LABELS
from .encoders import load_with_pooler_note, resolve_encoder
from .presets import DEFAULTS, TASKS, WINDOW_FIELDS


class EncoderAdapter(NamedTuple):
    """How an extension wraps the encoder, for a config field it owns (``lora``: extensions.lora).

    attach(model, settings): wrap ``model.encoder`` (end of ``__init__``, so ``from_pretrained``
    rebuilds the same structure before the weights load); after_load(model): fix up what loading
    undid (e.g. re-freeze the encoder).
    """

    attach: Callable
    after_load: Callable


ENCODER_ADAPTERS: dict[str, EncoderAdapter] = {}
"""Config field → :class:`EncoderAdapter`; an extension registers itself here when imported."""


class MultiTaskConfig(PretrainedConfig):
    """Configuration of :class:`MultiTaskModel`.

    Args:
        encoder_config: the encoder's own config as a dict (``BertConfig.to_dict()``).
        ner_label_names: IOB2 tag names, index = class id; stored once, as ``id2label``.
        task_weights: λ per task, e.g. ``{"ner": 1.0, "qa": 1.0}``.
        head_dropout: dropout before each head.
        shared_layers: how many bottom encoder layers both tasks share; ``None`` shares all (hard
            sharing), 0 gives each task its own encoder layers.
        lora: ``None`` or a dict of LoRA settings (``r``, ``alpha``, ``dropout``,
            ``target_modules``) for one frozen encoder with one adapter per task; the adapters come
            from ``nerqa_helpers.extensions.lora`` (import it first: it registers itself in
            :data:`ENCODER_ADAPTERS`).
        ner_max_length, ner_stride, qa_max_length, doc_stride: the windows (tokens) the model is
            trained with, and so served with (``MultiTaskPipeline`` reads them); default: ``presets.DEFAULTS``.
        ner_context_tokens: sub-words of document context per side in a NER window (0: the sentence
            alone, also for a config saved before the field); served the same way.
        version_2_with_negative: trained to answer "no answer" (SQuAD v2).
    """

    model_type = "nerqa_multitask"

    def __init__(
        self,
        encoder_config: dict | None = None,
        ner_label_names: list[str] | None = None,
        task_weights: dict[str, float] | None = None,
        head_dropout: float = 0.1,
        shared_layers: int | None = None,
        lora: dict | None = None,
        ner_max_length: int | None = None,
        ner_stride: int | None = None,
        qa_max_length: int | None = None,
        doc_stride: int | None = None,
        ner_context_tokens: int | None = None,
        version_2_with_negative: bool = False,
        **kwargs,
    ):
        self.encoder_config = encoder_config or {}
        self.task_weights = dict(task_weights or {task: 1.0 for task in TASKS})
        self.head_dropout = head_dropout
        self.shared_layers = shared_layers
        self.lora = lora
        given = {**(kwargs.pop("window_settings", None) or {}),  # configs saved before the window fields
                 **{name: value for name, value in (("ner_max_length", ner_max_length), ("ner_stride", ner_stride),
                                                    ("qa_max_length", qa_max_length), ("doc_stride", doc_stride),
                                                    ("ner_context_tokens", ner_context_tokens))
                    if value is not None}}
        for name, default in DEFAULTS.windows().items():
            setattr(self, name, int(given.get(name, default)))
        self.version_2_with_negative = bool(version_2_with_negative)
        names = list(ner_label_names or [])
        if names:
            kwargs["id2label"] = dict(enumerate(names))
            kwargs["label2id"] = {name: i for i, name in enumerate(names)}
        elif not kwargs.get("id2label"):
            kwargs["num_labels"] = 0  # no NER labels given: none stored
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        super().__init__(**kwargs)

    @property
    def ner_label_names(self) -> list[str]:
        """IOB2 tag names by class id, read from ``id2label`` (the one place they are stored)."""
        return [self.id2label[i] for i in range(len(self.id2label or {}))]

    def windows(self) -> dict[str, int]:
        """``{"ner_max_length", "ner_stride", "qa_max_length", "doc_stride", "ner_context_tokens"}``: the
        windows it was trained with."""
        return {name: getattr(self, name) for name in WINDOW_FIELDS}

    @property
    def num_encoder_layers(self) -> int:
        return int(self.encoder_config.get("num_hidden_layers", 0))

    def encoder_hf_config(self) -> PretrainedConfig:
        """The encoder's config object, rebuilt from the stored dict."""
        settings = dict(self.encoder_config)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)


@dataclass
class MultiTaskOutput(ModelOutput):
    """What :meth:`MultiTaskModel.forward` returns.

    loss: λ_task · task_loss, a scalar (what the loop back-propagates), when targets were given.
    task_loss: the unweighted task loss.
    logits: NER tag scores (B, T, C); start_logits / end_logits: QA span scores (B, T).
    hidden_states: the encoder's last hidden states (B, T, H) for the task's path.
    """

    loss: torch.Tensor | None = None
    task_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The ModuleList of transformer blocks of a BERT-like encoder."""
    for path in ("encoder.layer", "transformer.layer", "layers"):
        module = encoder
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"Cannot find the transformer layers of {type(encoder).__name__}")


class MultiTaskModel(PreTrainedModel):
    """Shared encoder + NER head + QA head; see the module docstring for the picture."""

    config_class = MultiTaskConfig
    base_model_prefix = "mtl"
    supports_gradient_checkpointing = False
    _supports_sdpa = True

    def __init__(self, config: MultiTaskConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        if encoder is None:
            encoder = _encoder_from_config(config.encoder_hf_config())
        self.encoder = encoder
        hidden_size = encoder.config.hidden_size
        self.dropout = nn.Dropout(config.head_dropout)
        self.ner_head = nn.Linear(hidden_size, max(len(config.ner_label_names), 1))
        self.qa_head = nn.Linear(hidden_size, 2)  # column 0: start score, column 1: end score
        self.task_layers = self._split_encoder(config.shared_layers)
        self._encoder_takes_token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters
        self.post_init()  # before the adapters: post_init would re-initialise LoRA's zero B matrices
        for field, adapter in self._adapters():
            adapter.attach(self, getattr(config, field))

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_encoder(
        cls,
        encoder_name: str | None = None,
        ner_label_names: list[str] | None = None,
        **config_kwargs,
    ) -> "MultiTaskModel":
        """A new multi-task model whose encoder starts from a pretrained checkpoint.

        ``encoder_name``: ``"default"`` (bundled MiniLM), a local directory or a hub id. Task
        layers of soft sharing start from the same pretrained weights for every task; the heads
        start random.
        """
        path, local = resolve_encoder(encoder_name)
        encoder = _encoder_from_pretrained(path, local)
        config = MultiTaskConfig(
            encoder_config=encoder.config.to_dict(),
            ner_label_names=list(ner_label_names or NER_LABELS),
            **config_kwargs,
        )
        config.encoder_name = str(encoder_name or "default")
        return cls(config, encoder=encoder)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``, then re-freeze a LoRA encoder (loading a checkpoint
        makes every parameter trainable again)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        for _, adapter in model._adapters():
            adapter.after_load(model)
        return loaded

    def _adapters(self) -> list[tuple[str, EncoderAdapter]]:
        """(config field, adapter) for every adapter this config asks for (``lora`` when set)."""
        if self.config.lora and "lora" not in ENCODER_ADAPTERS:
            raise ValueError("config.lora is set: import nerqa_helpers.extensions.lora (or nerqa_helpers.extensions) "
                             "first, so that the model can build its LoRA adapters.")
        return [(field, adapter) for field, adapter in ENCODER_ADAPTERS.items() if getattr(self.config, field, None)]

    def _split_encoder(self, shared_layers: int | None) -> nn.ModuleDict | None:
        """Give each task its own copy of the layers above ``shared_layers`` (soft sharing)."""
        layers = encoder_layers(self.encoder)
        if shared_layers is None or shared_layers >= len(layers):
            return None
        if shared_layers < 0:
            raise ValueError(f"shared_layers must be >= 0, got {shared_layers}")
        top = list(layers[shared_layers:])
        task_layers = nn.ModuleDict({task: nn.ModuleList(copy.deepcopy(top)) for task in TASKS})
        del layers[shared_layers:]
        return task_layers

    def _init_weights(self, module: nn.Module) -> None:
        """Initialise only the heads; the encoder keeps its own (usually pretrained) weights."""
        heads = (getattr(self, "ner_head", None), getattr(self, "qa_head", None))
        if any(module is head for head in heads):
            module.weight.data.normal_(0.0, 0.02)
            module.bias.data.zero_()

    # -- forward ----------------------------------------------------------------------------
    def task_weight(self, task: str) -> float:
        """λ for ``task`` from the config (1.0 when unset)."""
        return float(self.config.task_weights.get(task, 1.0))

    def encode(self, input_ids, attention_mask, token_type_ids=None, task: str = "ner") -> torch.Tensor:
        """Hidden states (B, T, H) on ``task``'s path through the encoder."""
        if task not in TASKS:
            raise ValueError(f"Unknown task {task!r}; expected one of {TASKS}")
        if getattr(self, "lora_tasks", None):
            self.encoder.set_adapter(task)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self._encoder_takes_token_types:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs).last_hidden_state  # (B, T, H)
        if self.task_layers is not None:
            mask = self._extended_mask(attention_mask, hidden.dtype)
            for layer in self.task_layers[task]:
                output = layer(hidden, attention_mask=mask)
                hidden = output[0] if isinstance(output, tuple) else output
        return hidden

    @staticmethod
    def _extended_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, T) 0/1 mask → (B, 1, 1, T) additive mask, as BERT layers take it."""
        mask = attention_mask[:, None, None, :].to(dtype)
        return (1.0 - mask) * torch.finfo(dtype).min

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        task: str = "ner",
        labels: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        **unused,
    ) -> MultiTaskOutput:
        """Run ``task``'s head on the shared encoding.

        input_ids, attention_mask, token_type_ids: (B, T). NER targets ``labels`` (B, T) with -100
        where no loss is taken; QA targets ``start_positions`` / ``end_positions`` (B,).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encode(input_ids, attention_mask, token_type_ids, task)  # (B, T, H)
        features = self.dropout(hidden)
        if task == "ner":
            logits = self.ner_head(features)  # (B, T, C)
            task_loss = None
            if labels is not None:
                task_loss = nn.functional.cross_entropy(
                    logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100
                )
            return self._output(task, task_loss, hidden, logits=logits)
        start_logits, end_logits = self.qa_head(features).unbind(dim=-1)  # (B, T) each
        task_loss = None
        if start_positions is not None and end_positions is not None:
            length = start_logits.size(1)  # positions past the window are ignored, as in HF heads
            start = start_positions.clamp(0, length)
            end = end_positions.clamp(0, length)
            task_loss = (
                nn.functional.cross_entropy(start_logits.float(), start, ignore_index=length)
                + nn.functional.cross_entropy(end_logits.float(), end, ignore_index=length)
            ) / 2
        return self._output(task, task_loss, hidden, start_logits=start_logits, end_logits=end_logits)

    def _output(self, task, task_loss, hidden, **heads) -> MultiTaskOutput:
        loss = None if task_loss is None else self.task_weight(task) * task_loss
        return MultiTaskOutput(loss=loss, task_loss=task_loss, hidden_states=hidden, **heads)

    # -- bookkeeping --------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, int]:
        """Parameter counts: shared encoder, per-task layers/adapters, and each head."""
        counts = {"shared": 0, "ner": 0, "qa": 0}
        for name, parameter in self.named_parameters():
            owner = "shared"
            if name.startswith("ner_head") or name.startswith("task_layers.ner") or ".ner." in name:
                owner = "ner"
            elif name.startswith("qa_head") or name.startswith("task_layers.qa") or ".qa." in name:
                owner = "qa"
            counts[owner] += parameter.numel()
        return counts


def _encoder_from_config(encoder_config: PretrainedConfig) -> PreTrainedModel:
    try:
        return AutoModel.from_config(encoder_config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(encoder_config)


def _encoder_from_pretrained(path: str, local_files_only: bool) -> PreTrainedModel:
    """Pretrained encoder in float32 (transformers 5 otherwise keeps an fp16 checkpoint's dtype)."""
    kwargs = {"local_files_only": local_files_only, "dtype": torch.float32, "output_loading_info": True}

    def load():
        try:
            return AutoModel.from_pretrained(path, add_pooling_layer=False, **kwargs)
        except TypeError:
            return AutoModel.from_pretrained(path, **kwargs)

    return load_with_pooler_note(load, path)[0]


AutoConfig.register(MultiTaskConfig.model_type, MultiTaskConfig, exist_ok=True)
AutoModel.register(MultiTaskConfig, MultiTaskModel, exist_ok=True)
