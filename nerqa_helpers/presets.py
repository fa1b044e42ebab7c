"""Named run sizes and the one place every default of a run lives.

``tiny`` trains on the bundled sample (about half a minute on 2 idle CPU cores), ``small`` on the
real data (every NER sentence once, 4,000 questions; about ten minutes on 2 CPU cores) and
``full`` on all of it, for several passes (for a GPU). The notebooks' settings, the command line,
the experiments, ``TrainingConfig`` and the benchmark take their defaults from a :class:`Preset`;
the model's config stores the window sizes it was trained with, so the pipeline serves it with the
same windows. Floor 0: imports nothing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

TASKS = ("ner", "qa")
"""The two tasks, in the order every table and loop uses."""

STRATEGIES = ("round_robin", "proportional", "temperature", "annealed")
"""How the multi-task loader picks the task of each step (``sampling.task_probabilities``)."""

WINDOW_FIELDS = ("ner_max_length", "ner_stride", "qa_max_length", "doc_stride", "ner_context_tokens")
"""The window sizes (tokens) a model is trained and served with, and the sub-words of document context
per side in a NER window (0: the sentence alone); see :meth:`Preset.windows`."""


@dataclass(frozen=True)
class Preset:
    """Data sizes, window sizes and training settings of a named run.

    Sizes are sentences (NER) and questions (QA), ``None`` = all. Windows: NER sentences are cut
    into ``ner_max_length``-token windows overlapping by ``ner_stride``; a QA context into
    ``qa_max_length``-token windows (question included) overlapping by ``doc_stride``.
    ``ner_context_tokens`` > 0: a NER window also holds up to that many sub-words per side of the
    neighbouring sentences of the same document (``context``), unlabelled; every preset keeps 0.
    """

    name: str
    ner_train: int | None = None
    qa_train: int | None = None
    ner_eval: int | None = None
    qa_eval: int | None = None
    task_epochs: dict = field(default_factory=lambda: {"ner": 1.0, "qa": 1.0})
    batch_size: int = 32
    learning_rate: float = 1e-4
    strategy: str = "proportional"
    eval_every: int | None = None
    ner_max_length: int = 128
    ner_stride: int = 32
    qa_max_length: int = 384
    doc_stride: int = 128
    ner_context_tokens: int = 0

    def windows(self) -> dict[str, int]:
        """``{"ner_max_length", "ner_stride", "qa_max_length", "doc_stride", "ner_context_tokens"}`` of this preset."""
        return {name: getattr(self, name) for name in WINDOW_FIELDS}

    def sizes(self) -> dict[str, dict[str, int | None]]:
        """Rows per task and split: ``{"ner": {"train", "validation", "test"}, "qa": {"train", "validation"}}``.

        The NER test split is always whole (scoring all 3,453 CoNLL-2003 test sentences takes seconds),
        so test F1 compares with published figures."""
        return {"ner": {"train": self.ner_train, "validation": self.ner_eval, "test": None},
                "qa": {"train": self.qa_train, "validation": self.qa_eval}}

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULTS = Preset("defaults")
"""The field defaults, for code that needs one value without naming a run (e.g. a config field)."""

PRESETS = {
    "tiny": Preset("tiny", task_epochs={"ner": 3.0, "qa": 3.0}, batch_size=16, learning_rate=3e-4,
                   qa_max_length=128, doc_stride=48),
    # One pass over every NER sentence and 4,000 questions in 256-token windows: the best of the
    # allocations measured in reports/allocations (benchmarks/allocations.py) that fits ten minutes.
    "small": Preset("small", ner_train=None, qa_train=4000, ner_eval=500, qa_eval=500,
                    task_epochs={"ner": 1.0, "qa": 1.0}, batch_size=16, learning_rate=2e-4,
                    qa_max_length=256, doc_stride=96),
    "full": Preset("full", task_epochs={"ner": 3.0, "qa": 2.0}, batch_size=32, learning_rate=1e-4),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error lists the choices."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
