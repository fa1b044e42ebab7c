"""Experiments: every method on the same data, the same budget and several seeds, then a report.

    python -m nerqa_helpers.experiments run experiments/cpu.json --out reports/experiments-cpu
    python -m nerqa_helpers.experiments report reports/experiments-cpu

``run`` trains each (method, seed) of a config in its own Python process (so its peak memory is
its own), writes one JSON per run into ``OUT/runs/`` and skips runs whose JSON is already there
with the same settings, so an interrupted sweep resumes where it stopped. ``report`` reads only
those JSON files and writes ``OUT/README.md`` (tables), ``OUT/summary.csv`` and the figures.

The budget: every run processes ``training.steps`` batches. A multi-task run draws them from both
tasks by its sampling strategy; a joint balancer (GradNorm, uncertainty, PCGrad) takes one batch
of each task per step, so it runs ``steps / 2`` steps; a single-task run gets its task's share of the
batches under proportional sampling, so it sees as much of its task as a multi-task run does, and
the two single-task runs together cost what one multi-task run costs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

TASKS = ("ner", "qa")
CACHE_ROOT = Path("runs") / "experiment-cache"
METHOD_KEYS = {"name", "tasks", "strategy", "temperature", "balancer", "alpha", "balancer_learning_rate",
               "shared_layers", "lora", "learning_rate", "steps", "probe", "task_weights"}
BALANCERS = ("static", "gradnorm", "uncertainty", "pcgrad")
STRATEGIES = ("round_robin", "proportional", "temperature", "annealed")  # as in sampling.py
DEFAULTS = {
    "encoder": "default",
    "data": {"source": "dir", "dir": None, "ner_train": None, "qa_train": None, "ner_eval": None,
             "qa_eval": None, "seed": 0},
    "preprocessing": {"ner_max_length": 128, "qa_max_length": 384, "doc_stride": 128},
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
    """NER and QA ``DatasetDict``s (train, validation) at the config's sizes; one fixed subset."""
    from . import data

    settings = config["data"]
    if settings["source"] == "tiny":
        ner, qa = data.load_tiny("ner"), data.load_tiny("qa")
    else:
        directory = data.find_data_dir(settings["dir"])
        if directory is None:
            raise ValueError("No data folder: set data.dir in the config or the NERQA_DATA_DIR variable.")
        ner, qa = data.load_conll(directory), data.load_squad(directory)
    ner = data.DatasetDict({split: ner[split] for split in ("train", "validation")})
    ner_sizes = {"train": settings["ner_train"], "validation": settings["ner_eval"]}
    qa_sizes = {"train": settings["qa_train"], "validation": settings["qa_eval"]}
    return (data.subset(ner, ner_sizes, settings["seed"]), data.subset(qa, qa_sizes, settings["seed"]))


def data_key(config: dict) -> str:
    """Name of the tokenized-data cache folder: a hash of what the data and its features depend on."""
    text = json.dumps([config["encoder"], config["data"], config["preprocessing"],
                       os.environ.get("NERQA_DATA_DIR"), "cache format 2"], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def prepare_tasks(config: dict, tokenizer, cache_root: str | os.PathLike | None = CACHE_ROOT) -> tuple[dict, dict]:
    """Tokenized ``TaskData`` for both tasks and the data sizes (:func:`data_sizes`), cached on
    disk so that each run process loads them in a moment."""
    from datasets import load_from_disk

    from .training import TaskData, build_tasks

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


# -- one run ------------------------------------------------------------------------------------
def build_model(config: dict, method: dict):
    """The method's model: hard sharing, soft sharing (``shared_layers``) or LoRA (``lora``)."""
    from .model import MultiTaskModel

    weights = {task: (float(method.get("task_weights", {}).get(task, 1.0)) if task in method_tasks(method) else 0.0)
               for task in TASKS}
    return MultiTaskModel.from_encoder(config["encoder"], task_weights=weights,
                                       shared_layers=method.get("shared_layers"), lora=method.get("lora"))


def make_balancer(method: dict, model, seed: int):
    """The method's loss balancer, or ``None`` for the loop's fixed λ weighting."""
    from .extensions import balancing

    kind = method.get("balancer")
    if kind == "gradnorm":
        balancer = balancing.GradNorm(TASKS, shared=model, alpha=method.get("alpha", 1.5),
                                      lr=method.get("balancer_learning_rate", 0.025))
    elif kind == "uncertainty":
        balancer = balancing.UncertaintyWeighting(TASKS)
        if "balancer_learning_rate" in method:
            balancer.learning_rate = float(method["balancer_learning_rate"])
    elif kind == "pcgrad":
        balancer = balancing.PCGrad(model, method.get("task_weights"), seed=seed)
    elif kind == "static":
        balancer = balancing.StaticWeights(method.get("task_weights"), joint=False)
    else:
        balancer = None
    return balancer


class TimedProbe:
    """The gradient-conflict probe as a step hook that also adds up its own seconds."""

    def __init__(self, probe):
        self.probe, self.seconds = probe, 0.0

    def __call__(self, step, task_losses=None, model=None):
        started = time.perf_counter()
        self.probe(step, task_losses, model)
        self.seconds += time.perf_counter() - started


def make_probe(config: dict, method: dict, model, tasks: dict, tokenizer, steps: int) -> TimedProbe | None:
    """A probe on a fixed batch of each task's training features, for multi-task methods that
    share trainable encoder weights (not single-task runs, not LoRA). It measures ``probe.count``
    times, evenly over the run's ``steps`` (the last at the end), so runs of any length compare."""
    from .extensions.probe import GradientConflictProbe
    from .sampling import MODEL_INPUTS, make_collators

    if not method.get("probe", True) or len(method_tasks(method)) < 2 or method.get("lora"):
        return None
    collators, size = make_collators(tokenizer), config["probe"]["batch_size"]
    batches = {}
    for task in TASKS:
        rows = tasks[task].train_features[:size]
        keys = [key for key in MODEL_INPUTS if key in rows]
        batches[task] = collators[task]([{key: rows[key][i] for key in keys} for i in range(len(rows["input_ids"]))])
    every = max(1, steps // max(1, config["probe"]["count"]))
    return TimedProbe(GradientConflictProbe(model, batches, every=every))


def measure_latency(model, features, task: str, examples: int = 50, warmup: int = 5) -> dict:
    """Model forward time for one example at a time (batch 1), after training, in eval mode.

    ``features``: tokenized evaluation features (the first ``warmup + examples`` are used; the
    same ones for every method). Returns median and mean milliseconds and the mean length in
    tokens. Tokenization and post-processing are not included. On a CPU it uses one thread: a
    batch of one gains little from a second, and two threads that wait for each other turn any
    other load on the machine into stalls of tens of milliseconds.
    """
    import torch

    device = next(model.parameters()).device
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _time_forward(model, features, task, examples, warmup, device)
    finally:
        torch.set_num_threads(threads)


def _time_forward(model, features, task, examples, warmup, device) -> dict:
    import torch

    rows = features[: warmup + examples]
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in rows]
    on_gpu = device.type == "cuda"  # bf16 as in evaluation on a GPU, float32 on a CPU
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else torch.autocast("cpu", enabled=False)
    model.eval()
    times, lengths = [], []
    with torch.inference_mode(), autocast:
        for index in range(len(rows["input_ids"])):
            batch = {key: torch.tensor([rows[key][index]], device=device) for key in keys}
            _synchronize(device)
            started = time.perf_counter()
            model(**batch, task=task)
            _synchronize(device)
            if index >= warmup:
                times.append(1000 * (time.perf_counter() - started))
                lengths.append(len(rows["input_ids"][index]))
    return {"median_ms": float(np.median(times)), "mean_ms": float(np.mean(times)),
            "mean_tokens": float(np.mean(lengths)), "examples": len(times), "threads": torch.get_num_threads()}


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory() -> None:
    """Start the CUDA peak-memory count afresh (after freeing what an earlier run left behind)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> dict:
    """Peak memory of this run: CUDA max allocated on a GPU, else the process's peak RSS (MiB)."""
    import torch

    if torch.cuda.is_available():
        return {"peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20, "memory_kind": "cuda_max_allocated"}
    try:
        import resource
    except ImportError:  # Windows: no peak figure
        return {"peak_memory_mib": None, "memory_kind": "unavailable"}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 2**20 if sys.platform == "darwin" else 2**10  # macOS reports bytes, Linux KiB
    return {"peak_memory_mib": peak / scale, "memory_kind": "cpu_peak_rss"}


def parameter_counts(model, tasks: tuple[str, ...]) -> dict:
    """Parameters a method uses (shared ones and its tasks' own): trainable and total."""
    from .extensions.lora import parameter_owner

    counts = {"trainable_parameters": 0, "total_parameters": 0}
    for name, parameter in model.named_parameters():
        if parameter_owner(name) in ("shared", *tasks):
            counts["total_parameters"] += parameter.numel()
            counts["trainable_parameters"] += parameter.numel() if parameter.requires_grad else 0
    return counts


def downsample(frame: pd.DataFrame, columns: list[str], points: int = 60) -> list[list[float]]:
    """Rows ``[step, *columns]`` averaged into at most ``points`` equal step bins (for plots)."""
    if frame.empty:
        return []
    bins = pd.cut(frame["step"], bins=min(points, frame["step"].nunique()), labels=False)
    means = frame[["step", *columns]].groupby(bins).mean()
    return [[round(float(value), 6) for value in row] for row in means.to_numpy()]


def history_summary(history) -> dict:
    """Batches, tokens, loss curve and task weights (first, last, mean, min, max, curve) of a run."""
    steps = history.frame("train")
    summary = {"batches": steps["task"].value_counts().to_dict(),
               "real_tokens": steps.groupby("task")["real_tokens"].sum().to_dict(),
               "loss_curve": {task: downsample(rows, ["loss"]) for task, rows in steps.groupby("task")}}
    columns = [column for column in steps.columns if column.startswith("weight_")]
    if columns:
        weights = steps.drop_duplicates("step")[["step", *columns]]
        summary["task_weights"] = {
            "summary": {column.removeprefix("weight_"): {
                "first": float(weights[column].iloc[0]), "last": float(weights[column].iloc[-1]),
                "mean": float(weights[column].mean()), "min": float(weights[column].min()),
                "max": float(weights[column].max())} for column in columns},
            "tasks": [column.removeprefix("weight_") for column in columns],
            "curve": downsample(weights, columns),
        }
    return summary


def conflict_summary(probe: TimedProbe | None) -> dict | None:
    """Mean cosine per layer over the probes, and every probe row (step, layer, cosine, norms)."""
    if probe is None or not probe.probe.records:
        return None
    frame = probe.probe.frame()
    by_layer = frame.groupby("layer", sort=False)["cosine"].mean()
    return {"every": probe.probe.every, "by_layer": {k: float(v) for k, v in by_layer.items()},
            "records": [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}
                        for row in frame.to_dict("records")]}


def training_config(config: dict, method: dict, seed: int, steps: int, fewest_batches: int, output_dir):
    """The loop's ``TrainingConfig`` for one run: ``steps`` steps, no checkpoint, the method's
    learning rate and strategy, and enough shuffled passes over the data (``fewest_batches``: the
    batches in one pass over the smaller task) that no batch repeats within a pass."""
    from .training import TrainingConfig

    settings = config["training"]
    shared = ("batch_size", "eval_batch_size", "warmup_ratio", "weight_decay", "max_grad_norm", "log_every",
              "mixed_precision")
    return TrainingConfig(
        output_dir=str(output_dir), max_steps=steps, seed=seed, save_best=False, progress=False,
        learning_rate=method.get("learning_rate", settings["learning_rate"]),
        strategy=method.get("strategy", "proportional"), temperature=method.get("temperature", 2.0),
        task_epochs=max(1, math.ceil(steps / fewest_batches)), **{key: settings[key] for key in shared},
    )


def run_one(config: dict, method_name: str, seed: int, out_dir: str | os.PathLike,
            cache_root: str | os.PathLike | None = CACHE_ROOT, own_process: bool = False) -> dict:
    """Train and measure one (method, seed); write and return its record (``runs/<method>__seed<k>.json``).

    ``own_process``: this process runs nothing else, so its peak RSS is the run's own.
    """
    import tempfile

    import torch
    from accelerate.utils import set_seed

    from .encoders import load_tokenizer
    from .training import train

    method = find_method(config, method_name)
    tokenizer = load_tokenizer(config["encoder"])
    all_tasks, sizes = prepare_tasks(config, tokenizer, cache_root)
    tasks = {task: all_tasks[task] for task in method_tasks(method)}
    settings = config["training"]
    counts = {task: math.ceil(len(data.train_features) / settings["batch_size"]) for task, data in all_tasks.items()}
    steps = planned_steps(config, method, counts)
    set_seed(seed)
    model = build_model(config, method)
    balancer = make_balancer(method, model, seed)
    probe = make_probe(config, method, model, all_tasks, tokenizer, steps)
    reset_peak_memory()
    load_before = _load_average()
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as scratch:
        training = training_config(config, method, seed, steps, min(counts[task] for task in tasks), scratch)
        result = train(model, tokenizer, tasks, training, step_hook=probe, balancer=balancer)
    run_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    memory = peak_memory()
    latency = {task: measure_latency(model, all_tasks[task].eval_features, task, **config["latency"])
               for task in tasks}
    probe_seconds = probe.seconds if probe else 0.0
    scores = ("ner_f1", "ner_precision", "ner_recall", "qa_exact_match", "qa_f1")
    record = {
        "method": method_name, "seed": seed, "experiment": config["name"], "setup_hash": setup_hash(config, method),
        "status": "done", "method_settings": method, "tasks": list(tasks), "steps": result.metrics["steps"],
        **{key: result.metrics.get(key) for key in scores}, **parameter_counts(model, tuple(tasks)),
        "train_seconds": result.train_seconds - probe_seconds, "probe_seconds": probe_seconds,
        "eval_seconds": run_seconds - result.train_seconds, "run_seconds": run_seconds,
        "run_cpu_seconds": cpu_seconds, **memory, "own_process": own_process,
        "load_average": [load_before, _load_average()], "cpu_count": os.cpu_count(),
        "latency": latency, **history_summary(result.history), "gradient_conflict": conflict_summary(probe),
        "data": sizes, "device": _device_name(), "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": _version("transformers"), "peft": _version("peft")},
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(run_path(out_dir, method_name, seed), record)
    return record


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy_runs(records: list[dict], least_share: float = 0.85) -> list[dict]:
    """CPU runs that shared the machine with other programs, so their seconds and latencies are
    too high: the run's CPU time was below ``least_share`` of (wall time × torch threads) (an
    undisturbed run keeps its threads busy about 94% of the time here), or the load average went
    above the number of cores."""
    def busy(record):
        if record.get("device") != "cpu":
            return False
        capacity = record.get("run_seconds", 0.0) * record.get("threads", 1)
        share = record.get("run_cpu_seconds", 0.0) / max(capacity, 1e-9)
        loads = [load for load in record.get("load_average", []) if load is not None]
        crowded = bool(loads) and max(loads) > (record.get("cpu_count") or 1) + 0.5
        return crowded or ("run_cpu_seconds" in record and share < least_share)

    return [record for record in records if busy(record)]


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def write_json(path: str | os.PathLike, value) -> None:
    """Write ``value`` as JSON atomically (a half-written file never looks finished)."""
    from .training import _jsonable

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(_jsonable(value), indent=1))
    temporary.replace(path)


# -- the sweep ----------------------------------------------------------------------------------
def run_path(out_dir: str | os.PathLike, method: str, seed: int) -> Path:
    """Where the record of (method, seed) lives: ``OUT/runs/<method>__seed<seed>.json``."""
    return Path(out_dir) / "runs" / f"{method}__seed{seed}.json"


def is_finished(path: Path, expected_hash: str, rerun_busy: bool = False) -> bool:
    """A run counts as done when its JSON exists, says ``done`` and has the same settings (and,
    with ``rerun_busy``, was not disturbed by other programs: :func:`busy_runs`)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    done = record.get("status") == "done" and record.get("setup_hash") == expected_hash
    return done and not (rerun_busy and busy_runs([record]))


def pending_runs(config: dict, out_dir, methods=None, seeds=None, rerun_busy: bool = False) -> list[tuple[str, int]]:
    """(method, seed) pairs of the sweep that have no finished JSON yet, in config order."""
    names = methods or [method["name"] for method in config["methods"]]
    hashes = {name: setup_hash(config, find_method(config, name)) for name in names}
    return [(name, seed) for name in names for seed in (seeds or config["seeds"])
            if not is_finished(run_path(out_dir, name, seed), hashes[name], rerun_busy)]


def run_sweep(config_path, out_dir, methods=None, seeds=None, isolate: bool = True,
              cache_root=CACHE_ROOT, command: str | None = None, rerun_busy: bool = False) -> list[tuple[str, int]]:
    """Run every pending (method, seed); returns the ones that failed (the others carry on).

    ``rerun_busy``: also run again the finished runs whose timings other programs disturbed."""
    config = load_config(config_path)
    out_dir = Path(out_dir)
    write_json(out_dir / "config.json", config)
    log_sweep(out_dir, config_path, command or _command_line())
    todo = pending_runs(config, out_dir, methods, seeds, rerun_busy)
    total = len(methods or config["methods"]) * len(seeds or config["seeds"])
    print(f"{config['name']}: {total - len(todo)} of {total} runs already done; {len(todo)} to go", flush=True)
    if todo:
        from .encoders import load_tokenizer

        prepare_tasks(config, load_tokenizer(config["encoder"]), cache_root)  # tokenize once for all runs
    failed = []
    for number, (method, seed) in enumerate(todo, start=1):
        started = time.perf_counter()
        print(f"[{number}/{len(todo)}] {method} seed {seed} ...", flush=True)
        if isolate:
            ok = _run_isolated(out_dir, method, seed, cache_root)
        else:
            ok = _run_here(config, method, seed, out_dir, cache_root)
        print(f"[{number}/{len(todo)}] {method} seed {seed} {'done' if ok else 'FAILED'} "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        if not ok:
            failed.append((method, seed))
    return failed


def log_sweep(out_dir: Path, config_path, command: str) -> None:
    """Append this invocation to ``OUT/sweep.json`` (the report quotes every command that added runs)."""
    path = out_dir / "sweep.json"
    sweep = json.loads(path.read_text()) if path.exists() else {"config_file": str(config_path), "commands": []}
    sweep.setdefault("commands", []).append({"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    write_json(path, sweep)


def _run_isolated(out_dir: Path, method: str, seed: int, cache_root) -> bool:
    command = [sys.executable, "-m", "nerqa_helpers.experiments", "run-one", str(out_dir / "config.json"),
               "--method", method, "--seed", str(seed), "--out", str(out_dir), "--cache", str(cache_root or "")]
    return subprocess.run(command, env={**os.environ, "TQDM_DISABLE": "1"}).returncode == 0


def _run_here(config, method, seed, out_dir, cache_root) -> bool:
    try:
        run_one(config, method, seed, out_dir, cache_root)
    except Exception as error:  # keep the sweep going; the run stays pending
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return False
    return True


def _command_line() -> str:
    return "python -m nerqa_helpers.experiments " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])


# -- statistics ---------------------------------------------------------------------------------
def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1); std is NaN for fewer than two values."""
    values = np.asarray([value for value in values if value is not None and np.isfinite(value)], dtype=float)
    if not len(values):
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def difference_interval(values: dict, baseline: dict, confidence: float = 0.95) -> dict:
    """Mean difference ``values − baseline`` with a ``confidence`` t-interval.

    ``values`` / ``baseline``: seed → score. When both hold the same seeds (at least two) the
    interval is on the paired per-seed differences, t with n − 1 degrees of freedom; otherwise
    Welch's interval for two independent samples. Returns {difference, low, high, kind, n}.
    """
    from scipy import stats

    values = {seed: v for seed, v in values.items() if v is not None and np.isfinite(v)}
    baseline = {seed: v for seed, v in baseline.items() if v is not None and np.isfinite(v)}
    a, b = np.array(list(values.values()), float), np.array(list(baseline.values()), float)
    result = {"difference": float(a.mean() - b.mean()) if len(a) and len(b) else float("nan"),
              "low": float("nan"), "high": float("nan"), "kind": "none", "n": min(len(a), len(b))}
    quantile = 0.5 + confidence / 2
    if set(values) == set(baseline) and len(values) >= 2:
        differences = np.array([values[seed] - baseline[seed] for seed in sorted(values)])
        half = stats.t.ppf(quantile, len(differences) - 1) * differences.std(ddof=1) / math.sqrt(len(differences))
        result.update(kind="paired")
    elif len(a) >= 2 and len(b) >= 2:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        freedom = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else 1.0
        half = stats.t.ppf(quantile, freedom) * math.sqrt(va + vb)
        result.update(kind="welch")
    else:
        return result
    result.update(low=result["difference"] - half, high=result["difference"] + half)
    return result


# -- the report ---------------------------------------------------------------------------------
def load_runs(out_dir: str | os.PathLike) -> list[dict]:
    """Every finished run record in ``OUT/runs/`` (a JSON per run)."""
    records = [json.loads(path.read_text()) for path in sorted(Path(out_dir, "runs").glob("*.json"))]
    return [record for record in records if record.get("status") == "done"]


def baselines(config: dict) -> dict[str, str]:
    """Task → the single-task method its scores are compared with (``config["baselines"]`` or the
    first method that trains that task alone)."""
    found = dict(config.get("baselines", {}))
    for method in config["methods"]:
        tasks = method_tasks(method)
        if len(tasks) == 1 and tasks[0] not in found:
            found[tasks[0]] = method["name"]
    return found


def summarize(records: list[dict], config: dict) -> pd.DataFrame:
    """One row per method (config order): mean, std, difference to single-task with its interval,
    and the cost columns (means over seeds)."""
    reference = baselines(config)
    by_method = {}
    for record in records:
        by_method.setdefault(record["method"], []).append(record)
    rows = []
    for method in [m["name"] for m in config["methods"] if m["name"] in by_method]:
        runs = by_method[method]
        row = {"method": method, "seeds": len(runs)}
        for metric in METRICS:
            scores = {run["seed"]: run.get(metric) for run in runs if run.get(metric) is not None}
            if not scores:
                continue
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(scores.values())
            base = reference.get(metric.split("_")[0])
            if base and base != method and base in by_method:
                other = {run["seed"]: run.get(metric) for run in by_method[base]}
                interval = difference_interval(scores, other)
                row.update({f"{metric}_diff": interval["difference"], f"{metric}_low": interval["low"],
                            f"{metric}_high": interval["high"], f"{metric}_ci": interval["kind"]})
        for key in ("trainable_parameters", "total_parameters", "train_seconds", "peak_memory_mib", "steps"):
            row[key] = float(np.mean([run[key] for run in runs if run.get(key) is not None] or [np.nan]))
        for task in TASKS:
            row[f"latency_{task}_ms"] = float(np.mean([run["latency"][task]["median_ms"] for run in runs
                                                       if task in run.get("latency", {})] or [np.nan]))
            row[f"batches_{task}"] = float(np.mean([run.get("batches", {}).get(task, 0) for run in runs]))
        rows.append(row)
    return pd.DataFrame(rows)


def _score(row, metric: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None or not np.isfinite(mean):
        return ""
    return f"{mean:.2f} ± {std:.2f}" if np.isfinite(std) else f"{mean:.2f}"


def _difference(row, metric: str) -> str:
    difference = row.get(f"{metric}_diff")
    if difference is None or not np.isfinite(difference):
        return ""
    low, high = row[f"{metric}_low"], row[f"{metric}_high"]
    interval = f" [{low:+.2f}, {high:+.2f}]" if np.isfinite(low) else ""
    return f"{difference:+.2f}{interval}"


def _number(value, digits: int = 0) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; the first column is left-aligned, the others right-aligned."""
    lines = [header, ["---"] + ["---:"] * (len(header) - 1), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


def results_tables(summary: pd.DataFrame) -> str:
    """The two Markdown tables of the report: scores, then costs."""
    quality, cost = [], []
    for row in summary.to_dict("records"):
        quality.append([row["method"], _score(row, "ner_f1"), _difference(row, "ner_f1"),
                        _score(row, "qa_exact_match"), _difference(row, "qa_exact_match"),
                        _score(row, "qa_f1"), _difference(row, "qa_f1"), str(row["seeds"])])
        cost.append([row["method"], _number(row["trainable_parameters"]), _number(row["total_parameters"]),
                     f"{_number(row['batches_ner'])} / {_number(row['batches_qa'])}",
                     _number(row["train_seconds"], 1), _number(row["peak_memory_mib"]),
                     _number(row["latency_ner_ms"], 1), _number(row["latency_qa_ms"], 1)])
    return (_table(["method", "NER F1", "Δ NER F1 [95% CI]", "QA EM", "Δ QA EM [95% CI]", "QA F1",
                    "Δ QA F1 [95% CI]", "seeds"], quality) + "\n"
            + _table(["method", "trainable parameters", "total parameters", "batches NER / QA", "training s",
                      "peak memory MiB", "NER ms / sentence", "QA ms / window"], cost))


def results_frame(out_dir: str | os.PathLike, methods: list[str] | None = None) -> pd.DataFrame | None:
    """The report's results for ``methods`` (default: all, in the config's order) as a table to show
    in a notebook: scores as mean ± std over seeds, differences to single-task with their 95%
    intervals, trainable parameters and training seconds. Reads ``OUT/summary.csv``; ``None`` (and a
    note on how to make it) when the sweep has not been run."""
    path = Path(out_dir) / "summary.csv"
    if not path.is_file():
        print(f"No experiment report in {out_dir}: `make experiments` makes one (about an hour on 2 CPU cores).")
        return None
    summary = pd.read_csv(path).set_index("method", drop=False)
    unknown = sorted(set(methods or []) - set(summary.index))
    if unknown:
        raise ValueError(f"{path} has no method {unknown}; it has {list(summary.index)}")
    rows = {}
    for row in summary.loc[methods or list(summary.index)].to_dict("records"):
        rows[row["method"]] = {
            "NER F1": _score(row, "ner_f1"), "Δ NER F1 [95% CI]": _difference(row, "ner_f1"),
            "QA EM": _score(row, "qa_exact_match"), "QA F1": _score(row, "qa_f1"),
            "Δ QA F1 [95% CI]": _difference(row, "qa_f1"),
            "trainable parameters": _number(row["trainable_parameters"]),
            "training s": _number(row["train_seconds"], 1), "seeds": int(row["seeds"])}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def methods_table(config: dict) -> str:
    """What each method is: tasks, sharing, sampling, loss weighting, learning rate."""
    lines = ["| method | tasks | sharing | sampling | loss weighting | learning rate |",
             "| --- | --- | --- | --- | --- | ---: |"]
    for method in config["methods"]:
        if method.get("lora"):
            sharing = f"frozen encoder, LoRA r={method['lora'].get('r', 8)} per task"
        elif method.get("shared_layers") is not None:
            sharing = f"bottom {method['shared_layers']} layers shared"
        else:
            sharing = "all layers shared" if len(method_tasks(method)) > 1 else "one task"
        joint = method.get("balancer") in ("gradnorm", "uncertainty", "pcgrad")
        sampling = "one batch of each task per step" if joint else method.get("strategy", "proportional")
        sampling = sampling if len(method_tasks(method)) > 1 else "—"
        if method.get("strategy") == "temperature":
            sampling += f" (T = {method.get('temperature', 2.0)})"
        weightings = {"gradnorm": f"GradNorm (α = {method.get('alpha', 1.5)})",
                      "uncertainty": "uncertainty weighting", "pcgrad": "PCGrad gradient surgery",
                      "static": f"fixed λ = {method.get('task_weights', 1)}", None: "fixed λ = 1"}
        weighting = weightings[method.get("balancer")]
        rate = method.get("learning_rate", config["training"]["learning_rate"])
        lines.append(f"| {method['name']} | {' + '.join(method_tasks(method))} | {sharing} | {sampling} | "
                     f"{weighting} | {rate:g} |")
    return "\n".join(lines) + "\n"


def setup_text(config: dict, records: list[dict]) -> str:
    """Data sizes, budget and machine, as read from the config and the run records."""
    sizes = records[0]["data"] if records else {}
    settings, data = config["training"], config["data"]
    source = "the bundled tiny sample" if data["source"] == "tiny" else "CoNLL-2003 and SQuAD v1.1 (real data)"
    devices = sorted({f"{r['device']} (torch threads: {r['threads']})" for r in records})
    total = sum(r.get("run_seconds", 0.0) for r in records)
    count = lambda key: f"{sizes[key]:,}" if isinstance(sizes.get(key), int) else "?"  # noqa: E731
    lines = [
        f"- Data: {source}, one fixed subset for every run (data seed {data['seed']}).",
        f"  NER: {count('ner_train_sentences')} training sentences, scored on {count('ner_eval_sentences')} "
        "validation sentences (entity-level F1).",
        f"  QA: {count('qa_train_questions')} training questions ({count('qa_train_windows')} windows), scored on "
        f"{count('qa_eval_questions')} held-out questions (SQuAD EM / F1).",
        f"- Budget: {settings['steps']:,} batches of {settings['batch_size']} per run. Multi-task runs draw them "
        "from both tasks; GradNorm, uncertainty weighting and PCGrad take one batch of each task per step (half "
        "the steps); a single-task run gets its task's share of the batches under proportional sampling.",
        f"- Encoder `{config['encoder']}`; learning rate {settings['learning_rate']:g} (unless the method sets "
        f"its own), {settings['warmup_ratio']:.0%} warm-up then linear decay, AdamW; windows of "
        f"{config['preprocessing']['qa_max_length']} tokens, stride {config['preprocessing']['doc_stride']}.",
        f"- Seeds: {', '.join(map(str, config['seeds']))}. Device: {', '.join(devices) or '?'}. The "
        f"{len(records)} runs took {total / 60:.1f} minutes in all (training, evaluation and measurement; "
        "not counting each process's start).",
        f"- Gradient-conflict probe {config['probe']['count']} times per run, evenly over its steps, on a fixed "
        f"batch of {config['probe']['batch_size']} training examples per task (not counted as training time).",
    ]
    return "\n".join(lines) + "\n"


READING_NOTES = """\
How to read the tables:

- Scores are mean ± standard deviation over seeds (percent). Δ is the method minus the single-task
  run of that task, with a 95% confidence interval: a t-interval on the per-seed differences when
  both have the same seeds (paired), else Welch's interval. With n seeds the paired t has n − 1
  degrees of freedom (three seeds: t = 4.30), so intervals are wide; one that contains 0 means
  these runs cannot tell the method from the single-task run.
- Trainable parameters count what the optimiser updates; total parameters what the method needs at
  inference (a single-task run does not count the other task's head). Two single-task models
  together hold the sum of their totals.
- Training seconds: the loop only (not evaluation, not the probe). Peak memory: the run process's
  peak resident memory on a CPU (Python, libraries and data included), CUDA max allocated on a GPU.
  Latency: median time of one forward pass for one NER sentence or one QA window (batch 1, one
  CPU thread, after training; tokenization and span search not included).
"""


def measurement_warnings(records: list[dict]) -> str:
    """Paragraphs naming runs whose timings or memory figures should not be trusted ("" if none)."""
    lines = []
    busy = busy_runs(records)
    if busy:
        names = ", ".join(f"{r['method']} seed {r['seed']}" for r in busy)
        lines.append(f"**Warning:** {len(busy)} of {len(records)} runs ran while other programs kept the machine "
                     "busy (their threads ran less than 85% of the time, or the load average passed the number of "
                     f"cores): {names}. Their seconds and latencies are too high; scores are not affected. Add "
                     "`--rerun-busy` to the sweep command on an idle machine to measure them again.\n")
    shared = sorted({r["method"] for r in records
                     if r.get("memory_kind") == "cpu_peak_rss" and not r.get("own_process")})
    if shared:
        lines.append(f"**Note:** {', '.join(shared)} ran inside one long process (`--in-process`), so their peak "
                     "memory is that process's peak so far, not the run's own.\n")
    return "\n".join(lines)


def write_report(out_dir: str | os.PathLike) -> Path:
    """Write ``OUT/README.md``, ``OUT/summary.csv`` and the figures from the run JSON files."""
    out_dir = Path(out_dir)
    config = json.loads((out_dir / "config.json").read_text())
    records = load_runs(out_dir)
    summary = summarize(records, config)
    summary.to_csv(out_dir / "summary.csv", index=False, float_format="%.4f")
    figures = save_figures(records, summary, config, out_dir)
    sweep = json.loads((out_dir / "sweep.json").read_text()) if (out_dir / "sweep.json").exists() else {}
    commands = list(dict.fromkeys(entry["command"] for entry in sweep.get("commands", [])))
    made_by = " and ".join(f"`{command}`" for command in commands) or "an unrecorded command"
    expected = {(m["name"], seed) for m in config["methods"] for seed in config["seeds"]}
    missing = sorted(expected - {(r["method"], r["seed"]) for r in records})
    parts = [
        f"# Experiments: {config['name']}\n",
        f"Generated by `python -m nerqa_helpers.experiments report {out_dir.as_posix()}` from the {len(records)} "
        "run files in `runs/` (do not edit by hand; rerun the command).",
        f"The runs were made by {made_by} with the settings in `config.json`.\n",
        "## Setup\n", setup_text(config, records),
        "## Results\n", results_tables(summary) if len(summary) else "No finished runs yet.\n",
        measurement_warnings(records), READING_NOTES, "## Methods\n", methods_table(config),
    ]
    if figures:
        parts.append("## Figures\n")
        parts += [f"**{title}**\n\n![{title}]({name})\n" for name, title in figures]
    if missing:
        parts.append("## Missing runs\n")
        parts.append(", ".join(f"{method} seed {seed}" for method, seed in missing) + "\n")
    path = out_dir / "README.md"
    path.write_text("\n".join(part for part in parts if part))
    return path


# -- figures ------------------------------------------------------------------------------------
def plot_scores(records: list[dict], summary: pd.DataFrame):
    """NER F1 and QA F1 per method: bars = mean, error bars = std over seeds, dots = single seeds."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.8), layout="constrained")
    for ax, metric, colour in zip(figure.subplots(1, 2), ("ner_f1", "qa_f1"), ("tab:blue", "tab:orange")):
        rows = summary.dropna(subset=[f"{metric}_mean"]) if f"{metric}_mean" in summary else summary.iloc[:0]
        positions = np.arange(len(rows))
        ax.bar(positions, rows.get(f"{metric}_mean", []), yerr=rows.get(f"{metric}_std", pd.Series()).fillna(0),
               color=colour, alpha=0.7, capsize=3)
        for position, method in zip(positions, rows["method"]):
            seeds = [r[metric] for r in records if r["method"] == method and r.get(metric) is not None]
            ax.plot([position] * len(seeds), seeds, "k.", markersize=4)
        ax.set_xticks(positions, list(rows["method"]), rotation=45, ha="right")
        ax.set_ylabel(METRICS[metric])
    return figure


def plot_weight_curves(records: list[dict]):
    """Task weights against the step for every method with a learned balancer (one panel each;
    one line per task and seed)."""
    from matplotlib.figure import Figure

    methods = list(dict.fromkeys(r["method"] for r in records if r.get("task_weights")))
    if not methods:
        return None
    figure = Figure(figsize=(4.2 * len(methods), 3.2), layout="constrained")
    for ax, method in zip(np.atleast_1d(figure.subplots(1, len(methods))), methods):
        for record in [r for r in records if r["method"] == method]:
            curve = np.array(record["task_weights"]["curve"])
            for index, task in enumerate(record["task_weights"]["tasks"]):
                ax.plot(curve[:, 0], curve[:, index + 1], color="tab:blue" if task == "ner" else "tab:orange",
                        alpha=0.8, label=f"{task}, seed {record['seed']}")
        ax.set(title=method, xlabel="step", ylabel="task weight")
        ax.legend(fontsize=7)
    return figure


def plot_conflict_by_layer(records: list[dict]):
    """Mean cosine between the NER and QA gradients per shared layer, one line per method, and
    over all shared parameters at the right (mean over seeds and probes; bars = std over seeds)."""
    from matplotlib.figure import Figure

    probed = [r for r in records if r.get("gradient_conflict")]
    if not probed:
        return None
    layers = list(dict.fromkeys(layer for r in probed for layer in r["gradient_conflict"]["by_layer"]
                                if layer != "all"))
    figure = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = figure.subplots()
    for index, method in enumerate(dict.fromkeys(r["method"] for r in probed)):
        per_seed = [r["gradient_conflict"]["by_layer"] for r in probed if r["method"] == method]
        positions = [i for i, layer in enumerate(layers) if layer in per_seed[0]] + [len(layers)]
        stats = [mean_std([seed.get(([*layers, "all"])[i], np.nan) for seed in per_seed]) for i in positions]
        means, stds = np.array(stats).T
        x = np.array(positions) + 0.04 * index
        line = ax.errorbar(x[:-1], means[:-1], yerr=np.nan_to_num(stds[:-1]), marker="o", capsize=2, label=method)
        ax.errorbar(x[-1:], means[-1:], yerr=np.nan_to_num(stds[-1:]), marker="s", capsize=2,
                    color=line.lines[0].get_color())
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(len(layers) - 0.5, color="grey", linewidth=0.5, linestyle=":")
    ax.set_xticks(range(len(layers) + 1), [*layers, "all shared"], rotation=30)
    ax.set_ylabel("cosine(∇L_NER, ∇L_QA)")
    ax.legend(fontsize=7, ncol=2)
    return figure


def save_figures(records, summary, config, out_dir: Path) -> list[tuple[str, str]]:
    """Save the report's PNGs; returns (file name, title) of each one written."""
    figures = [("f1_by_method.png", "F1 by method (mean ± std over seeds; dots are single seeds)",
                plot_scores(records, summary) if len(summary) else None),
               ("task_weights.png", "Task weights over training (GradNorm, uncertainty weighting)",
                plot_weight_curves(records)),
               ("gradient_conflict.png", "Gradient conflict: cosine between the tasks' gradients per shared layer",
                plot_conflict_by_layer(records))]
    written = []
    for name, title, figure in figures:
        if figure is not None:
            figure.savefig(out_dir / name, dpi=110)
            written.append((name, title))
    return written


# -- command line -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nerqa_helpers.experiments", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every pending (method, seed) of a config, then write the report")
    run.add_argument("config")
    run.add_argument("--out", required=True, help="output folder (runs/*.json, README.md, figures)")
    run.add_argument("--methods", default=None, help="comma-separated subset of the config's methods")
    run.add_argument("--seeds", default=None, help="comma-separated subset of seeds")
    run.add_argument("--in-process", action="store_true",
                     help="run in this process (faster start; on a CPU the peak memory is then shared)")
    run.add_argument("--cache", default=str(CACHE_ROOT), help="folder for the tokenized data ('' for none)")
    run.add_argument("--rerun-busy", action="store_true",
                     help="also rerun finished runs whose timings other programs disturbed (see the report)")
    run.add_argument("--no-report", action="store_true")
    one = commands.add_parser("run-one", help="one (method, seed); what `run` starts in a fresh process")
    one.add_argument("config")
    one.add_argument("--method", required=True)
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--out", required=True)
    one.add_argument("--cache", default=str(CACHE_ROOT))
    report = commands.add_parser("report", help="write OUT/README.md, summary.csv and figures from the run JSON")
    report.add_argument("out")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m nerqa_helpers.experiments``; returns the exit code (1: runs failed)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cache = (args.cache or None) if args.command != "report" else None
    if args.command == "report":
        print(f"wrote {write_report(args.out)}")
        return 0
    from transformers.utils import logging

    logging.set_verbosity_error()  # no encoder load report per run
    if args.command == "run-one":
        record = run_one(load_config(args.config), args.method, args.seed, args.out, cache, own_process=True)
        print(f"{args.method} seed {args.seed}: NER F1 {record.get('ner_f1')}, QA F1 {record.get('qa_f1')}, "
              f"{record['train_seconds']:.0f} s training")
        return 0
    split = lambda text, kind: [kind(part) for part in text.split(",")] if text else None  # noqa: E731
    failed = run_sweep(args.config, args.out, split(args.methods, str), split(args.seeds, int),
                       isolate=not args.in_process, cache_root=cache, rerun_busy=args.rerun_busy)
    if not args.no_report:
        print(f"wrote {write_report(args.out)}")
    if failed:
        print(f"{len(failed)} runs failed: {failed}; run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
