"""What a run record holds and where it lives: measurements taken after training (latency, peak
memory, parameter counts, the loss curves), the code and machine it ran on, and the files
(``OUT/runs/<method>__seed<k>.json``, written atomically). The runner writes records with these;
the report reads them (and flags runs other programs disturbed: :func:`busy_runs`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..base import jsonable


def measure_latency(model, features, task: str, examples: int = 50, warmup: int = 5,
                    precision: str | None = None) -> dict:
    """Model forward time for one example at a time (batch 1), after training, in eval mode.

    ``features``: tokenized evaluation features (the first ``warmup + examples`` are used; the
    same ones for every method). Returns median and mean milliseconds and the mean length in
    tokens. Tokenization and post-processing are not included; ``precision`` is the one evaluation
    uses (``TrainingConfig.mixed_precision``: "auto"/None, "bf16", "fp16", "no"). On a CPU it uses one thread: a
    batch of one gains little from a second, and two threads that wait for each other turn any
    other load on the machine into stalls of tens of milliseconds.
    """
    import torch

    device = next(model.parameters()).device
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _time_forward(model, features, task, examples, warmup, device, precision)
    finally:
        torch.set_num_threads(threads)


def _time_forward(model, features, task, examples, warmup, device, precision) -> dict:
    import torch

    from ..precision import autocast_for

    rows = features[: warmup + examples]
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in rows]
    autocast = autocast_for(device, precision)  # the precision evaluation uses on this device
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
    from ..extensions.lora import parameter_owner

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


def code_version() -> dict:
    """The commit of the checkout the package runs from and whether tracked files differ from it
    (``{"commit": None}`` outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]

    def git(*arguments):
        done = subprocess.run(["git", "-C", str(root), *arguments], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def load_average() -> float | None:
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


def machine_of(record: dict) -> str:
    """The CPU a run's seconds were measured on (``machine.cpu_facts``), or "a machine not recorded"
    (runs made before records named it)."""
    if record.get("device", "cpu") != "cpu":
        return record["device"]
    return record.get("cpu", "a machine not recorded")


def runs_by_machine(records: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by :func:`machine_of`, in the order the machines first appear."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(machine_of(record), []).append(record)
    return groups


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def package_version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def write_json(path: str | os.PathLike, value) -> None:
    """Write ``value`` as JSON atomically (a half-written file never looks finished)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(jsonable(value), indent=1))
    temporary.replace(path)


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
