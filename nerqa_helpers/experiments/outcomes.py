"""What the finished runs say: the run records, paired comparisons over seeds, their outcome, and
the Holm adjustment over a study's whole family of comparisons. The question reports, the study
report and the replication section all read from here (nothing here writes a file)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .stats import difference_interval, mean_std

ALPHA = 0.05
"""The level of every interval (95%) and of the Holm-adjusted test."""


def load_runs(out_dir: str | os.PathLike) -> list[dict]:
    """Every finished run record in ``OUT/runs/`` (a JSON per run)."""
    records = [json.loads(path.read_text()) for path in sorted(Path(out_dir, "runs").glob("*.json"))]
    return [record for record in records if record.get("status") == "done"]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def seed_scores(records: list[dict], method: str, metric: str) -> dict[int, float]:
    """Seed → score of ``method`` (finished runs only)."""
    return {r["seed"]: r[metric] for r in records if r["method"] == method and r.get(metric) is not None}


def paired_p_value(values: dict, baseline: dict) -> float:
    """Two-sided p-value of the paired t-test on the seeds both hold (NaN with fewer than two;
    0 when every per-seed difference is the same non-zero number, 1 when all are 0)."""
    from scipy import stats

    seeds = sorted(set(values) & set(baseline))
    if len(seeds) < 2:
        return float("nan")
    differences = np.array([values[seed] - baseline[seed] for seed in seeds], dtype=float)
    spread = differences.std(ddof=1)
    if spread == 0:
        return 1.0 if np.all(differences == 0) else 0.0
    t = differences.mean() / (spread / math.sqrt(len(seeds)))
    return float(2 * stats.t.sf(abs(t), len(seeds) - 1))


def compare(records: list[dict], method: str, baseline: str, metric: str) -> dict:
    """``method − baseline`` on ``metric``: difference, interval, kind, n, p, both means and medians."""
    scores, base = seed_scores(records, method, metric), seed_scores(records, baseline, metric)
    result = difference_interval(scores, base)
    median = lambda values: float(np.median(list(values))) if values else float("nan")  # noqa: E731
    return {**result, "method": method, "baseline": baseline, "metric": metric,
            "p": paired_p_value(scores, base) if result["kind"] == "paired" else float("nan"),
            "method_mean": mean_std(scores.values())[0], "baseline_mean": mean_std(base.values())[0],
            "method_median": median(scores.values()), "baseline_median": median(base.values())}


def outcome(result: dict) -> str:
    """"gain" or "loss" when the 95% interval of ``result`` (:func:`compare`) excludes 0, "none" when
    it contains 0, "open" without an interval (fewer than two paired seeds)."""
    low, high = result["low"], result["high"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return "open"
    return "gain" if low > 0 else "loss" if high < 0 else "none"


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and is left out of the
    family): the i-th smallest of m becomes max over j ≤ i of min(1, (m − j + 1) · p_(j))."""
    known = sorted((p, index) for index, p in enumerate(p_values) if np.isfinite(p))
    adjusted = [float("nan")] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[index] = running
    return adjusted


def comparisons(config: dict) -> list[tuple[str, str, str]]:
    """Every ``[method, baseline, metric]`` of the config's questions, once each, in order."""
    triples = [tuple(triple[:3]) for question in config.get("questions", []) for triple in question.get("compare", [])]
    return list(dict.fromkeys(triples))


def family(config: dict, records: list[dict]) -> dict[tuple[str, str, str], dict]:
    """Every comparison of the study (:func:`comparisons`) with its Holm-adjusted p-value
    (``p_holm``) over the whole family, and ``holm``: the outcome that survives the adjustment
    ("gain"/"loss" only when p_holm < 0.05, else "none"; "open" without a paired test)."""
    results = {triple: compare(records, *triple) for triple in comparisons(config)}
    adjusted = holm([result["p"] for result in results.values()])
    for result, p in zip(results.values(), adjusted):
        base = outcome(result)
        result["p_holm"] = p
        result["holm"] = "open" if not np.isfinite(p) else (base if p < ALPHA and base in ("gain", "loss") else "none")
    return results
