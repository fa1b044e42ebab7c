"""The sweep's report: ``OUT/README.md`` (setup, tables, warnings, methods, figures),
``OUT/summary.csv``, and :func:`results_frame`, the table the notebooks show."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .config import is_joint, method_tasks, planned_batches
from .config import method_seeds
from .outcomes import family, load_runs, markdown_table
from .questions import budget_note, floor_text, verdict, write_questions
from .replication import replication_text
from .records import busy_runs, runs_by_machine
from .stats import conflict_by_layer, summarize


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
    return (markdown_table(["method", "NER F1", "Δ NER F1 [95% CI]", "QA EM", "Δ QA EM [95% CI]", "QA F1",
                    "Δ QA F1 [95% CI]", "seeds"], quality) + "\n"
            + markdown_table(["method", "trainable parameters", "total parameters", "batches NER / QA", "training s",
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
            sharing = f"frozen encoder, LoRA r={method['lora'].get('r', 8)} per task on {lora_targets(method['lora'])}"
        elif method.get("shared_layers") is not None:
            sharing = f"bottom {method['shared_layers']} layers shared"
        else:
            sharing = "all layers shared" if len(method_tasks(method)) > 1 else "one task"
        sampling = "one batch of each task per step" if is_joint(method) else method.get("strategy", "proportional")
        sampling = sampling if len(method_tasks(method)) > 1 else "—"
        if method.get("strategy") == "temperature":
            sampling += f" (T = {method.get('temperature', 2.0)})"
        weightings = {"gradnorm": f"GradNorm (α = {method.get('alpha', 1.5)})",
                      "uncertainty": "uncertainty weighting", "pcgrad": "PCGrad gradient surgery",
                      "static": f"fixed λ = {method.get('task_weights', 1)}", None: "fixed λ = 1"}
        weighting = weightings[method.get("balancer")]
        if method.get("balancer") is None and method.get("task_weights"):
            weighting = "fixed " + ", ".join(f"λ_{task.upper()} = {value:g}" for task, value in method["task_weights"].items())
        rate = method.get("learning_rate", config["training"]["learning_rate"])
        if method.get("budget_scale", 1) != 1:
            sampling += f" — {method['budget_scale']:g} times the budget: " + " + ".join(
                f"{count:,} {task.upper()}" for task, count in planned_batches(config, method).items()) + " batches"
        lines.append(f"| {method['name']} | {' + '.join(method_tasks(method))} | {sharing} | {sampling} | "
                     f"{weighting} | {rate:g} |")
    return "\n".join(lines) + "\n"


def machines_text(records: list[dict]) -> str:
    """One line per machine the runs' seconds come from, with the CPU speed each run measured
    ("" when every run names the same one)."""
    groups = runs_by_machine(records)
    if len(groups) < 2:
        return ""
    parts = []
    for name, runs in groups.items():
        speeds = [r["cpu_gflops"] for r in runs if r.get("cpu_gflops")]
        span = f"{min(speeds):.0f}" + (f"–{max(speeds):.0f}" if round(max(speeds)) != round(min(speeds)) else "") if speeds else ""
        speed = f" ({span} GFLOP/s in a float32 matrix product)" if speeds else ""
        methods = sorted({r["method"] for r in runs})
        parts.append(f"{name}{speed}: {len(runs)} run{'s' * (len(runs) != 1)} ({', '.join(methods)})")
    return ("- Machines: the seconds come from more than one machine, so compare them only within one: "
            + "; ".join(parts) + ". Scores do not depend on the machine beyond float rounding.")


PRECISION_WORDS = {"no": "float32 throughout", "bf16": "bfloat16 autocast (weights and optimizer in float32)",
                   "fp16": "float16 autocast with loss scaling (weights and optimizer in float32)"}


def precision_text(config: dict, records: list[dict]) -> str:
    """The precision line of the setup: what the runs trained in (their records), else what the config asks."""
    found = sorted({r["precision"] for r in records if r.get("precision")})
    asked = config["training"].get("mixed_precision", "auto")
    if not found:
        return f"- Precision: `{asked}` (as the config asks; no finished run records it yet)."
    words = "; ".join(f"{PRECISION_WORDS.get(name, name)} ({sum(r.get('precision') == name for r in records)} runs)"
                      if len(found) > 1 else PRECISION_WORDS.get(name, name) for name in found)
    return (f"- Precision: {words}, in training, evaluation and latency"
            + (" — **the runs differ in precision, so their scores and seconds are not alike**." if len(found) > 1 else "."))


def lora_targets(settings: dict) -> str:
    """Plain words for the layers a LoRA method adapts (its ``target_modules``)."""
    from ..extensions.lora import DEFAULT_SETTINGS

    targets = list(settings.get("target_modules", DEFAULT_SETTINGS["target_modules"]))
    if sorted(targets) == ["query", "value"]:
        return "query, value"
    if {"query", "key", "value", "output.dense", "intermediate.dense"} <= set(targets):
        return "every linear layer"
    return ", ".join(targets)


def regime_text(config: dict, records: list[dict]) -> str:
    """A converged study's regime: data sizes, the stopping rule, what is validated and what is
    reported ("" for a fixed-budget study)."""
    rule = config["training"].get("early_stopping")
    if not rule:
        return ""
    sizes = records[0]["data"] if records else {}
    count = lambda key: f"{sizes[key]:,}" if isinstance(sizes.get(key), int) else "?"  # noqa: E731
    caps = " and ".join(f"{n:,} {task.upper()}" for task, n in config["training"]["batches"].items())
    check = config.get("convergence", {})
    return (f"- Regime: trained to convergence. Each run is evaluated on the validation split after every "
            f"{rule['every']} batches of each task it trains and stops after {rule['patience']} evaluations without "
            f"a better combined score (mean of the F1s it is scored on), at most {caps} batches; the linear schedule "
            f"spans the cap. The best evaluation's weights are scored on the **test** split: "
            f"{count('ner_test_sentences')} CoNLL-2003 test sentences and {count('qa_test_questions')} questions of "
            f"the held-out SQuAD articles. Validation: {count('ner_eval_sentences')} CoNLL-2003 validation sentences "
            f"and {count('qa_eval_questions')} questions from {config['data'].get('qa_validation_articles')} articles "
            "of the SQuAD training file that no run trains on. "
            + (f"Seed {check['seed']} of every method is also trained on to {check['factor']}x the step it stopped at "
               "(the convergence check in each question)." if check else ""))


def code_text(records: list[dict]) -> str:
    """The commits the runs ran (and whether any ran from a checkout with uncommitted changes)."""
    commits = {}
    for record in records:
        code = record.get("code") or {}
        key = (code.get("commit") or "not recorded", bool(code.get("dirty")))
        commits[key] = commits.get(key, 0) + 1
    if not commits:
        return ""
    shown = "; ".join(f"`{commit[:12]}`{' with uncommitted changes' if dirty else ''} ({n} runs)"
                      for (commit, dirty), n in commits.items())
    return f"- Code: {shown}."


def setup_text(config: dict, records: list[dict]) -> str:
    """Data sizes, budget and machine, as read from the config and the run records."""
    sizes = records[0]["data"] if records else {}
    settings, data = config["training"], config["data"]
    source = "the bundled tiny sample" if data["source"] == "tiny" else "CoNLL-2003 and SQuAD v1.1 (real data)"
    devices = sorted({f"{r['device']} (torch threads: {r['threads']})" for r in records})
    total = sum(r.get("run_seconds", 0.0) for r in records)
    count = lambda key: f"{sizes[key]:,}" if isinstance(sizes.get(key), int) else "?"  # noqa: E731
    converged = bool(settings.get("early_stopping"))
    lines = [
        f"- Data: {source}, one fixed subset for every run (data seed {data['seed']}).",
        f"  NER: {count('ner_train_sentences')} training sentences"
        + (", scored on the test split (entity-level F1)." if converged else
           f", scored on {count('ner_eval_sentences')} validation sentences (entity-level F1)."),
        f"  QA: {count('qa_train_questions')} training questions ({count('qa_train_windows')} windows)"
        + (", scored on the test split (SQuAD EM / F1)." if converged else
           f", scored on {count('qa_eval_questions')} held-out questions (SQuAD EM / F1)."),
        regime_text(config, records) or budget_text(settings),
        f"- Encoder `{config['encoder']}`; learning rate {settings['learning_rate']:g} (unless the method sets "
        f"its own), {settings['warmup_ratio']:.0%} warm-up then linear decay, AdamW; windows of "
        f"{config['preprocessing']['qa_max_length']} tokens, stride {config['preprocessing']['doc_stride']}.",
        precision_text(config, records),
        machines_text(records),
        code_text(records),
        f"- Seeds: {', '.join(map(str, config['seeds']))}{seed_exceptions(config)}. Device: {', '.join(devices) or '?'}. The "
        f"{len(records)} runs took {total / 60:.1f} minutes in all (training, evaluation and measurement; "
        "not counting each process's start).",
        f"- Gradient-conflict probe {config['probe']['count']} times per run, evenly over its steps, on a fixed "
        f"batch of {config['probe']['batch_size']} training examples per task (not counted as training time).",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def seed_exceptions(config: dict) -> str:
    """" (name: seeds ...)" for the methods that run other seeds than the config's."""
    other = [f"{m['name']}: {', '.join(map(str, m['seeds']))}" for m in config["methods"] if "seeds" in m]
    return f" (except {'; '.join(other)})" if other else ""


def questions_index(out_dir: Path, config: dict, records: list[dict]) -> str:
    """Write each question's report (``questions.write_questions``) and list them with their
    conclusions ("" for a config without questions)."""
    written = write_questions(out_dir, config, records)
    if not written:
        return ""
    results = family(config, records)
    lines = ["## Questions\n", floor_text(config, records), holm_text(results)]
    for question, path in written:
        lines.append(f"**[{question['title']}]({path.relative_to(out_dir).as_posix()})**\n")
        lines += [f"- {verdict(results[tuple(triple[:3])], budget_note(config, *triple[:2]))}"
                  for triple in question.get("compare", [])]
        lines.append("")
    return "\n".join(lines) + "\n"


def holm_text(results: dict) -> str:
    """How many of the study's comparisons exclude 0 at 95%, and how many survive Holm's adjustment."""
    tested = [result for result in results.values() if result.get("p_holm") == result.get("p_holm")]
    if not tested:
        return ""
    plain = sum(result["low"] > 0 or result["high"] < 0 for result in tested)
    kept = sum(result["holm"] in ("gain", "loss") for result in tested)
    return (f"**Multiple comparisons.** The study makes {len(tested)} paired comparisons at 95%; {plain} of them "
            f"exclude 0, and {kept} still do after Holm's step-down adjustment over all {len(tested)} (which keeps the "
            "chance of any false claim in the family at 5%). Each verdict below gives its Holm-adjusted p-value; one "
            "that does not survive is marked.\n")


def budget_text(settings: dict) -> str:
    """The budget line of the setup (``training.batches`` or ``training.steps``; see ``config``)."""
    if settings.get("batches"):
        size = settings["batch_size"]
        counts = " and ".join(f"{count:,} {task.upper()} batches of {size[task] if isinstance(size, dict) else size}"
                              for task, count in settings["batches"].items())
        return (f"- Budget: every run processes exactly {counts} for the tasks "
                "it trains, whatever its data size (fewer sentences means more passes). Multi-task runs interleave "
                "them in proportion, one task per optimizer step; joint methods (GradNorm, uncertainty weighting, "
                "fixed weights with `\"joint\": true`) take one batch of each task per step, so they make half as "
                "many optimizer steps.")
    return (f"- Budget: {settings['steps']:,} batches of {settings['batch_size']} per run. Multi-task runs draw them "
            "from both tasks; GradNorm, uncertainty weighting and PCGrad take one batch of each task per step (half "
            "the steps); a single-task run gets its task's share of the batches under proportional sampling.")


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
    figures = save_figures(records, summary, out_dir)
    sweep = json.loads((out_dir / "sweep.json").read_text()) if (out_dir / "sweep.json").exists() else {}
    commands = list(dict.fromkeys(entry["command"] for entry in sweep.get("commands", [])))
    made_by = " and ".join(f"`{command}`" for command in commands) or "an unrecorded command"
    expected = {(m["name"], seed) for m in config["methods"] for seed in method_seeds(config, m)}
    missing = sorted(expected - {(r["method"], r["seed"]) for r in records})
    parts = [
        f"# Experiments: {config['name']}\n",
        f"Generated by `python -m nerqa_helpers.experiments report {out_dir.as_posix()}` from the {len(records)} "
        "run files in `runs/` (do not edit by hand; rerun the command).",
        f"The runs were made by {made_by} with the settings in `config.json`.\n",
        questions_index(out_dir, config, records),
        replication_text(out_dir, config, records),
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



FIGURES = {  # file name: title
    "f1_by_method.png": "F1 by method (mean ± std over seeds; dots are single seeds)",
    "task_weights.png": "Task weights over training (GradNorm, uncertainty weighting)",
    "gradient_conflict.png": "Gradient conflict: cosine between the tasks' gradients per shared layer",
}


def save_figures(records: list[dict], summary: pd.DataFrame, out_dir: Path) -> list[tuple[str, str]]:
    """Save the report's PNGs into ``out_dir``; returns (file name, title) of each one written."""
    from .. import plots  # matplotlib only when a report is written, not in every run's process

    figures = {"f1_by_method.png": plots.plot_method_scores(records, summary) if len(summary) else None,
               "task_weights.png": plots.plot_weight_curves(records),
               "gradient_conflict.png": plots.plot_conflict_by_layer(conflict_by_layer(records))}
    written = []
    for name, figure in figures.items():
        if figure is not None:
            figure.savefig(out_dir / name, dpi=110)
            written.append((name, FIGURES[name]))
    return written
