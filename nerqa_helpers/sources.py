"""Where a run's data comes from: the Hugging Face hub, the one data rule, and loading at a size.

Which data a run uses is one rule, :func:`choose_data_source`, and every face (command line,
notebooks, experiments, benchmark) loads through :func:`load_task_data`: ``$NERQA_TINY=1`` → the
tiny sample; a data folder (``data_dir`` / ``$NERQA_DATA_DIR``) → local files; else ``data/`` at the
top of the repository when it is filled → local files; else the Hugging Face hub when it answers (kept in the usual Hugging Face datasets cache, so offline runs find it); else
the tiny sample. Each load prints one line, ``data: <which>, because <why>``.

:func:`load_hub_conll` and :func:`load_hub_squad` give the columns of the local readers in
:mod:`nerqa_helpers.data`; when the hub cannot be used they fail within seconds with a
:class:`HubUnavailableError` that says how to use local files instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple

from datasets import Dataset, DatasetDict

from .base import NER_LABELS
from .data import (CONLL_SPLITS, DATA_DIR_VARIABLE, DEFAULT_DATA_DIR, SQUAD_FEATURES, SQUAD_SPLITS, DataFormatError,
                   filled_data_dir, find_data_dir, load_conll, load_squad, load_tiny, ner_features,
                   require_data_dir, subset, tiny_data_dir, write_conll, write_squad)
from .context import add_document_context
from .encoders import hub_reachable as _hub_reachable

CONLL_HUB_ID, CONLL_HUB_REVISION = "eriktks/conll2003", "refs/convert/parquet"
"""The main branch of eriktks/conll2003 holds a loading script, which datasets>=4 refuses; the hub's
parquet export of the same data (same columns and ClassLabel) lives on this revision."""
SQUAD_HUB_IDS = {1: "rajpurkar/squad", 2: "rajpurkar/squad_v2"}


class HubUnavailableError(ConnectionError):
    """The Hugging Face hub cannot be used; the message says how to use local files instead."""


# -- the Hugging Face hub ---------------------------------------------------------------------------
def _offline_mode() -> bool:
    """True when HF_HUB_OFFLINE is set now or was set when huggingface_hub was imported."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in {"1", "true", "yes", "on"}
    return flag or bool(constants.HF_HUB_OFFLINE)


def _hub_error(repo_id: str, why: str) -> HubUnavailableError:
    error = HubUnavailableError(
        f"Cannot load {repo_id!r} from the Hugging Face hub: {why}. Use local files instead: pass "
        f"data_dir=... to load_conll / load_squad or set {DATA_DIR_VARIABLE} to a folder holding conll2003/ "
        "and squad/; or use load_tiny('ner') / load_tiny('qa') for the small sample."
    )
    error.why = why
    return error


def _load_from_hub(repo_id: str, revision: str | None = None) -> DatasetDict:
    """``datasets.load_dataset`` that fails within seconds, with advice, when the hub cannot be used."""
    from datasets import load_dataset

    offline = _offline_mode()
    if not offline and not _hub_reachable():
        raise _hub_error(repo_id, "the hub cannot be reached")
    try:  # offline, this still works when the dataset is in the local cache
        return load_dataset(repo_id, revision=revision)
    except (OSError, RuntimeError) as error:
        why = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else f"loading failed ({error})"
        raise _hub_error(repo_id, why) from error


def _check_hub_labels(dataset: Dataset) -> None:
    names = dataset.features["ner_tags"].feature.names
    if names != NER_LABELS:
        raise DataFormatError(f"{CONLL_HUB_ID}: ner_tags names {names} differ from NER_LABELS {NER_LABELS}")


def _hub_conll_split(dataset: Dataset) -> Dataset:
    """A hub CoNLL split with the local loader's columns and Features (document_id -1: unknown)."""
    _check_hub_labels(dataset)
    dataset = dataset.add_column("document_id", [-1] * len(dataset))
    features = ner_features()
    return dataset.select_columns(list(features)).cast(features)


def load_hub_conll(max_examples=None, seed: int = 0) -> DatasetDict:
    """CoNLL-2003 from the hub's parquet export of ``eriktks/conll2003``, columns as :func:`load_conll`."""
    raw = _load_from_hub(CONLL_HUB_ID, CONLL_HUB_REVISION)
    return subset(DatasetDict({split: _hub_conll_split(raw[split]) for split in CONLL_SPLITS}), max_examples, seed)


def load_hub_squad(version: int = 1, max_examples=None, seed: int = 0) -> DatasetDict:
    """SQuAD v1.1 (rajpurkar/squad) or v2.0 (rajpurkar/squad_v2) from the hub, columns as :func:`load_squad`."""
    if version not in SQUAD_HUB_IDS:
        raise ValueError(f"SQuAD version must be 1 or 2, not {version!r}")
    raw = _load_from_hub(SQUAD_HUB_IDS[version])
    splits = {split: raw[split].select_columns(list(SQUAD_FEATURES)).cast(SQUAD_FEATURES) for split in SQUAD_SPLITS}
    return subset(DatasetDict(splits), max_examples, seed)


def download_data(folder: str | os.PathLike = DEFAULT_DATA_DIR, squad_v2: bool = False) -> list[Path]:
    """Write the hub's CoNLL-2003 and SQuAD v1.1 (and v2.0 with ``squad_v2``) into ``folder`` in the
    local-file layout the data rule reads: ``conll2003/{train,validation,test}.txt`` (``token POS
    chunk NER``, IOB2) and ``squad/{train-v1.1,dev-v1.1}.json`` (``squad_v2/{train-v2.0,dev-v2.0}.json``).
    Needs the hub (or its cached copy); returns the files written."""
    folder = Path(folder)
    conll = _load_from_hub(CONLL_HUB_ID, CONLL_HUB_REVISION)
    written = []
    for split in CONLL_SPLITS:
        _check_hub_labels(conll[split])
        written.append(write_conll(conll[split], folder / "conll2003" / f"{split}.txt"))
    for version in (1, 2) if squad_v2 else (1,):
        squad = _load_from_hub(SQUAD_HUB_IDS[version])
        names = {1: ("squad", "train-v1.1.json", "dev-v1.1.json"), 2: ("squad_v2", "train-v2.0.json", "dev-v2.0.json")}
        subfolder, train, validation = names[version]
        for split, name in (("train", train), ("validation", validation)):
            written.append(write_squad(squad[split], folder / subfolder / name, version=version))
    return written


# -- the data rule: which data a run uses ------------------------------------------------------------
TINY_VARIABLE = "NERQA_TINY"


@dataclass(frozen=True)
class DataSource:
    """Where a run's data comes from: ``kind`` "tiny" (the bundled sample), "dir" (local files in
    ``folder``) or "hub" (the Hugging Face hub, cached in the usual HF cache); ``reason`` says why."""

    kind: str
    reason: str
    folder: Path | None = None

    def describe(self) -> str:
        """One line: what is used and why, e.g. ``data: the Hugging Face hub (...): no data folder ...``."""
        where = {"tiny": f"the bundled tiny sample ({tiny_data_dir()})", "dir": f"local files in {self.folder}",
                 "hub": "the Hugging Face hub (kept in the Hugging Face datasets cache)"}[self.kind]
        return f"data: {where}, because {self.reason}"


class TaskDatasets(NamedTuple):
    """What :func:`load_task_data` returns: ``ner, qa, source = load_task_data(...)``."""

    ner: DatasetDict | None
    qa: DatasetDict | None
    source: str


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_cached(repo_id: str) -> bool:
    """Whether ``datasets`` holds a prepared copy of ``repo_id`` in its cache (usable offline)."""
    from datasets import config

    return any(Path(config.HF_DATASETS_CACHE).glob(repo_id.replace("/", "___") + "*"))


def choose_data_source(data_dir: str | os.PathLike | None = None, tiny: bool | None = None) -> DataSource:
    """The data rule, in this order: ``tiny`` (or ``$NERQA_TINY=1``) → the bundled sample; ``data_dir``
    (or ``$NERQA_DATA_DIR``) → local files; ``data/`` at the top of the repository, when it is filled
    (``data.filled_data_dir``) → local files; the hub when it answers (offline: when its copy is
    cached) → the hub; otherwise the bundled sample. Arguments come before the environment (a
    ``data_dir`` given here beats ``$NERQA_TINY``); ``tiny=False`` ignores ``$NERQA_TINY``. Loads nothing."""
    if tiny:
        return DataSource("tiny", "tiny mode was asked for")
    if tiny is None and data_dir is None and _flag(TINY_VARIABLE):
        return DataSource("tiny", f"{TINY_VARIABLE}=1 is set")
    folder = find_data_dir(data_dir)
    if folder is not None:
        named = "data_dir was given" if data_dir is not None else f"{DATA_DIR_VARIABLE} is set"
        return DataSource("dir", named, folder)
    if filled_data_dir(DEFAULT_DATA_DIR):
        return DataSource("dir", f"{DATA_DIR_VARIABLE} is unset and {DEFAULT_DATA_DIR} is filled", DEFAULT_DATA_DIR)
    unset = f"no data folder was given ({DATA_DIR_VARIABLE} is unset and data/ is not filled)"
    if _offline_mode():
        if _hub_cached(CONLL_HUB_ID) and _hub_cached(SQUAD_HUB_IDS[1]):
            return DataSource("hub", f"{unset} and the hub's datasets are in the local cache (HF_HUB_OFFLINE is set)")
        return DataSource("tiny", f"{unset}, HF_HUB_OFFLINE is set and the hub's datasets are not cached")
    if _hub_reachable():
        return DataSource("hub", f"{unset} and the Hugging Face hub answered")
    return DataSource("tiny", f"{unset} and the Hugging Face hub cannot be reached")


def _task_sizes(sizes) -> dict:
    """``sizes`` as ``{"ner": {split: rows}, "qa": {split: rows}}``; a Preset gives its own (``Preset.sizes()``)."""
    if sizes is None:
        return {"ner": {}, "qa": {}}
    return sizes.sizes() if hasattr(sizes, "sizes") else {task: dict(sizes.get(task) or {}) for task in ("ner", "qa")}


def _load_source(source: DataSource, tasks, squad_version: int) -> dict:
    """task → DatasetDict (all rows) from ``source``."""
    loaders = {
        "tiny": {"ner": lambda: load_tiny("ner"), "qa": lambda: load_tiny("qa", version=squad_version)},
        "dir": {"ner": lambda: load_conll(source.folder),
                "qa": lambda: load_squad(source.folder, version=squad_version)},
        "hub": {"ner": load_hub_conll, "qa": lambda: load_hub_squad(squad_version)},
    }[source.kind]
    return {task: loaders[task]() for task in tasks}


def load_task_data(
    tasks=("ner", "qa"),
    sizes=None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    tiny: bool | None = None,
    squad_version: int = 1,
    files: Mapping[str, Mapping[str, str | os.PathLike]] | None = None,
    ner_context: bool = False,
) -> TaskDatasets:
    """The NER and QA ``DatasetDict``s of a run, cut to ``sizes`` with ``seed``, by the one data rule.

    tasks: which of "ner", "qa" to load (the other comes back None). sizes: a ``presets.Preset`` (its
    ``sizes()``; the ``tiny`` preset also means the bundled sample unless ``data_dir`` or ``files``
    are given) or ``{"ner": {split: rows}, "qa": {split: rows}}``; None = all rows. data_dir / tiny:
    see :func:`choose_data_source`. files: ``{"ner": {split: path}, "qa": {split: path}}``, files
    named one by one (they win; a task without files then comes from ``data_dir`` or is None).
    ner_context: add each NER sentence's document context (``context.add_document_context``: columns
    ``context_left``, ``context_right``) to every NER split, whole, before it is cut to ``sizes``.
    Prints one line saying which data is used and why; returns ``(ner, qa, source)``.
    """
    tasks = tuple(tasks)
    if files and any(files.values()):
        loaded, source = _load_files(tasks, files, data_dir, squad_version)
    else:
        if tiny is None and getattr(sizes, "name", None) == "tiny" and data_dir is None:
            chosen = DataSource("tiny", "the tiny preset trains on the bundled sample")
        else:
            chosen = choose_data_source(data_dir, tiny)
        if chosen.kind == "dir":
            require_data_dir(chosen.folder)
        try:
            loaded = _load_source(chosen, tasks, squad_version)
        except HubUnavailableError as error:
            chosen = DataSource("tiny", f"the Hugging Face hub could not be used ({getattr(error, 'why', error)})")
            loaded = _load_source(chosen, tasks, squad_version)
        source = chosen.describe()
    print(source)
    if ner_context and loaded.get("ner") is not None:  # before the subset, which would drop neighbours
        loaded["ner"] = DatasetDict({split: add_document_context(data) for split, data in loaded["ner"].items()})
    limits = _task_sizes(sizes)
    cut = {task: subset(splits, {s: n for s, n in limits[task].items() if s in splits} or None, seed)
           for task, splits in loaded.items() if splits is not None}
    return TaskDatasets(cut.get("ner"), cut.get("qa"), source)


def _load_files(tasks, files, data_dir, squad_version: int) -> tuple[dict, str]:
    """Files named per split (the command line's --ner-train ...); other tasks from ``data_dir`` or None."""
    folder = find_data_dir(data_dir)
    loaded = {}
    for task in tasks:
        named = dict(files.get(task) or {})
        if task == "ner" and (named or folder):
            loaded[task] = load_conll(folder, files=named or None)
        elif task == "qa" and (named or folder):
            loaded[task] = load_squad(folder, files=named or None, version=squad_version)
    where = "files named on the command line" + (f" and {folder}" if folder else "")
    return loaded, f"data: {where}, because they were given"
