"""What every notebook needs: its settings, its data, a trained model, and the version print.

The notebooks read their parameters from environment variables, so CI can run them small:

    NERQA_TINY=1         bundled tiny sample and the ``tiny`` preset
    NERQA_DATA_DIR       folder with conll2003/ and squad/ (real data, the ``small`` preset)
    (neither)            the Hugging Face hub when it answers (``small`` preset), else the tiny sample:
                         the data rule of ``sources.choose_data_source``; one line says which and why
    NERQA_PRESET         tiny | small | full, to override the choice above
    NERQA_ENCODER        "default" (bundled MiniLM), a local folder, or a hub id (bert-base-uncased)
    NERQA_NER_TRAIN, NERQA_QA_TRAIN, NERQA_NER_EVAL, NERQA_QA_EVAL   sample sizes ("all" for everything)
    NERQA_MAX_LENGTH, NERQA_DOC_STRIDE          tokens per QA window (question included) / overlap
    NERQA_NER_MAX_LENGTH, NERQA_NER_STRIDE      tokens per NER window / overlap
    NERQA_NER_CONTEXT    sub-words per side of document context in a NER window (default 0: none)
    NERQA_EPOCHS, NERQA_MAX_STEPS, NERQA_BATCH_SIZE, NERQA_STRATEGY, NERQA_SEED
    NERQA_RUNS_DIR       where trained models go (default: runs/ at the repository root). On Colab, a
                         Google Drive folder (e.g. /content/drive/MyDrive/nerqa-runs) keeps them
                         through a runtime reset
    NERQA_CHECKPOINT_EVERY   training steps between resumable checkpoints (default 200; 0: none)

Every default comes from the preset (``presets.PRESETS``). A model trained by one notebook is saved
in ``<runs>/workbook-<preset>/best`` with the settings it was trained with; :func:`load_or_train`
reuses it when the settings match, so the evaluation and demo notebooks start in seconds and CI
trains once per preset; a run that was interrupted goes on from its last checkpoint. A face
module: nothing imports it.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path

from .base import jsonable
from .presets import PRESETS, TASKS, WINDOW_FIELDS

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
REPOSITORY_URL = "https://github.com/nerqa-workbook/nerqa-workbook"
"""Where the workbook lives: the notebooks' install cell and Colab badges use this address."""
WORKBOOK_FILE = "workbook.json"
PENDING_FILE = "workbook-pending.json"  # settings of a run that started and has not finished
_TINY = PRESETS["tiny"]
VERSIONED_PACKAGES = ("nerqa-helpers", "torch", "transformers", "datasets", "accelerate", "peft", "evaluate",
                      "seqeval", "pandas", "matplotlib", "ipywidgets")


@dataclass(frozen=True)
class Settings:
    """The parameters of a notebook run (see the module docstring for the variables behind them).

    Sample sizes are numbers of sentences (NER) and questions (QA); ``None`` means all of them.
    ``data_source`` is "tiny" (bundled sample), "dir" (files in ``data_dir``) or "hub". Windows:
    ``qa_max_length`` / ``doc_stride`` are the QA window size and overlap in tokens,
    ``ner_max_length`` / ``ner_stride`` the NER ones, ``ner_context_tokens`` the sub-words of document
    context per side in a NER window (0: none). The defaults are the tiny preset's.
    """

    tiny: bool = True
    preset: str = _TINY.name
    data_source: str = "tiny"
    data_dir: str | None = None
    encoder: str = "default"
    ner_train: int | None = _TINY.ner_train
    qa_train: int | None = _TINY.qa_train
    ner_eval: int | None = _TINY.ner_eval
    qa_eval: int | None = _TINY.qa_eval
    ner_max_length: int = _TINY.ner_max_length
    ner_stride: int = _TINY.ner_stride
    qa_max_length: int = _TINY.qa_max_length
    doc_stride: int = _TINY.doc_stride
    ner_context_tokens: int = _TINY.ner_context_tokens
    ner_epochs: float = _TINY.task_epochs["ner"]
    qa_epochs: float = _TINY.task_epochs["qa"]
    batch_size: int = _TINY.batch_size
    learning_rate: float = _TINY.learning_rate
    strategy: str = _TINY.strategy
    max_steps: int | None = None
    seed: int = 0
    progress: bool = True
    runs_dir: str = field(default=str(REPOSITORY_ROOT / "runs"), compare=False)
    checkpoint_every: int = field(default=200, compare=False)

    @property
    def run_dir(self) -> Path:
        """``<runs>/workbook-<preset>`` (plus the encoder's name when it is not the default)."""
        name = f"workbook-{self.preset}"
        if self.encoder != "default":
            name += "-" + re.sub(r"[^A-Za-z0-9._-]+", "-", Path(self.encoder).name or self.encoder)
        return Path(self.runs_dir) / name

    @property
    def model_dir(self) -> Path:
        """Where the best checkpoint (model + tokenizer) is saved."""
        return self.run_dir / "best"

    def training_key(self) -> dict:
        """The settings a saved model must share with this run to be reused (all but progress, paths
        and the checkpoint interval)."""
        key = asdict(self)
        for name in ("progress", "runs_dir", "checkpoint_every"):
            key.pop(name)
        if not key["ner_context_tokens"]:  # runs saved before the field had none: they still match
            key.pop("ner_context_tokens")
        return key

    def windows(self) -> dict[str, int]:
        """``presets.WINDOW_FIELDS`` (windows and NER context): the model's config fields."""
        return {name: getattr(self, name) for name in WINDOW_FIELDS}

    def sizes(self) -> dict:
        """Rows per task and split, as ``sources.load_task_data`` takes them (the NER test split whole)."""
        return {"ner": {"train": self.ner_train, "validation": self.ner_eval, "test": None},
                "qa": {"train": self.qa_train, "validation": self.qa_eval}}


def _variable(name: str, default, kind=str):
    """``$name`` converted by ``kind``; ``default`` when unset or empty; "all"/"none" give None."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if value.lower() in {"all", "none"}:
        return None
    try:
        return kind(value)
    except ValueError as error:
        raise ValueError(f"Environment variable {name}={value!r} is not a valid {kind.__name__}.") from error


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def settings(**overrides) -> Settings:
    """Read the notebook parameters from the environment; keyword arguments override any field.

    The data follows the one data rule (``sources.choose_data_source``): ``NERQA_TINY=1`` → the bundled
    sample; ``NERQA_DATA_DIR`` → local files; else the Hugging Face hub when it answers; else the
    sample. Real data gets the ``small`` preset, the sample the ``tiny`` one (``NERQA_PRESET``
    overrides; the tiny preset always means the sample). With ``TQDM_DISABLE=1`` progress bars are
    switched off, also those of ``datasets``.
    """
    from .sources import choose_data_source
    from .presets import get_preset

    source = choose_data_source()
    preset = get_preset(_variable("NERQA_PRESET", "tiny" if source.kind == "tiny" else "small"))
    tiny = preset.name == "tiny"
    kind = "tiny" if tiny else source.kind
    progress = not _flag("TQDM_DISABLE")
    values = dict(
        tiny=tiny, preset=preset.name, data_source=kind,
        data_dir=str(Path(source.folder).resolve()) if kind == "dir" else None,
        encoder=_variable("NERQA_ENCODER", "default"),
        ner_train=_variable("NERQA_NER_TRAIN", preset.ner_train, int),
        qa_train=_variable("NERQA_QA_TRAIN", preset.qa_train, int),
        ner_eval=_variable("NERQA_NER_EVAL", preset.ner_eval, int),
        qa_eval=_variable("NERQA_QA_EVAL", preset.qa_eval, int),
        ner_max_length=_variable("NERQA_NER_MAX_LENGTH", preset.ner_max_length, int),
        ner_stride=_variable("NERQA_NER_STRIDE", preset.ner_stride, int),
        qa_max_length=_variable("NERQA_MAX_LENGTH", preset.qa_max_length, int),
        doc_stride=_variable("NERQA_DOC_STRIDE", preset.doc_stride, int),
        ner_context_tokens=_variable("NERQA_NER_CONTEXT", preset.ner_context_tokens, int) or 0,
        ner_epochs=_variable("NERQA_EPOCHS", preset.task_epochs["ner"], float),
        qa_epochs=_variable("NERQA_EPOCHS", preset.task_epochs["qa"], float),
        batch_size=_variable("NERQA_BATCH_SIZE", preset.batch_size, int),
        learning_rate=preset.learning_rate,
        strategy=_variable("NERQA_STRATEGY", preset.strategy),
        max_steps=_variable("NERQA_MAX_STEPS", None, int),
        seed=_variable("NERQA_SEED", 0, int),
        progress=progress,
        runs_dir=str(Path(_variable("NERQA_RUNS_DIR", str(REPOSITORY_ROOT / "runs"))).expanduser().resolve()),
        checkpoint_every=_variable("NERQA_CHECKPOINT_EVERY", 200, int) or 0,
    )
    if preset.name == "tiny":
        values.update(ner_epochs=_variable("NERQA_EPOCHS", TINY_EPOCHS["ner"], float),
                      qa_epochs=_variable("NERQA_EPOCHS", TINY_EPOCHS["qa"], float))
    values.update(overrides)
    _quiet(hide_progress=not values["progress"])
    return Settings(**values)


TINY_EPOCHS = {"ner": 2.0, "qa": 2.0}
"""Passes over the tiny sample: fewer than the CLI's tiny preset (3 and 3), so that the notebooks,
which train several models, stay quick on two CPU cores; both tasks still learn visibly."""


def _quiet(hide_progress: bool) -> None:
    """Keep ``transformers`` to errors (its load report lists the encoder checkpoint's unused pooler,
    which is expected) and, when asked, switch off the progress bars of ``datasets`` and ``transformers``
    (the training loop's own bar follows ``Settings.progress``)."""
    from datasets.utils import logging as datasets_logging
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    if hide_progress:
        datasets_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()


def versions() -> dict[str, str]:
    """Python and package versions, and the device the notebooks will train on."""
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["device"] = device_name()
    return found


def device_name() -> str:
    """"cuda (<GPU name>)", "mps" or "cpu (<n> cores)"."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return f"cpu ({os.cpu_count()} cores)"


# -- data ---------------------------------------------------------------------------------------
def load_datasets(s: Settings):
    """(ner, qa): the NER DatasetDict (train/validation/test) and the QA DatasetDict (train/validation)
    for these settings — the bundled sample, files in ``s.data_dir`` or the hub (``s.data_source``) —
    cut to the sample sizes with ``s.seed`` (``sources.load_task_data``, which prints where they come from)."""
    from .sources import load_task_data

    tiny = s.data_source == "tiny"
    ner, qa, _ = load_task_data(TASKS, s.sizes(), s.seed, data_dir=s.data_dir, tiny=tiny,
                                ner_context=s.ner_context_tokens > 0)
    return ner, qa


def load_tokenizer(s: Settings):
    """The encoder's tokenizer (a fast tokenizer, so offsets and ``word_ids()`` are available)."""
    from .encoders import load_tokenizer as load

    return load(s.encoder)


def build_task_data(s: Settings, tokenizer, ner=None, qa=None) -> dict:
    """Tokenized training and evaluation features of both tasks (``tasks.build_tasks``), in ``s``'s windows."""
    from .tasks import build_tasks

    if ner is None or qa is None:
        ner, qa = load_datasets(s)
    return build_tasks(tokenizer, ner, qa, **s.windows())


def training_config(s: Settings, **overrides):
    """The ``TrainingConfig`` of the workbook's run: the preset's, with ``s``'s schedule, output in ``s.run_dir``."""
    from .presets import get_preset
    from .training import TrainingConfig

    values = dict(output_dir=str(s.run_dir), learning_rate=s.learning_rate, batch_size=s.batch_size,
                  task_epochs={"ner": s.ner_epochs, "qa": s.qa_epochs}, max_steps=s.max_steps,
                  strategy=s.strategy, seed=s.seed, progress=s.progress,
                  checkpoint_every=s.checkpoint_every or None)
    return TrainingConfig.from_preset(get_preset(s.preset), **{**values, **overrides})


# -- the trained model --------------------------------------------------------------------------
def saved_run(s: Settings) -> dict | None:
    """The record of the model saved in ``s.run_dir`` when it was trained with these settings, else None."""
    record_file = s.run_dir / WORKBOOK_FILE
    if not (record_file.is_file() and (s.model_dir / "config.json").is_file()):
        return None
    try:
        record = json.loads(record_file.read_text())
    except json.JSONDecodeError:
        return None
    return record if record.get("settings") == jsonable(s.training_key()) else None


def load_or_train(s: Settings, force: bool = False, step_hook=None):
    """(model, tokenizer, metrics): the saved model of ``s.run_dir`` when its settings match,
    otherwise a model trained now with ``training.train`` (and saved for the next notebook). A run
    with these settings that was interrupted (a runtime reset, a stopped cell) goes on from its last
    checkpoint (written every ``s.checkpoint_every`` steps) instead of starting over.

    ``force`` trains afresh even when a matching model or checkpoint is saved; ``step_hook`` goes
    to ``training.train`` (e.g. ``plots.LiveLossPlot()``). ``metrics`` are the validation scores of
    the best checkpoint (``ner_f1``, ``qa_exact_match``, ``qa_f1``, ``ner_per_type``, ...) plus
    ``train_seconds``, ``steps`` and ``task_mix``. The model is in eval mode on the fastest device available.
    Two notebooks running at once with the same settings train once: the second waits for the first
    (a lock on ``s.run_dir``) and then loads its model.
    """
    with run_lock(s.run_dir):
        record = None if force else saved_run(s)
        if record is None:
            record = train_and_save(s, step_hook, resume=not force)
        else:
            print(f"Loaded the model trained on {record['trained_at']} from {s.model_dir} "
                  f"(training took {record['metrics'].get('train_seconds', float('nan')):.0f} s).")
        model, tokenizer = load_model(s.model_dir)
    return model, tokenizer, record["metrics"]


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike):
    """Hold an exclusive lock on ``run_dir`` (a ``.lock`` file beside its runs) while the block runs.

    The operating system releases it when the process ends, so a crashed run never leaves it held.
    Where file locks are not available (Windows, some network drives) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = Path(run_dir).with_name(Path(run_dir).name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a file system without locks
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def interrupted_run(s: Settings) -> str | None:
    """A description of the checkpoint of an unfinished run with these settings in ``s.run_dir``, else None."""
    from .checkpoint import describe

    pending = s.run_dir / PENDING_FILE
    try:
        same = json.loads(pending.read_text()).get("settings") == jsonable(s.training_key())
    except (OSError, ValueError, AttributeError):
        return None
    return describe(s.run_dir) if same else None


def train_and_save(s: Settings, step_hook=None, resume: bool = True) -> dict:
    """Train the multi-task model for ``s`` (going on from an interrupted run's checkpoint when
    ``resume``); write ``workbook.json`` next to the saved model; return that record."""
    from accelerate.utils import set_seed

    from .checkpoint import CHECKPOINT_DIR
    from .model import MultiTaskModel
    from .training import train

    tokenizer = load_tokenizer(s)
    ner, qa = load_datasets(s)
    labels = ner["train"].features["ner_tags"].feature.names
    set_seed(s.seed)  # the heads' random start is part of the run: same settings, same model
    model = MultiTaskModel.from_encoder(s.encoder, labels, **s.windows())  # served with the windows it learns on
    tasks = build_task_data(s, tokenizer, ner, qa)
    checkpoint = interrupted_run(s) if resume else None
    if not checkpoint:  # a checkpoint left by a run with other settings must never be resumed by this one
        shutil.rmtree(s.run_dir / CHECKPOINT_DIR, ignore_errors=True)
    s.run_dir.mkdir(parents=True, exist_ok=True)
    (s.run_dir / PENDING_FILE).write_text(json.dumps({"settings": jsonable(s.training_key())}, indent=1))
    if checkpoint:
        print(f"Going on with the interrupted run from {checkpoint} in {s.run_dir} ...")
    else:
        print(f"Training the multi-task model ({s.preset} preset) into {s.run_dir} ...")
    result = train(model, tokenizer, tasks, training_config(s), step_hook=step_hook,
                   resume_from=True if checkpoint else None)
    metrics = {**(result.best_metrics or result.metrics), "train_seconds": result.train_seconds,
               "steps": result.metrics.get("steps"), "task_mix": result.metrics.get("task_mix")}
    record = {"settings": jsonable(s.training_key()), "metrics": jsonable(metrics),
              "trained_at": time.strftime("%Y-%m-%d %H:%M")}
    (s.run_dir / WORKBOOK_FILE).write_text(json.dumps(record, indent=1))
    (s.run_dir / PENDING_FILE).unlink(missing_ok=True)
    print(f"Done in {result.train_seconds:.0f} s: NER F1 {metrics.get('ner_f1', float('nan')):.1f}, "
          f"QA EM {metrics.get('qa_exact_match', float('nan')):.1f}, QA F1 {metrics.get('qa_f1', float('nan')):.1f}")
    return record


def load_model(directory: str | os.PathLike):
    """(model, tokenizer) saved by the training loop in ``directory``; model in eval mode on the GPU if any."""
    import torch
    from transformers import AutoTokenizer

    from .model import MultiTaskModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = MultiTaskModel.from_pretrained(directory).to(device).eval()
    return model, AutoTokenizer.from_pretrained(directory)


def load_history(s: Settings):
    """The training history (one row per logged step or evaluation) of the saved run, as a DataFrame."""
    from .training import History

    path = s.run_dir / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"No training history in {s.run_dir}; run load_or_train(settings) first.")
    return History.from_json(path).frame()


# -- display ------------------------------------------------------------------------------------
ENTITY_COLOURS = {"PER": "#ffd6a5", "ORG": "#bde0fe", "LOC": "#caffbf", "MISC": "#e4c1f9"}


def tagged_tokens_html(tokens, tags) -> str:
    """HTML of ``tokens`` with every non-O tag as a coloured box labelled by the tag (IOB2 names)."""
    from html import escape

    pieces = []
    for token, tag in zip(tokens, tags):
        if tag in ("O", None, -100) or not isinstance(tag, str):
            pieces.append(f"<span style='padding:2px'>{escape(str(token))}</span>")
            continue
        colour = ENTITY_COLOURS.get(tag.split("-", 1)[-1], "#eeeeee")
        pieces.append(f"<span style='background:{colour};padding:2px 4px;margin:1px;border-radius:4px'>"
                      f"{escape(str(token))}<sub style='font-size:70%'> {escape(tag)}</sub></span>")
    return "<div style='line-height:2.2'>" + " ".join(pieces) + "</div>"
