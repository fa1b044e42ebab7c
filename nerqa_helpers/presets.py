"""Named run sizes: ``tiny`` (bundled sample, about a minute on a laptop CPU), ``small`` (real
data subset, about ten minutes on 2 CPU cores) and ``full`` (all data, for a GPU)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """Data sizes and training settings of a named run."""

    name: str
    ner_train: int | None = None  # sentences (None = all)
    qa_train: int | None = None  # questions
    ner_eval: int | None = None
    qa_eval: int | None = None
    task_epochs: dict = field(default_factory=lambda: {"ner": 1.0, "qa": 1.0})
    batch_size: int = 32
    learning_rate: float = 1e-4
    eval_every: int | None = None
    ner_max_length: int = 128
    qa_max_length: int = 384
    doc_stride: int = 128


PRESETS = {
    "tiny": Preset("tiny", task_epochs={"ner": 12.0, "qa": 12.0}, batch_size=8, learning_rate=2e-4),
    "small": Preset("small", ner_train=2000, qa_train=2000, ner_eval=500, qa_eval=500,
                    task_epochs={"ner": 3.0, "qa": 1.5}, batch_size=16, learning_rate=2e-4),
    "full": Preset("full", task_epochs={"ner": 3.0, "qa": 2.0}, batch_size=32, learning_rate=1e-4),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error lists the choices."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
