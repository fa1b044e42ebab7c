"""A sweep's config (defaults, checks, the budget) and the tokenized data every run shares.

The budget takes one of two forms.

* ``training.batches = {"ner": B_ner, "qa": B_qa}`` (the study configs): every run processes exactly
  ``B_task`` batches of each task it trains, whatever its data size (a method with ``ner_train: 200``
  makes more passes over fewer sentences). A multi-task run interleaves them by its sampling
  strategy (``B_ner + B_qa`` steps); a joint balancer (GradNorm, uncertainty, PCGrad, or fixed
  weights with ``"joint": true``; :func:`is_joint`) takes one batch of each task per step
  (``max(B_ner, B_qa)`` steps, so equal budgets give both exactly ``B``, in half the optimizer steps).
* ``training.steps`` (older configs): every run processes ``steps`` batches. A multi-task run draws
  them from both tasks by its sampling strategy; a joint balancer runs ``steps / 2`` steps; a
  single-task run gets its task's share of the batches under proportional sampling.

Two method keys change the data a run sees, within the one subset drawn for the sweep:
``ner_train: N`` keeps the first N of its NER training sentences (a random, nested subset), and
``ner_context: true`` gives its NER windows the neighbouring sentences of the same document
(``preprocessing.ner_context_tokens`` sub-words per side, unlabelled). ``budget_scale: k`` gives a
method k times the config's ``training.batches`` of each task (in the CPU study and in every config
derived from it): a longer budget that checks whether a method had converged; the report marks it.

**Converged studies** (``training.early_stopping = {"every": E, "patience": P}``): ``training.batches``
becomes a cap, each run is evaluated on the validation split after every E batches of each task it
trains, stops after P evaluations without a better combined score, and the best evaluation's weights
are scored on a separate test split (``data.ner_test``, ``data.qa_test``: "all" or a count; QA's
validation questions then come from ``data.qa_validation_articles`` whole articles of the training file,
never trained on, and its test questions from the held-out file). ``training.clipping`` and a method's
``clipping`` choose the gradient-clipping rule (``training.CLIPPING_RULES``); configs that do not say
keep ``total``, the rule the budget-limited studies ran with. A method's ``seeds`` replaces the config's.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..presets import DEFAULTS as PRESET_DEFAULTS, STRATEGIES, TASKS

CACHE_ROOT = Path("runs") / "experiment-cache"
METHOD_KEYS = {"name", "tasks", "strategy", "temperature", "balancer", "alpha", "balancer_learning_rate",
               "shared_layers", "lora", "learning_rate", "steps", "probe", "task_weights", "ner_train", "ner_context",
               "joint", "budget_scale", "clipping", "seeds"}
BALANCERS = ("static", "gradnorm", "uncertainty", "pcgrad")
JOINT_BALANCERS = ("gradnorm", "uncertainty", "pcgrad")
"""Balancers that need every task's loss in every step."""
DEFAULTS = {
    "encoder": "default",
    "data": {"source": "dir", "dir": None, "ner_train": None, "qa_train": None, "ner_eval": None,
             "qa_eval": None, "seed": 0},
    "preprocessing": {**{name: getattr(PRESET_DEFAULTS, name) for name in ("ner_max_length", "qa_max_length", "doc_stride")},
                      "ner_context_tokens": 64},
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
    """A sweep config (JSON, or TOML on Python >= 3.11) merged over :data:`DEFAULTS`, checked.

    ``"base": "other.json"`` takes the other config (a path relative to this one) and replaces what
    this one sets (dicts key by key, but ``floor`` whole, so ``"floor": {}`` drops the base's): the
    GPU config reuses the CPU study's methods and questions."""
    path = Path(path)
    if path.suffix == ".toml":
        import tomllib

        raw = tomllib.loads(path.read_text())
    else:
        raw = json.loads(path.read_text())
    if "base" in raw:  # another config's methods and questions, with this one's data and budget
        base = load_config(path.parent / raw.pop("base"))
        raw = {**base, **{key: dict(base[key], **value)
                          if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "floor"
                          else value for key, value in raw.items()}}
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
        if method.get("joint") and method.get("balancer") != "static":
            raise ValueError(f"method {method['name']!r}: 'joint' is for fixed weights (balancer 'static'); "
                             "GradNorm, uncertainty and PCGrad are joint anyway")
        if method.get("balancer") and len(method_tasks(method)) < 2:
            raise ValueError(f"method {method['name']!r}: a loss balancer needs both tasks")
        if not set(method_tasks(method)) <= set(TASKS) or method.get("strategy", "proportional") not in STRATEGIES:
            raise ValueError(f"method {method['name']!r}: tasks must come from {TASKS}, strategy from {STRATEGIES}")
    if config["data"]["source"] not in ("dir", "tiny"):
        raise ValueError("data.source must be 'dir' (real data) or 'tiny' (the bundled sample)")
    batches = config["training"].get("batches")
    if batches is not None and (set(batches) != set(TASKS) or min(batches.values()) < 1):
        raise ValueError(f"training.batches needs a positive count for each of {TASKS}, got {batches}")
    for method in config["methods"]:
        scale = method.get("budget_scale")
        if scale is not None and (batches is None or isinstance(scale, bool) or not isinstance(scale, (int, float))
                                  or scale <= 0):
            raise ValueError(f"method {method['name']!r}: 'budget_scale' needs a positive number and a config "
                             "budgeted by training.batches")
    for question in config.get("questions", []):
        check_question(question, set(names))
    reference = config.get("reference")
    if reference is not None and not (isinstance(reference, dict) and isinstance(reference.get("report"), str)
                                      and set(reference) <= {"report", "label"}):
        raise ValueError("'reference' needs {\"report\": <another report's folder, relative to this one's>} and "
                         f"optionally a \"label\", got {reference!r}")
    if set(config.get("floor", {})) - set(names):
        raise ValueError(f"floor names unknown methods {sorted(set(config['floor']) - set(names))}")


def check_question(question: dict, names: set) -> None:
    """A study question names its methods and (method, baseline) comparisons, all in the config."""
    if not {"id", "title", "methods"} <= set(question):
        raise ValueError(f"question {question.get('id')!r} needs 'id', 'title' and 'methods'")
    for entry in question.get("literature", []):
        if not {"cite", "claim", "compare", "expects"} <= set(entry) or entry["expects"] not in ("better", "not better"):
            raise ValueError(f"question {question['id']!r}: a literature entry needs cite, claim, compare "
                             f"[method, baseline, metric] and expects ('better' or 'not better'), got {entry}")
    used = set(question["methods"]) | {name for pair in question.get("compare", []) for name in pair[:2]} \
        | {name for entry in question.get("literature", []) for name in entry["compare"][:2]}
    if used - names:
        raise ValueError(f"question {question['id']!r} names unknown methods {sorted(used - names)}")


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


def batch_size(config: dict, task: str) -> int:
    """Examples per batch of ``task``: ``training.batch_size``, one number or ``{task: number}``."""
    size = config["training"]["batch_size"]
    return int(size[task] if isinstance(size, dict) else size)


def planned_batches(config: dict, method: dict) -> dict[str, int] | None:
    """``{task: batches}`` a run processes under a ``training.batches`` budget (None otherwise), times
    the method's ``budget_scale``."""
    batches = config["training"].get("batches")
    if batches is None or "steps" in method:
        return None
    batches = {task: round(count * method.get("budget_scale", 1)) for task, count in batches.items()}
    return {task: int(batches[task]) for task in method_tasks(method)}


def is_joint(method: dict) -> bool:
    """Does the method take one batch of every task in each step? (GradNorm, uncertainty and PCGrad
    always; fixed weights with ``"joint": true``, the control that tells a balancer's effect from
    that of joint steps.)"""
    return method.get("balancer") in JOINT_BALANCERS or (method.get("balancer") == "static" and bool(method.get("joint")))


def planned_steps(config: dict, method: dict, batch_counts: dict[str, int]) -> int:
    """Loop steps of a run (see the module doc).

    ``batch_counts``: batches per pass over each task's training features.
    """
    if "steps" in method:
        return int(method["steps"])
    per_task = planned_batches(config, method)
    if per_task is not None:
        return max(per_task.values()) if is_joint(method) else sum(per_task.values())
    budget, tasks = config["training"]["steps"], method_tasks(method)
    if len(tasks) == 1:
        share = batch_counts[tasks[0]] / sum(batch_counts.values())
        return max(1, round(budget * share))
    if is_joint(method):
        return max(1, budget // len(tasks))
    return budget


# -- data ---------------------------------------------------------------------------------------
def uses_context(config: dict) -> bool:
    """Whether a method of the sweep trains NER with document context (``ner_context: true``)."""
    return any(method.get("ner_context") for method in config["methods"])


def model_windows(config: dict, method: dict) -> dict[str, int]:
    """The window sizes a method's model trains and is served with (``MultiTaskConfig.windows()``):
    the config's, with document context only for a method that asks for it."""
    windows = {key: value for key, value in config["preprocessing"].items() if key != "ner_context_tokens"}
    context = config["preprocessing"].get("ner_context_tokens", 0) if method.get("ner_context") else 0
    return {**windows, "ner_context_tokens": int(context)}


def is_converged(config: dict) -> bool:
    """Does the config train every run until its validation score stops improving?"""
    return bool(config["training"].get("early_stopping"))


def method_seeds(config: dict, method: dict) -> list[int]:
    """The seeds a method runs: its own ``seeds`` or the config's."""
    return list(method.get("seeds", config["seeds"]))


def clipping_rule(config: dict, method: dict) -> str:
    """The method's gradient-clipping rule: its own, the config's, else ``total`` (older configs)."""
    return method.get("clipping", config["training"].get("clipping", "total"))


def load_datasets(config: dict):
    """NER and QA ``DatasetDict``s (train, validation) at the config's sizes; one fixed subset.

    ``data.source`` "tiny": the bundled sample; "dir": local files (``data.dir`` or ``$NERQA_DATA_DIR``),
    loaded by ``sources.load_task_data``, which prints which data it used. NER sentences carry their
    document's neighbouring sentences when a method uses them (same rows either way)."""
    from .. import data, sources

    settings = config["data"]
    tiny = settings["source"] == "tiny"
    if not tiny and data.find_data_dir(settings["dir"]) is None:
        raise ValueError("No data folder: set data.dir in the config or the NERQA_DATA_DIR variable.")
    if is_converged(config):
        return split_for_early_stopping(config)
    sizes = {"ner": {"train": settings["ner_train"], "validation": settings["ner_eval"]},
             "qa": {"train": settings["qa_train"], "validation": settings["qa_eval"]}}
    ner, qa, _ = sources.load_task_data(TASKS, sizes, settings["seed"], data_dir=settings["dir"], tiny=tiny,
                                        ner_context=uses_context(config))
    return data.DatasetDict({split: ner[split] for split in ("train", "validation")}), qa


def split_for_early_stopping(config: dict):
    """NER and QA ``DatasetDict``s with train, validation (for early stopping) and test (reported).

    NER: CoNLL-2003's own three splits, cut to ``ner_train`` / ``ner_eval`` / ``ner_test``. QA: the
    training file's articles are split by title, every k-th of the sorted titles (k chosen so that
    ``qa_validation_articles`` are set aside) giving the validation questions (``qa_eval``) and the
    rest the training questions (``qa_train``); the held-out file gives the test questions
    (``qa_test``). Validation and test never share an article with training or with each other."""
    from .. import data, sources

    settings = config["data"]
    ner, qa, _ = sources.load_task_data(TASKS, None, settings["seed"], data_dir=settings["dir"],
                                        tiny=settings["source"] == "tiny", ner_context=uses_context(config))
    count = lambda key: None if settings.get(key) in (None, "all") else int(settings[key])
    ner = data.subset(data.DatasetDict(train=ner["train"], validation=ner["validation"], test=ner["test"]),
                      {"train": count("ner_train"), "validation": count("ner_eval"), "test": count("ner_test")},
                      settings["seed"])
    titles = sorted(set(qa["train"]["title"]))
    held = int(settings.get("qa_validation_articles") or 1)
    if len(titles) < held + 1:
        raise ValueError(f"QA training data has {len(titles)} articles; {held} for validation leaves none to train on")
    validation_titles = set(titles[:: max(1, len(titles) // held)][:held])
    pool = qa["train"]
    qa = data.DatasetDict(train=pool.filter(lambda row: row["title"] not in validation_titles),
                          validation=pool.filter(lambda row: row["title"] in validation_titles),
                          test=qa["validation"])
    qa = data.subset(qa, {"train": count("qa_train"), "validation": count("qa_eval"), "test": count("qa_test")},
                     settings["seed"])
    return ner, qa


def data_key(config: dict) -> str:
    """Name of the tokenized-data cache folder: a hash of what the data and its features depend on."""
    text = json.dumps([config["encoder"], config["data"], config["preprocessing"], uses_context(config),
                       os.environ.get("NERQA_DATA_DIR"), "cache format 3"], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


TASK_PARTS = ("train_features", "eval_features", "eval_examples")


def prepare_tasks(config: dict, tokenizer, cache_root: str | os.PathLike | None = CACHE_ROOT) -> tuple[dict, dict]:
    """Tokenized ``TaskData`` for "ner", "qa" (and "ner_context", NER windows with document context,
    when a method uses it) and the data sizes (:func:`data_sizes`), cached on disk so that each run
    process loads them in a moment."""
    from datasets import load_from_disk

    from .. import data
    from ..tasks import TaskData, build_tasks

    cache = Path(cache_root) / data_key(config) if cache_root else None
    if cache is not None and (cache / "done").exists():
        tasks = {}
        for name, references in json.loads((cache / "tasks.json").read_text()).items():
            parts = {part: load_from_disk(str(cache / name / part)) for part in TASK_PARTS if (cache / name / part).exists()}
            tasks[name] = TaskData(**parts, references=references)
        return tasks, json.loads((cache / "sizes.json").read_text())
    ner, qa = load_datasets(config)
    plain = {**config["preprocessing"], "ner_context_tokens": 0}
    tasks = build_tasks(tokenizer, ner, qa, **plain)
    if uses_context(config):
        tasks["ner_context"] = build_tasks(tokenizer, ner, None, **config["preprocessing"])["ner"]
    if is_converged(config):  # the reported scores: the test split, built without training features
        tests = {split: data.DatasetDict(test=dataset["test"]) for split, dataset in (("ner", ner), ("qa", qa))}
        for task, built in build_tasks(tokenizer, tests["ner"], tests["qa"], eval_split="test", **plain).items():
            tasks[f"{task}_test"] = built
        if uses_context(config):
            tasks["ner_context_test"] = build_tasks(tokenizer, tests["ner"], None, eval_split="test",
                                                    **config["preprocessing"])["ner"]
    sizes = data_sizes(ner, qa, tasks)
    if cache is not None:
        for name, task in tasks.items():
            for part in TASK_PARTS:
                if getattr(task, part) is not None:
                    getattr(task, part).save_to_disk(str(cache / name / part))
        (cache / "tasks.json").write_text(json.dumps({name: task.references for name, task in tasks.items()}))
        (cache / "sizes.json").write_text(json.dumps(sizes))
        (cache / "done").write_text("")
    return tasks, sizes


def method_data(method: dict, all_tasks: dict) -> dict:
    """The ``TaskData`` a method trains and is scored on: its tasks, NER with document context if it
    asks for it, NER training cut to its first ``ner_train`` sentences (evaluation unchanged)."""
    from dataclasses import replace

    tasks = {}
    for task in method_tasks(method):
        data = all_tasks["ner_context" if task == "ner" and method.get("ner_context") else task]
        if task == "ner" and method.get("ner_train") is not None:
            keep = int(method["ner_train"])
            data = replace(data, train_features=data.train_features.filter(
                lambda rows: [index < keep for index in rows["example_index"]], batched=True,
                desc=f"First {keep} NER sentences"))
        tasks[task] = data
    return tasks


def test_data(method: dict, all_tasks: dict) -> dict:
    """The ``TaskData`` a converged run's best weights are scored on (the test split)."""
    return {task: all_tasks[("ner_context" if task == "ner" and method.get("ner_context") else task) + "_test"]
            for task in method_tasks(method)}


def data_sizes(ner, qa, tasks: dict) -> dict:
    """Sentences, questions and QA windows of the training and evaluation splits (and test)."""
    tests = {"ner_test_sentences": len(ner["test"]), "qa_test_questions": len(qa["test"])} if "test" in ner else {}
    return {**tests, "ner_train_sentences": len(ner["train"]), "ner_eval_sentences": len(ner["validation"]),
            "qa_train_questions": len(qa["train"]), "qa_eval_questions": len(qa["validation"]),
            "qa_train_windows": len(tasks["qa"].train_features), "qa_eval_windows": len(tasks["qa"].eval_features)}
