"""One (method, seed) trained and measured, and the sweep that runs every pending one.

A run's record holds its scores, its cost (parameters, training seconds, peak memory, batch-1
latency) and what could make those costs wrong: a CPU run that other programs slowed down is
flagged by :func:`busy_runs`, and the report names it.
"""
from __future__ import annotations

# torch, accelerate and the training loop are imported inside the functions that train and measure
# (deliberately deferred): the report, the questions and the notebooks' tables import this module to
# read run records, and must not pay for loading a deep-learning stack to do so.

import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..machine import cpu_facts
from ..presets import TASKS
from .records import (code_version, device_name, history_summary, is_finished, load_average, measure_latency, package_version, parameter_counts, peak_memory, reset_peak_memory, run_path, write_json)
from .config import (CACHE_ROOT, batch_size, clipping_rule, find_method, is_converged, is_joint, load_config, method_data,
                     method_seeds, method_tasks, model_windows, planned_batches, planned_steps, prepare_tasks, setup_hash,
                     test_data)


def build_model(config: dict, method: dict):
    """The method's model: hard sharing, soft sharing (``shared_layers``) or LoRA (``lora``)."""
    from ..model import MultiTaskModel

    if method.get("lora"):
        from ..extensions import lora  # noqa: F401  (registers the LoRA adapter, also in a fresh run-one process)

    weights = {task: (float(method.get("task_weights", {}).get(task, 1.0)) if task in method_tasks(method) else 0.0)
               for task in TASKS}
    return MultiTaskModel.from_encoder(config["encoder"], task_weights=weights, shared_layers=method.get("shared_layers"),
                                       lora=method.get("lora"), **model_windows(config, method))  # the windows it trains on


def make_balancer(method: dict, model, seed: int):
    """The method's loss balancer, or ``None`` for the loop's fixed λ weighting."""
    from ..extensions import balancing

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
        balancer = balancing.StaticWeights(method.get("task_weights"), joint=bool(method.get("joint")))
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
    from ..extensions.probe import GradientConflictProbe
    from ..sampling import MODEL_INPUTS, make_collators

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


def conflict_summary(probe: TimedProbe | None) -> dict | None:
    """Mean cosine per layer over the probes, and every probe row (step, layer, cosine, norms)."""
    if probe is None or not probe.probe.records:
        return None
    frame = probe.probe.frame()
    by_layer = frame.groupby("layer", sort=False)["cosine"].mean()
    return {"every": probe.probe.every, "by_layer": {k: float(v) for k, v in by_layer.items()},
            "records": [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}
                        for row in frame.to_dict("records")]}


def training_config(config: dict, method: dict, seed: int, steps: int, per_pass: dict[str, int], output_dir):
    """The loop's ``TrainingConfig`` for one run: no checkpoint, the method's learning rate and
    strategy. ``per_pass``: batches in one pass over each of the run's tasks. Under a
    ``training.batches`` budget each task gets exactly its batches (``task_epochs`` = batches / batches
    per pass, fractions allowed); otherwise ``steps`` steps over enough shuffled passes that no batch
    repeats within a pass."""
    per_task = planned_batches(config, method)
    if per_task is not None:
        epochs = {task: per_task[task] / per_pass[task] for task in per_pass}
        return _training_config(config, method, seed, steps if is_joint(method) else None, epochs, output_dir)
    return _training_config(config, method, seed, steps, max(1, math.ceil(steps / min(per_pass.values()))), output_dir)


def _training_config(config, method, seed, steps, task_epochs, output_dir):
    from ..training import TrainingConfig

    settings = config["training"]
    shared = ("eval_batch_size", "warmup_ratio", "weight_decay", "max_grad_norm", "log_every",
              "mixed_precision")
    return TrainingConfig(**{
        "output_dir": str(output_dir), "max_steps": steps, "seed": seed, "save_best": False, "progress": False,
        "learning_rate": method.get("learning_rate", settings["learning_rate"]),
        "strategy": method.get("strategy", "proportional"), "temperature": method.get("temperature", 2.0),
        "task_epochs": task_epochs, "batch_size": {task: batch_size(config, task) for task in TASKS},
        "clipping": clipping_rule(config, method), **{key: settings[key] for key in shared},
        **early_stopping(config, method),
    })


def early_stopping(config: dict, method: dict) -> dict:
    """``TrainingConfig`` fields of a converged study's run: evaluate after every ``every`` batches of
    each task the method trains (so every ``every`` steps when it trains one task or takes joint
    steps, every ``2 × every`` when it alternates two), stop after ``patience`` evaluations without
    a better score, keep the best weights. ``{}`` for a fixed-budget study."""
    rule = config["training"].get("early_stopping")
    if not rule:
        return {}
    per_step = 1 if is_joint(method) else len(method_tasks(method))
    return {"eval_every": int(rule["every"]) * per_step, "early_stopping_patience": int(rule["patience"]),
            "save_best": True}


def check_precision(config: dict) -> None:
    """Raise ``ValueError`` when a config asks for bfloat16 on a CPU without bfloat16 instructions.

    PyTorch emulates bfloat16 there, slower than float32, so such a sweep would take longer than the
    float32 one and its seconds would say nothing about bfloat16 (``precision.cpu_has_native_bf16``)."""
    import torch

    from ..precision import cpu_has_native_bf16

    if config["training"]["mixed_precision"] == "bf16" and not torch.cuda.is_available() and not cpu_has_native_bf16():
        raise ValueError(f"{config['name']}: trains in bfloat16, and this CPU has no bfloat16 instructions "
                         "(AVX512-BF16 or AMX), where bfloat16 is slower than float32. Run the float32 config "
                         "(experiments/cpu.json) here, or set NERQA_CPU_BF16=1 to run it anyway.")


def run_one(config: dict, method_name: str, seed: int, out_dir: str | os.PathLike,
            cache_root: str | os.PathLike | None = CACHE_ROOT, own_process: bool = False) -> dict:
    """Train and measure one (method, seed); write and return its record (``runs/<method>__seed<k>.json``).

    ``own_process``: this process runs nothing else, so its peak RSS is the run's own. In a
    converged study the scores (``ner_f1``, ``qa_f1``, ...) are those of the best validation
    evaluation's weights on the test split; the validation scores are kept under ``validation``.
    On the seed of ``config["convergence"]`` the run then goes on without early stopping to
    ``factor`` × the step it stopped at (:func:`check_convergence`) before its record is written.
    """
    import tempfile

    import torch
    from accelerate.utils import set_seed

    from ..encoders import load_tokenizer
    from ..training import train

    check_precision(config)
    method = find_method(config, method_name)
    tokenizer = load_tokenizer(config["encoder"])
    all_tasks, sizes = prepare_tasks(config, tokenizer, cache_root)
    tasks = method_data(method, all_tasks)
    counts = {task: math.ceil(len(all_tasks[task].train_features) / batch_size(config, task)) for task in TASKS}
    per_pass = {task: math.ceil(len(data.train_features) / batch_size(config, task)) for task, data in tasks.items()}
    steps = planned_steps(config, method, counts)
    set_seed(seed)
    model = build_model(config, method)
    balancer = make_balancer(method, model, seed)
    probe = make_probe(config, method, model, all_tasks, tokenizer, steps)
    machine = cpu_facts() if device_name() == "cpu" else {}  # before the clock starts
    checking = is_converged(config) and seed == config.get("convergence", {}).get("seed")
    reset_peak_memory()
    load_before = load_average()
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as scratch:
        training = training_config(config, method, seed, steps, per_pass, scratch)
        if checking:  # a resumable state at every evaluation, for the convergence check
            training.checkpoint_every = training.eval_every
        result = train(model, tokenizer, tasks, training, step_hook=probe, balancer=balancer)
        run_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        memory = peak_memory()
        test = best_on_test(model, tokenizer, all_tasks, method, training, scratch, result) \
            if is_converged(config) else None
        check = check_convergence(config, method, seed, model, tokenizer, tasks, all_tasks, training, result, test, steps)\
            if checking else None
    if check is not None:
        write_json(Path(out_dir) / "convergence" / f"{method_name}__seed{seed}.json",
                   {**check, "setup_hash": setup_hash(config, method), "code": code_version()})
    precision = config["training"]["mixed_precision"]
    latency = {task: measure_latency(model, tasks[task].eval_features, task, precision=precision,
                                     **config["latency"]) for task in tasks}
    probe_seconds = probe.seconds if probe else 0.0
    scores = ("ner_f1", "ner_precision", "ner_recall", "qa_exact_match", "qa_f1")
    scored = test if test is not None else result.metrics
    record = {
        "method": method_name, "seed": seed, "experiment": config["name"], "setup_hash": setup_hash(config, method),
        "status": "done", "method_settings": method, "tasks": list(tasks), "steps": result.metrics["steps"],
        **{key: scored.get(key) for key in scores}, **parameter_counts(model, tuple(tasks)),
        **(stopping_summary(result, steps) if test is not None else {}), "clipping": training.clipping,
        "code": code_version(),
        "train_seconds": result.train_seconds - probe_seconds, "probe_seconds": probe_seconds,
        "eval_seconds": run_seconds - result.train_seconds, "run_seconds": run_seconds,
        "run_cpu_seconds": cpu_seconds, **memory, "own_process": own_process,
        "load_average": [load_before, load_average()], "cpu_count": os.cpu_count(),
        "latency": latency, **history_summary(result.history), "gradient_conflict": conflict_summary(probe),
        "data": {**sizes, **_method_sizes(tasks)}, "device": device_name(), **machine, "threads": torch.get_num_threads(),
        "precision": result.metrics["mixed_precision"],  # what the accelerator trained in
        "versions": {"torch": torch.__version__, "transformers": package_version("transformers"), "peft": package_version("peft")},
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(run_path(out_dir, method_name, seed), record)
    return record


def best_on_test(model, tokenizer, all_tasks: dict, method: dict, training, scratch, result) -> dict:
    """Put the best validation evaluation's weights back into ``model`` (when the run kept any:
    ``scratch/best``) and score them on the method's test split; flat metrics as ``evaluate``'s."""
    from ..evaluation import evaluate

    best = Path(scratch) / "best" / "model.safetensors"
    if training.save_best and best.exists():
        from safetensors.torch import load_file

        state = load_file(str(best), device=str(next(model.parameters()).device))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [name for name in missing if not name.endswith("position_ids")]:
            raise RuntimeError(f"best weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return evaluate(model, tokenizer, test_data(method, all_tasks), training)


def stopping_summary(result, cap: int) -> dict:
    """Where a converged run stopped and why, its best validation scores, and every evaluation."""
    evals = result.history.frame("eval")
    keys = [key for key in ("ner_f1", "qa_exact_match", "qa_f1", "score") if key in evals]
    best = result.best_metrics or {}
    return {"step_cap": cap, "best_step": best.get("step"), "stopped_early": result.metrics["steps"] < cap,
            "validation": {key: best.get(key) for key in keys},
            "eval_curve": [[int(row["step"]), *[float(row[key]) for key in keys]] for _, row in evals.iterrows()],
            "eval_curve_columns": ["step", *keys]}


def check_convergence(config, method, seed, model, tokenizer, tasks, all_tasks, training, result, test, cap: int) -> dict:
    """Does training on change the test score? The run that stopped early at step S goes on, from
    its last checkpoint and without early stopping, to ``factor`` × S steps (within its step cap, on
    the same schedule); its last weights are scored on the test split beside the best ones. A run
    that reached its cap is recorded as such (its schedule has no steps left)."""
    from ..training import train

    factor, stopped = float(config["convergence"]["factor"]), result.metrics["steps"]
    record = {"method": method["name"], "seed": seed, "factor": factor, "stopped_at": stopped,
              "best_step": (result.best_metrics or {}).get("step"), "step_cap": cap}
    scores = [key for key in ("ner_f1", "qa_f1", "qa_exact_match") if test.get(key) is not None]
    record.update({f"{key}_stopped": test[key] for key in scores})
    if stopped >= cap or not (Path(training.output_dir) / "checkpoint").exists():
        return {**record, "extended_to": stopped, "at_cap": True}
    longer = replace(training, eval_every=None, early_stopping_patience=None, save_best=False, checkpoint_every=None,
                     stop_after_steps=min(cap, math.ceil(factor * stopped)))
    balancer = make_balancer(method, model, seed)
    extended = train(model, tokenizer, tasks, longer, balancer=balancer, resume_from=True)
    from ..evaluation import evaluate

    after = evaluate(model, tokenizer, test_data(method, all_tasks), longer)
    return {**record, "extended_to": extended.metrics["steps"], "at_cap": False,
            **{f"{key}_extended": after[key] for key in scores},
            **{f"{key}_change": after[key] - test[key] for key in scores}}


def _method_sizes(tasks: dict) -> dict:
    """NER training sentences and windows this run used (fewer than the sweep's with ``ner_train``)."""
    if "ner" not in tasks:
        return {}
    features = tasks["ner"].train_features
    return {"method_ner_train_sentences": len(set(features["example_index"])), "method_ner_train_windows": len(features)}


def pending_runs(config: dict, out_dir, methods=None, seeds=None, rerun_busy: bool = False) -> list[tuple[str, int]]:
    """(method, seed) pairs of the sweep that have no finished JSON yet: in config order, or in a
    converged study seed by seed (every method's first seed before any second one), so that a
    sweep stopped halfway leaves whole seeds to compare."""
    names = methods or [method["name"] for method in config["methods"]]
    hashes = {name: setup_hash(config, find_method(config, name)) for name in names}
    pairs = [(name, seed) for name in names for seed in (seeds or method_seeds(config, find_method(config, name)))]
    if is_converged(config):
        order = sorted({seed for _, seed in pairs})
        pairs = [pair for seed in order for pair in pairs if pair[1] == seed]
    return [(name, seed) for name, seed in pairs if not is_finished(run_path(out_dir, name, seed), hashes[name], rerun_busy)]


def check_code_versions(out_dir, allow_mixed: bool = False) -> dict:
    """The code this process runs (:func:`code_version`); raise ``ValueError`` when finished runs in
    ``out_dir`` ran another commit, unless ``allow_mixed``. A checkout with uncommitted changes is
    recorded as such in every run (``code.dirty``) and named by the report."""
    current = code_version()
    seen = {json.loads(path.read_text()).get("code", {}).get("commit") for path in Path(out_dir).glob("runs/*.json")}
    others = sorted(str(commit)[:10] for commit in seen - {current["commit"]})
    if others and not allow_mixed:
        raise ValueError(f"{out_dir}: its runs ran commit(s) {', '.join(others)}, and this checkout is "
                         f"{str(current['commit'])[:10]}. One report holds one code version: run from a checkout of "
                         "the same commit, or pass --allow-mixed-code (the report then lists every commit).")
    if current["dirty"]:
        print(f"note: this checkout has uncommitted changes; the runs record commit {str(current['commit'])[:10]} "
              "as dirty.", flush=True)
    return current


def run_sweep(config_path, out_dir, methods=None, seeds=None, isolate: bool = True,
              cache_root=CACHE_ROOT, command: str | None = None, rerun_busy: bool = False,
              allow_mixed_code: bool = False) -> list[tuple[str, int]]:
    """Run every pending (method, seed); returns the ones that failed (the others carry on).

    ``rerun_busy``: also run again the finished runs whose timings other programs disturbed.
    ``allow_mixed_code``: add runs although the finished ones ran another commit."""
    config = load_config(config_path)
    check_precision(config)
    out_dir = Path(out_dir)
    code = check_code_versions(out_dir, allow_mixed_code)
    write_json(out_dir / "config.json", config)
    log_sweep(out_dir, config_path, command or _command_line(), code)
    todo = pending_runs(config, out_dir, methods, seeds, rerun_busy)
    names = methods or [method["name"] for method in config["methods"]]
    total = sum(len(seeds or method_seeds(config, find_method(config, name))) for name in names)
    print(f"{config['name']}: {total - len(todo)} of {total} runs already done; {len(todo)} to go", flush=True)
    if todo:
        from ..encoders import load_tokenizer

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


def log_sweep(out_dir: Path, config_path, command: str, code: dict | None = None) -> None:
    """Append this invocation to ``OUT/sweep.json`` (the report quotes every command that added runs)."""
    path = out_dir / "sweep.json"
    sweep = json.loads(path.read_text()) if path.exists() else {"config_file": str(config_path), "commands": []}
    sweep.setdefault("commands", []).append({"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                             **({"commit": code["commit"]} if code else {})})
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

