"""Do a study's conclusions hold when it is run again another way (another precision, another machine)?

A config may name a ``reference``: another report of the same study (same data, budget, methods and
seeds), e.g. ``{"report": "../experiments-cpu", "label": "float32"}`` with ``report`` relative to
this report's folder. The report then gets a section that sets every comparison of its questions
beside the reference's — difference, interval and verdict in each — and each method's scores and
training seconds in both. A finding holds when both runs of the study reach the same verdict.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import METRICS
from .outcomes import compare, comparisons, load_runs, markdown_table, outcome
from .records import runs_by_machine

OUTCOMES = {"gain": "gain", "loss": "loss", "none": "no difference shown", "open": "not enough runs"}


def reference_records(out_dir: str | Path, config: dict) -> tuple[Path, list[dict]] | None:
    """The reference report's folder and its finished runs (None when the config names no reference)."""
    settings = config.get("reference")
    if not settings:
        return None
    folder = (Path(out_dir) / settings["report"]).resolve()
    if not (folder / "runs").is_dir():
        raise FileNotFoundError(f"The reference report {folder} has no runs/ folder; check 'reference' in the config.")
    return folder, load_runs(folder)


def verdict_rows(config: dict, records: list[dict], reference: list[dict]) -> list[dict]:
    """One row per comparison: the difference, interval and outcome in this study and in the reference."""
    rows = []
    for method, baseline, metric in comparisons(config):
        here, there = compare(records, method, baseline, metric), compare(reference, method, baseline, metric)
        rows.append({"method": method, "baseline": baseline, "metric": metric, "here": here, "there": there,
                     "outcome_here": outcome(here), "outcome_there": outcome(there)})
    return rows


def _difference(result: dict) -> str:
    if not np.isfinite(result["difference"]):
        return "—"
    interval = f" [{result['low']:+.2f}, {result['high']:+.2f}]" if np.isfinite(result["low"]) else ""
    return f"{result['difference']:+.2f}{interval}"


def _mean(records: list[dict], method: str, key: str) -> float:
    values = [r[key] for r in records if r["method"] == method and r.get(key) is not None]
    return float(np.mean(values)) if values else float("nan")


def method_rows(config: dict, records: list[dict], reference: list[dict]) -> list[list[str]]:
    """Per method: mean NER F1, QA F1 and training seconds here and in the reference."""
    rows = []
    for method in (m["name"] for m in config["methods"]):
        cells = [method]
        for key, digits in (("ner_f1", 2), ("qa_f1", 2), ("train_seconds", 0)):
            here, there = _mean(records, method, key), _mean(reference, method, key)
            cells.append(" / ".join(f"{value:.{digits}f}" if np.isfinite(value) else "—" for value in (here, there)))
        here, there = _mean(records, method, "train_seconds"), _mean(reference, method, "train_seconds")
        cells.append(f"{here / there:.2f}" if np.isfinite(here) and np.isfinite(there) and there > 0 else "—")
        rows.append(cells)
    return rows


def replication_text(out_dir: str | Path, config: dict, records: list[dict]) -> str:
    """The report's section on the reference study ("" when the config names none)."""
    found = reference_records(out_dir, config)
    if found is None:
        return ""
    reference = found[1]
    label = config["reference"].get("label", "the reference")
    link = Path(config["reference"]["report"]).as_posix()
    rows = verdict_rows(config, records, reference)
    decided = [row for row in rows if "open" not in (row["outcome_here"], row["outcome_there"])]
    same = [row for row in decided if row["outcome_here"] == row["outcome_there"]]
    table = markdown_table(
        ["comparison", "metric", "Δ here [95% CI]", f"Δ {label} [95% CI]", "verdict here", f"verdict {label}", "same?"],
        [[f"{row['method']} − {row['baseline']}", METRICS[row["metric"]], _difference(row["here"]),
          _difference(row["there"]), OUTCOMES[row["outcome_here"]], OUTCOMES[row["outcome_there"]],
          "yes" if row in same else "**no**" if row in decided else "—"]
         for row in rows])
    differ = [f"{row['method']} − {row['baseline']} on {METRICS[row['metric']]}" for row in decided if row not in same]
    summary = (f"{len(same)} of {len(decided)} comparisons reach the same verdict in both"
               + (f"; they differ on {', '.join(differ)}." if differ else ".")
               + (f" {len(rows) - len(decided)} cannot be compared yet (runs missing)." if len(rows) > len(decided) else ""))
    machines = lambda runs: ", ".join(runs_by_machine(runs)) or "?"  # noqa: E731
    total = lambda runs: sum(r.get("run_seconds", 0.0) for r in runs) / 3600  # noqa: E731
    return "\n".join([
        f"## Against the {label} study\n",
        f"The same study run as [{link}]({link}/README.md): same data, budget, methods, seeds and questions. "
        f"A conclusion holds when both reach the same verdict. {summary}\n",
        table,
        "Per method, mean over seeds (here / " + label + "); the seconds ratio compares machines too, so it "
        "measures the precision only where both ran on the same kind of CPU.\n",
        markdown_table(["method", "NER F1", "QA F1", "training s", "seconds ratio"], method_rows(config, records, reference)),
        f"Runs: {len(records)} here ({total(records):.2f} h of run time; {machines(records)}), {len(reference)} "
        f"in {label} ({total(reference):.2f} h; {machines(reference)}).\n",
    ])
