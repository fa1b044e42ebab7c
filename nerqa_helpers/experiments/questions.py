"""The study's questions, one report each: ``OUT/<question id>/README.md`` with a table, a figure
and a plain-language conclusion that says what the intervals allow one to claim and what not.

A config's ``questions`` list names, per question, its ``methods`` (the table's rows, in order) and
``compare``: ``[method, baseline, metric]`` triples, each reported as the mean difference with a
95% t-interval over the paired seeds (:func:`stats.difference_interval`). Everything is read from
the run JSON files; nothing here trains.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .config import METRICS
from .outcomes import compare, family, load_runs, markdown_table, outcome, seed_scores
from .records import busy_runs, runs_by_machine
from .stats import mean_std


def caveat(seeds: int, converged: bool = False) -> str:
    """What runs with ``seeds`` seeds per method cannot show."""
    limits = ("What these runs cannot show: whether the same holds with more data, another encoder or learning rate"
              + ("." if converged else ", or at another budget: every method stopped at a fixed number of batches, "
                 "not at its plateau."))
    if seeds < 2:
        return (limits + " One seed gives no interval at all: seed-to-seed spread is several points "
                "(QA more than NER), so only a large difference says more than which way the runs went.")
    from scipy import stats

    return (limits + f" {seeds} seeds give wide intervals (paired t with {seeds - 1} degrees of freedom: "
            f"{stats.t.ppf(0.975, seeds - 1):.2f} standard errors each side), so a small real effect can hide inside "
            "one that contains 0.")


def verdict(result: dict, budgets: str = "") -> str:
    """One plain sentence on a comparison: what its interval allows one to claim. With ``p_holm``
    (:func:`outcomes.family`) it adds whether the claim survives Holm's adjustment over the study's
    comparisons; ``budgets`` (:func:`budget_note`) says when the two methods had different budgets."""
    label, method, baseline = METRICS[result["metric"]], result["method"], result["baseline"]
    difference, low, high = result["difference"], result["low"], result["high"]
    if not np.isfinite(difference):
        return f"{method} vs {baseline} on {label}: not enough finished runs yet."
    figures = (f"{label} {result['method_mean']:.2f} vs {result['baseline_mean']:.2f}, difference "
               f"{difference:+.2f}{budgets}")
    if not np.isfinite(low):
        return f"{method} vs {baseline}: {figures} from {result['n']} seed(s); no interval with fewer than two seeds."
    interval = f"95% CI {low:+.2f} to {high:+.2f}, {result['kind']} over {result['n']} seeds"
    if outcome(result) == "gain":
        text = (f"**{method} beats {baseline}** ({figures}; {interval}): the interval excludes 0, so the gain is "
                f"real for this data and budget; its size is anywhere from {low:.2f} to {high:.2f} points.")
    elif outcome(result) == "loss":
        text = (f"**{method} is worse than {baseline}** ({figures}; {interval}): the interval excludes 0, so the "
                f"loss is real for this data and budget; its size is anywhere from {-high:.2f} to {-low:.2f} points.")
    else:
        text = (f"**No difference shown** between {method} and {baseline} ({figures}; {interval}): the interval "
                f"contains 0. The runs rule out a gain above {high:.2f} or a loss beyond {-low:.2f} points, "
                "nothing finer.")
    return text + holm_note(result)


def holm_note(result: dict) -> str:
    """" After Holm's adjustment ... " for a result of :func:`outcomes.family` ("" otherwise)."""
    if "p_holm" not in result or not np.isfinite(result.get("p_holm", float("nan"))):
        return ""
    holds = outcome(result) in ("gain", "loss")
    if not holds:
        return f" (Holm-adjusted p = {result['p_holm']:.3f}.)"
    kept = result["holm"] == outcome(result)
    return (f" Holm-adjusted over the study's comparisons: p = {result['p_holm']:.3f}, "
            + ("so it holds for the whole family." if kept else "so **it does not survive** the adjustment "
               "for multiple comparisons: treat it as a lead, not a finding."))


def budget_note(config: dict, method: str, baseline: str) -> str:
    """", at different budgets (...)" when two methods of a fixed-budget study process different
    numbers of batches (``budget_scale``); "" when they match. In a converged study every run stops
    at its own plateau, which the study's setup says once."""
    from .config import find_method, planned_batches

    if config["training"].get("early_stopping") or not config["training"].get("batches"):
        return ""
    scale = {name: find_method(config, name).get("budget_scale", 1) for name in (method, baseline)}
    if scale[method] == scale[baseline]:
        return ""
    batches = {name: planned_batches(config, find_method(config, name)) for name in (method, baseline)}
    shown = lambda name: " + ".join(f"{count} {task.upper()}" for task, count in batches[name].items())  # noqa: E731
    return (f", **at different budgets**: {method} {shown(method)} batches ({scale[method]}x), {baseline} "
            f"{shown(baseline)} ({scale[baseline]}x)")


def _cell(records: list[dict], method: str, key: str, digits: int = 2) -> str:
    values = [r.get(key) for r in records if r["method"] == method and r.get(key) is not None]
    mean, std = mean_std(values)
    if not np.isfinite(mean):
        return ""
    text = f"{mean:,.{digits}f} ± {std:,.{digits}f}" if np.isfinite(std) else f"{mean:,.{digits}f}"
    median = float(np.median(values))
    return text + (f" ({median:,.{digits}f})" if len(values) > 2 and abs(median - mean) > 1 else "")


def end_loss(record: dict, task: str, share: float = 0.1) -> float | None:
    """Mean training loss of ``task`` over the last ``share`` of a run's loss curve (at least 3
    logged points); None when the run did not train the task."""
    curve = record.get("loss_curve", {}).get(task) or []
    if not curve:
        return None
    tail = curve[-max(3, round(share * len(curve))):]
    return float(np.mean([loss for _, loss in tail]))


TRAINING_STATE_BYTES = 12
"""Per trainable float32 parameter: its gradient (4 bytes) and AdamW's two moments (8 bytes)."""


def convergence_table(records: list[dict], methods: list[str]) -> str:
    """How far each method's training got: the tasks' losses at the end (mean ± std over seeds),
    and the memory its trainable parameters need for gradients and AdamW's state."""
    rows = []
    for method in methods:
        runs = [r for r in records if r["method"] == method]
        losses = {task: mean_std([loss for loss in (end_loss(r, task) for r in runs) if loss is not None])
                  for task in ("ner", "qa")}
        trainable = runs[0].get("trainable_parameters") if runs else None
        rows.append([method, *(f"{mean:.3f} ± {std:.3f}" if np.isfinite(std) else
                               (f"{mean:.3f}" if np.isfinite(mean) else "") for mean, std in losses.values()),
                     " + ".join(f"{count:,} {task.upper()}" for task, count in sorted(runs[0].get("batches", {}).items()))
                     if runs else "",
                     f"{trainable * TRAINING_STATE_BYTES / 2**20:,.1f}" if trainable else ""])
    return markdown_table(["method", "NER loss, last 10%", "QA loss, last 10%", "batches",
                           "gradients + AdamW MiB"], rows)


def question_table(records: list[dict], methods: list[str]) -> str:
    """Scores (mean ± std over seeds), NER sentences, parameters, seconds and latency per method."""
    rows = []
    for method in methods:
        runs = [r for r in records if r["method"] == method]
        first = runs[0] if runs else {}
        latency = lambda task: _mean_of([r["latency"][task]["median_ms"] for r in runs if task in r.get("latency", {})])  # noqa: E731
        rows.append([method, _cell(records, method, "ner_f1"), _cell(records, method, "qa_exact_match"),
                     _cell(records, method, "qa_f1"), _count(first.get("data", {}).get("method_ner_train_sentences")),
                     _count(first.get("trainable_parameters")), _count(first.get("total_parameters")),
                     _cell(records, method, "train_seconds", 0), _cell(records, method, "peak_memory_mib", 0),
                     latency("ner"), latency("qa"), str(len(runs))])
    return markdown_table(["method", "NER F1", "QA EM", "QA F1", "NER sentences", "trainable params", "total params",
                   "training s", "peak MiB", "NER ms", "QA ms", "seeds"], rows)


def _mean_of(values: list[float]) -> str:
    return f"{np.mean(values):.1f}" if values else ""


def _count(value) -> str:
    return f"{int(value):,}" if value is not None else ""


def write_question(out_dir: Path, config: dict, question: dict, records: list[dict], results: dict | None = None) -> Path:
    """Write ``OUT/<id>/README.md`` (and its figure) for one question; returns the path.

    ``results``: the study's comparisons with their Holm adjustment (:func:`outcomes.family`)."""
    from .config import find_method, method_seeds

    folder = out_dir / question["id"]
    folder.mkdir(parents=True, exist_ok=True)
    results = results if results is not None else family(config, records)
    triples = [tuple(triple[:3]) for triple in question.get("compare", [])]
    found = [results.get(triple) or compare(records, *triple) for triple in triples]
    figure = draw_figure(question, records, folder)
    expected = {(m, s) for m in question["methods"] for s in method_seeds(config, find_method(config, m))}
    missing = sorted(expected - {(r["method"], r["seed"]) for r in records})
    seeds = min((len(method_seeds(config, find_method(config, m))) for triple in triples for m in triple[:2]),
                default=len(config["seeds"]))
    parts = [f"# {question['title']}\n",
             f"Part of the study in [`../README.md`](../README.md); generated by "
             f"`python -m nerqa_helpers.experiments report {out_dir.as_posix()}` from the run files.\n",
             question.get("setup", "") + "\n" if question.get("setup") else "",
             "## Conclusion\n",
             "\n".join(f"- {verdict(result, budget_note(config, *triple[:2]))}" for result, triple in zip(found, triples)) + "\n",
             caveat(seeds, converged=bool(config["training"].get("early_stopping"))) + "\n",
             collapse_text(records, question["methods"]),
             "## Runs\n", question_table(records, question["methods"]),
             "Mean ± standard deviation over seeds, and the median in brackets where it differs from the mean by more "
             "than a point. Latency: median of a batch-1 forward pass, one CPU thread.\n",
             stopping_table(out_dir, records, question["methods"])]
    if question.get("figure") == "loss_curves":
        parts += ["### Did training converge?\n", convergence_table(records, question["methods"]),
                  "Training loss over the last 10% of each run's logged steps (mean ± std over seeds): a method "
                  "whose loss ends well above another's on the same batches has not finished learning. Peak MiB "
                  "above is the whole process (data, activations, tokenizer); the last column is what the "
                  "trainable parameters alone add: a float32 gradient and AdamW's two moments each.\n"]
    busy = busy_runs([r for r in records if r["method"] in question["methods"]])
    if busy:
        parts.append("**Timing:** " + ", ".join(f"{r['method']} seed {r['seed']}" for r in busy) + " shared the machine "
                     "with other programs; their seconds and latencies are too high (scores are not affected).\n")
    machines = runs_by_machine([r for r in records if r["method"] in question["methods"]])
    if len(machines) > 1:
        parts.append("**Timing:** these runs' seconds come from different machines, so compare them only within "
                     "one: " + "; ".join(f"{', '.join(sorted({r['method'] for r in runs}))} on {name}"
                                         for name, runs in machines.items()) + " (scores are not affected).\n")
    if figure:
        parts.append(f"![{question['title']}]({figure})\n")
    parts.append(literature_text(question, results, records))
    if missing:
        parts.append("**Missing runs** (the conclusion covers only what is finished): "
                     + ", ".join(f"{m} seed {s}" for m, s in missing) + "\n")
    path = folder / "README.md"
    path.write_text("\n".join(part for part in parts if part))
    return path


def collapse_text(records: list[dict], methods: list[str], gap: float = 10.0) -> str:
    """A paragraph on runs whose QA F1 falls more than ``gap`` points below their method's median
    (a collapsed seed), naming each, and what such a seed does to a t interval ("" when none)."""
    low = []
    for method in methods:
        scores = seed_scores(records, method, "qa_f1")
        if len(scores) < 3:
            continue
        middle = float(np.median(list(scores.values())))
        low += [(method, seed, score, middle) for seed, score in scores.items() if score < middle - gap]
    if not low:
        return ""
    names = "; ".join(f"{method} seed {seed}: QA F1 {score:.1f} (median {middle:.1f})" for method, seed, score, middle in low)
    return (f"**Collapsed seeds.** {names}. Each is kept (its loss curve is in its run file and in the figures). One "
            "such seed moves a mean by a fifth of the gap with five seeds, and widens a paired t interval for every "
            "comparison it enters: the differences become bimodal, their standard deviation large, and the interval "
            "then says more about that seed than about the methods. Read the medians beside the means.\n")


def stopping_table(out_dir: Path, records: list[dict], methods: list[str]) -> str:
    """Where a converged study's runs stopped (best and last step, of a cap) and the convergence
    check of the methods here (``convergence/*.json``: 1.5x longer training, change in test F1);
    "" for a fixed-budget study."""
    stopped = [r for r in records if r["method"] in methods and r.get("step_cap") is not None]
    if not stopped:
        return ""
    checks = {}
    for path in sorted((Path(out_dir) / "convergence").glob("*.json")):
        check = json.loads(path.read_text())
        checks[check["method"]] = check
    rows = []
    for method in methods:
        runs = [r for r in stopped if r["method"] == method]
        if not runs:
            continue
        check = checks.get(method)
        rows.append([method, _mean_of([r["best_step"] for r in runs]), _mean_of([r["steps"] for r in runs]),
                     str(runs[0]["step_cap"]), f"{sum(not r['stopped_early'] for r in runs)} of {len(runs)}",
                     *check_cells(check)])
    return ("### Where the runs stopped, and did they converge?\n\n"
            + markdown_table(["method", "best step (mean)", "stopped at (mean)", "step cap", "reached the cap",
                              "check: steps", "Δ NER F1", "Δ QA F1", "converged?"], rows)
            + "The check trains one seed of each method on from where it stopped, without early stopping, to 1.5 "
              "times as many steps or to the step cap, whichever comes first (the steps column says how far), and scores its last weights on the test split: a change under 1 F1 in every "
              "task counts as converged. A run that reached its step cap has no schedule left to extend and is "
              "marked, not hidden.\n")


def check_cells(check: dict | None) -> list[str]:
    """The convergence-check cells of one method: steps, change in NER F1 and QA F1, verdict."""
    if check is None:
        return ["not run yet", "", "", ""]
    change = lambda task: check.get(f"{task}_f1_change")  # noqa: E731
    shown = lambda value: f"{value:+.2f}" if value is not None else ""  # noqa: E731
    if check.get("at_cap"):
        return [f"{check['stopped_at']} (at the cap)", "", "", "**no: reached the step cap**"]
    changes = [abs(value) for value in (change("ner"), change("qa")) if value is not None]
    ok = all(value < 1.0 for value in changes)
    return [f"{check['stopped_at']} → {check['extended_to']}", shown(change("ner")), shown(change("qa")),
            "yes" if ok else f"**no: changed by {max(changes):.2f}**"]


LITERATURE_OUTCOME = {  # (what the paper leads one to expect, what the interval shows) -> the reading
    ("better", "gain"): "agrees", ("better", "loss"): "disagrees", ("better", "none"): "does not confirm it",
    ("not better", "gain"): "disagrees", ("not better", "loss"): "agrees", ("not better", "none"): "agrees",
}


def literature_text(question: dict, results: dict, records: list[dict]) -> str:
    """The question's verdicts beside the papers it touches (``question["literature"]``: cite, claim,
    the comparison that tests it, what the paper leads one to expect, and a note on how comparable
    the settings are), each reading generated from the comparison's interval."""
    entries = question.get("literature", [])
    if not entries:
        return ""
    lines = ["## Beside the literature\n"]
    for entry in entries:
        triple = tuple(entry["compare"])
        result = results.get(triple) or compare(records, *triple)
        seen = outcome(result)
        if seen == "open":
            reading = "not enough finished runs yet to say"
        else:
            reading = (f"this study {LITERATURE_OUTCOME[(entry['expects'], seen)]} ({triple[0]} vs {triple[1]}, "
                       f"{METRICS[triple[2]]} {result['difference']:+.2f} [{result['low']:+.2f}, {result['high']:+.2f}])")
        lines.append(f"- **{entry['cite']}**: {entry['claim']}; {reading}. {entry.get('note', '')}")
    return "\n".join(lines) + "\n"


def draw_figure(question: dict, records: list[dict], folder: Path) -> str | None:
    """Save the question's figure (``question["figure"]``: scores, learning_curve, weights,
    sharing, loss_curves) as ``figure.png`` in ``folder``; returns its file name or None."""
    from .. import plots

    runs = [r for r in records if r["method"] in question["methods"]]
    if not runs:
        return None
    kind = question.get("figure", "scores")
    if kind == "learning_curve":
        figure = plots.plot_learning_curve(runs, question["curves"])
    elif kind == "weights":
        figure = plots.plot_weight_curves(runs)
    elif kind == "loss_curves":
        figure = plots.plot_run_losses(runs, question["methods"])
    else:
        figure = plots.plot_seed_scores(runs, question["methods"])
    if figure is None:
        return None
    figure.savefig(folder / "figure.png", dpi=110)
    return "figure.png"


def write_questions(out_dir: str | os.PathLike, config: dict, records: list[dict]) -> list[tuple[dict, Path]]:
    """Every question's report; returns (question, path) pairs for the study's index."""
    out_dir, results = Path(out_dir), family(config, records)
    return [(question, write_question(out_dir, config, question, records, results)) for question in config.get("questions", [])]


def question_results(out_dir: str | os.PathLike, question_id: str):
    """For a notebook: one question of a committed study as ``(table, conclusions, figure path)``.

    table: a DataFrame, one row per method (scores as mean ± std over seeds, parameters, seconds,
    seeds); conclusions: the report's sentences (Markdown); figure: the question's PNG or None.
    Returns ``None`` (and says how to make one) when the study has not been run."""
    import json

    import pandas as pd

    out_dir = Path(out_dir)
    if not (out_dir / "config.json").is_file():
        print(f"No study in {out_dir}: `make experiments` runs it (hours on 2 CPU cores: experiments/README.md has the times).")
        return None
    config = json.loads((out_dir / "config.json").read_text())
    question = next((q for q in config.get("questions", []) if q["id"] == question_id), None)
    if question is None:
        raise ValueError(f"{out_dir} has no question {question_id!r}; it has {[q['id'] for q in config.get('questions', [])]}")
    records = load_runs(out_dir)
    rows = {method: {"NER F1": _cell(records, method, "ner_f1"), "QA EM": _cell(records, method, "qa_exact_match"),
                     "QA F1": _cell(records, method, "qa_f1"),
                     "trainable parameters": _count(next((r["trainable_parameters"] for r in records if r["method"] == method), None)),
                     "training s": _cell(records, method, "train_seconds", 0),
                     "seeds": sum(r["method"] == method for r in records)} for method in question["methods"]}
    conclusions = [verdict(compare(records, *triple)) for triple in question.get("compare", [])]
    figure = out_dir / question["id"] / "figure.png"
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method"), conclusions, figure if figure.exists() else None


def show_question(out_dir: str | os.PathLike, question_id: str):
    """Display one question of a committed study in a notebook (table, conclusions, figure) and
    return its table; ``None`` when the study has not been run (see :func:`question_results`)."""
    from IPython.display import Image, Markdown, display

    found = question_results(out_dir, question_id)
    if found is None:
        return None
    table, conclusions, figure = found
    display(table, Markdown("\n".join(f"- {line}" for line in conclusions)))
    if figure is not None:
        display(Image(figure))
    return table


def floor_text(config: dict, records: list[dict]) -> str:
    """Whether the baselines learned: each ``config["floor"]`` entry ``{method: {metric: least}}``
    against the method's mean over its finished seeds ("" for a config without a floor)."""
    lines = []
    for method, least in config.get("floor", {}).items():
        for metric, bound in least.items():
            mean = mean_std(seed_scores(records, method, metric).values())[0]
            state = "not run yet" if not np.isfinite(mean) else ("met" if mean >= bound else "**NOT met**")
            shown = f"{mean:.2f}" if np.isfinite(mean) else "—"
            lines.append(f"{method} {METRICS[metric]} {shown} (floor {bound}): {state}")
    return ("**Floor** (mean over seeds; below it the budget is too small for the questions to mean anything): "
            + "; ".join(lines) + ".\n") if lines else ""
