"""Statistics over seeds: mean ± standard deviation, and the difference to a baseline with a
t-interval from ``scipy.stats`` (paired when both have the same seeds, else Welch's)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..presets import TASKS
from .config import METRICS, method_tasks


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



def conflict_by_layer(records: list[dict]) -> pd.DataFrame:
    """Gradient-conflict cosine per (method, shared layer): mean and std over the seeds' probe
    means, the layers of the method's first run in order and ``"all"`` last. Columns ``method``,
    ``layer``, ``mean``, ``std`` (empty when no run was probed)."""
    probed = [r for r in records if r.get("gradient_conflict")]
    rows = []
    for method in dict.fromkeys(r["method"] for r in probed):
        per_seed = [r["gradient_conflict"]["by_layer"] for r in probed if r["method"] == method]
        layers = [layer for layer in per_seed[0] if layer != "all"] + ["all"]
        for layer in layers:
            mean, std = mean_std([seed.get(layer, np.nan) for seed in per_seed])
            rows.append({"method": method, "layer": layer, "mean": mean, "std": std})
    return pd.DataFrame(rows, columns=["method", "layer", "mean", "std"])
