"""A sweep's config (defaults, checks, the step budget) and the tokenized data every run shares.

The budget: every run processes ``training.steps`` batches. A multi-task run draws them from both
tasks by its sampling strategy; a joint balancer (GradNorm, uncertainty, PCGrad) takes one batch
of each task per step, so it runs ``steps / 2`` steps; a single-task run gets its task's share of the
batches under proportional sampling, so it sees as much of its task as a multi-task run does, and
the two single-task runs together cost what one multi-task run costs.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..presets import DEFAULTS as PRESET_DEFAULTS, STRATEGIES, TASKS

CACHE_ROOT = Path("runs") / "experiment-cache"
METHOD_KEYS = {"name", "tasks", "strategy", "temperature", "balancer", "alpha", "balancer_learning_rate",
               "shared_layers", "lora", "learning_rate", "steps", "probe", "task_weights"}
BALANCERS = ("static", "gradnorm", "uncertainty", "pcgrad")
DEFAULTS = {
    "encoder": "default",
    "data": {"source": "dir", "dir": None, "ner_train": None, "qa_train": None, "ner_eval": None,
             "qa_eval": None, "seed": 0},
    "preprocessing": {name: getattr(PRESET_DEFAULTS, name) for name in ("ner_max_length", "qa_max_length", "doc_stride")},
    "training": {"steps": 100, "batch_size": 16, "learning_rate": 1e-4, "warmup_ratio": 0.1,
                 "weight_decay": 0.01, "max_grad_norm": 1.0, "eval_batch_size": 64, "log_every": 5,
                 "mixed_precision": "auto"},
    "seeds": [0, 1, 2],
    "probe": {"count": 3, "batch_size": 8},
    "latency": {"examples": 50, "warmup": 5},
}
METRICS = {"ner_f1": "NER F1", "qa_exact_match": "QA EM", "qa_f1": "QA F1"}


# -- configuration ------------------------------------------------------------------------------
def load_config(path: str | os.PathLike) -> dict:
    """A sweep config (JSON, or TOML on Python >= 3.11) merged over :data:`DEFAULTS`, checked."""
    path = Path(path)
    if path.suffix == ".toml":
        import tomllib

        raw = tomllib.loads(path.read_text())
    else:
        raw = json.loads(path.read_text())
    config = {key: (dict(value, **raw.get(key, {})) if isinstance(value, dict) else raw.get(key, value))
              for key, value in DEFAULTS.items()}
    config.update({key: value for key, value in raw.items() if key not in DEFAULTS})
    config.setdefault("name", path.stem)
    check_config(config)
    return config


def check_config(config: dict) -> None:
    """Raise ``ValueError`` for a config that would fail halfway through a long sweep."""
    names = [method.get("name") for method in config.get("methods", [])]
    if not names or None in names or len(set(names)) != len(names):
        raise ValueError(f"'methods' needs a list of methods with unique names, got {names}")
    for method in config["methods"]:
        unknown = set(method) - METHOD_KEYS
        if unknown:
            raise ValueError(f"method {method['name']!r}: unknown keys {sorted(unknown)}; "
                             f"allowed {sorted(METHOD_KEYS)}")
        if method.get("balancer", "static") not in BALANCERS:
            raise ValueError(f"method {method['name']!r}: balancer must be one of {BALANCERS}")
        if method.get("balancer") and len(method_tasks(method)) < 2:
            raise ValueError(f"method {method['name']!r}: a loss balancer needs both tasks")
        if not set(method_tasks(method)) <= set(TASKS) or method.get("strategy", "proportional") not in STRATEGIES:
            raise ValueError(f"method {method['name']!r}: tasks must come from {TASKS}, strategy from {STRATEGIES}")
    if config["data"]["source"] not in ("dir", "tiny"):
        raise ValueError("data.source must be 'dir' (real data) or 'tiny' (the bundled sample)")


def find_method(config: dict, name: str) -> dict:
    """The method called ``name`` in the config."""
    for method in config["methods"]:
        if method["name"] == name:
            return method
    raise ValueError(f"No method {name!r} in the config; it has {[m['name'] for m in config['methods']]}")


def method_tasks(method: dict) -> tuple[str, ...]:
    """The tasks a method trains (both unless it says otherwise)."""
    return tuple(method.get("tasks", TASKS))


def setup_hash(config: dict, method: dict) -> str:
    """Fingerprint of everything that shapes a run's numbers (data, budget, method); 12 hex digits."""
    parts = {key: config[key] for key in ("encoder", "data", "preprocessing", "training", "probe", "latency")}
    text = json.dumps({**parts, "method": method}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def planned_steps(config: dict, method: dict, batch_counts: dict[str, int]) -> int:
    """Loop steps of a run so that it processes ``training.steps`` batches (see the module doc).

    ``batch_counts``: batches per pass over each task's training features.
    """
    if "steps" in method:
        return int(method["steps"])
    budget, tasks = config["training"]["steps"], method_tasks(method)
    if len(tasks) == 1:
        share = batch_counts[tasks[0]] / sum(batch_counts.values())
        return max(1, round(budget * share))
    if method.get("balancer") in ("gradnorm", "uncertainty", "pcgrad"):
        return max(1, budget // len(tasks))
    return budget


# -- data ---------------------------------------------------------------------------------------
def load_datasets(config: dict):
    """NER and QA ``DatasetDict``s (train, validation) at the config's sizes; one fixed subset.

    ``data.source`` "tiny": the bundled sample; "dir": local files (``data.dir`` or ``$NERQA_DATA_DIR``),
    loaded by ``sources.load_task_data``, which prints which data it used."""
    from .. import data, sources

    settings = config["data"]
    tiny = settings["source"] == "tiny"
    if not tiny and data.find_data_dir(settings["dir"]) is None:
        raise ValueError("No data folder: set data.dir in the config or the NERQA_DATA_DIR variable.")
    sizes = {"ner": {"train": settings["ner_train"], "validation": settings["ner_eval"]},
             "qa": {"train": settings["qa_train"], "validation": settings["qa_eval"]}}
    ner, qa, _ = sources.load_task_data(TASKS, sizes, settings["seed"], data_dir=settings["dir"], tiny=tiny)
    return data.DatasetDict({split: ner[split] for split in ("train", "validation")}), qa


def data_key(config: dict) -> str:
    """Name of the tokenized-data cache folder: a hash of what the data and its features depend on."""
    text = json.dumps([config["encoder"], config["data"], config["preprocessing"],
                       os.environ.get("NERQA_DATA_DIR"), "cache format 2"], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def prepare_tasks(config: dict, tokenizer, cache_root: str | os.PathLike | None = CACHE_ROOT) -> tuple[dict, dict]:
    """Tokenized ``TaskData`` for both tasks and the data sizes (:func:`data_sizes`), cached on
    disk so that each run process loads them in a moment."""
    from datasets import load_from_disk

    from ..tasks import TaskData, build_tasks

    cache = Path(cache_root) / data_key(config) if cache_root else None
    if cache is not None and (cache / "done").exists():
        references = json.loads((cache / "ner_references.json").read_text())
        loaded = {name: load_from_disk(str(cache / name)) for name in
                  ("ner_train", "ner_eval", "qa_train", "qa_eval", "qa_examples")}
        tasks = {"ner": TaskData(loaded["ner_train"], loaded["ner_eval"], references=references),
                 "qa": TaskData(loaded["qa_train"], loaded["qa_eval"], eval_examples=loaded["qa_examples"])}
        return tasks, json.loads((cache / "sizes.json").read_text())
    ner, qa = load_datasets(config)
    tasks = build_tasks(tokenizer, ner, qa, **config["preprocessing"])
    sizes = data_sizes(ner, qa, tasks)
    if cache is not None:
        parts = {"ner_train": tasks["ner"].train_features, "ner_eval": tasks["ner"].eval_features,
                 "qa_train": tasks["qa"].train_features, "qa_eval": tasks["qa"].eval_features,
                 "qa_examples": tasks["qa"].eval_examples}
        for name, dataset in parts.items():
            dataset.save_to_disk(str(cache / name))
        (cache / "ner_references.json").write_text(json.dumps(tasks["ner"].references))
        (cache / "sizes.json").write_text(json.dumps(sizes))
        (cache / "done").write_text("")
    return tasks, sizes


def data_sizes(ner, qa, tasks: dict) -> dict:
    """Sentences, questions and QA windows of the training and evaluation splits."""
    return {"ner_train_sentences": len(ner["train"]), "ner_eval_sentences": len(ner["validation"]),
            "qa_train_questions": len(qa["train"]), "qa_eval_questions": len(qa["validation"]),
            "qa_train_windows": len(tasks["qa"].train_features), "qa_eval_windows": len(tasks["qa"].eval_features)}

