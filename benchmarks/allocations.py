"""Quality per CPU minute: the default run (`make run`, the ``small`` preset) under a few allocations.

An allocation is a ``presets.Preset``: NER sentences x epochs, QA questions x epochs, learning
rate, batch size and QA window, trained in float32 or, on a CPU with bfloat16 instructions, in
bfloat16 (``precision``; rows named ``...-bf16``). Each one is trained by the same code as ``nerqa train`` (the
script registers it as a preset and calls the command line in this process), on real data, and
scored as ``make run`` scores: NER F1 on the full CoNLL-2003 test set, QA EM/F1 on the held-out
SQuAD questions. One JSON line per allocation goes to ``OUT/runs.jsonl`` (a rerun skips finished
allocations; ``--only`` picks some), then ``OUT/README.md`` is written from those lines.

    python benchmarks/allocations.py --data-dir ../shared/data --out reports/allocations
    python benchmarks/allocations.py --report reports/allocations      # the table only

Measure on an idle machine: the load average before and after each run is recorded, and the table
marks runs that shared the cores with other programs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from nerqa_helpers.machine import cpu_speed
from nerqa_helpers.presets import PRESETS, Preset

OLD_SMALL = Preset("old-small", ner_train=2000, qa_train=2000, ner_eval=500, qa_eval=500,
                   task_epochs={"ner": 3.0, "qa": 1.5}, batch_size=16, learning_rate=2e-4)
"""The ``small`` preset before this table: a seventh of the NER data, three passes over it."""


PRECISION: dict[str, str] = {}
"""The rows trained in bfloat16 ("bf16"); every other row trains in float32 ("no")."""


def allocation(name: str, ner_train, qa_train, ner_epochs=1.0, qa_epochs=1.0, precision="no", **fields) -> Preset:
    """A preset for one row: OLD_SMALL's evaluation sizes with the given data, epochs and settings;
    ``precision`` ("no" or "bf16") is noted in :data:`PRECISION`."""
    if precision != "no":
        PRECISION[name] = precision
    return replace(OLD_SMALL, name=name, ner_train=ner_train, qa_train=qa_train,
                   task_epochs={"ner": ner_epochs, "qa": qa_epochs}, **fields)


ALLOCATIONS = {preset.name: preset for preset in (
    OLD_SMALL,
    allocation("ner-all-qa2000", None, 2000),
    allocation("ner-all-qa2500-w256", None, 2500, qa_max_length=256, doc_stride=96),
    allocation("ner-all-qa5000-w256", None, 5000, qa_max_length=256, doc_stride=96),
    allocation("ner-all-qa2500x2-w256", None, 2500, qa_epochs=2.0, qa_max_length=256, doc_stride=96),
    allocation("ner-all-qa4000-w256", None, 4000, qa_max_length=256, doc_stride=96),
    allocation("ner-all-qa5000-w256-lr3e-4", None, 5000, learning_rate=3e-4, qa_max_length=256, doc_stride=96),
    allocation("ner-all-qa4000-w256-bf16", None, 4000, precision="bf16", qa_max_length=256, doc_stride=96),
    allocation("ner-all-qa5000-w256-bf16", None, 5000, precision="bf16", qa_max_length=256, doc_stride=96),
)}
"""Every allocation the table may hold, by name (``None`` = all of a task's training data)."""

MEASURED = ("steps", "train_seconds", "ner_f1", "test_ner_f1", "qa_exact_match", "qa_f1")


def load_average() -> float:
    """The 1-minute load average: above about 2 on two cores, other programs shared them."""
    return os.getloadavg()[0]


def run_allocation(preset: Preset, data_dir: str, out: Path, runs: Path, seed: int = 0) -> dict:
    """Train and score one allocation with ``nerqa train`` (model in ``runs/<name>``); returns its
    record, also appended to ``out/runs.jsonl``. A bfloat16 row needs a CPU with bfloat16
    instructions (``precision.cpu_has_native_bf16``): elsewhere its times would not say what the
    policy's bf16 costs."""
    from nerqa_helpers import cli
    from nerqa_helpers.precision import cpu_has_native_bf16

    precision = PRECISION.get(preset.name, "no")
    if precision == "bf16" and not cpu_has_native_bf16():
        raise SystemExit(f"allocation {preset.name} trains in bfloat16; this CPU has no bfloat16 instructions")
    PRESETS[preset.name] = preset  # the command line's --preset choices are read when its parser is built
    run_dir = runs / preset.name
    speed = cpu_speed()
    started, load_before = time.perf_counter(), load_average()
    code = cli.main(["train", "--preset", preset.name, "--data-dir", str(data_dir), "--output-dir", str(run_dir),
                     "--seed", str(seed), "--mixed-precision", precision, "--quiet"])
    if code != 0:
        raise SystemExit(f"allocation {preset.name} failed (exit {code}); see the lines above")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = {"name": preset.name, "ner_train": preset.ner_train, "qa_train": preset.qa_train,
              **{f"{task}_epochs": preset.task_epochs[task] for task in ("ner", "qa")},
              "learning_rate": preset.learning_rate, "batch_size": preset.batch_size,
              "qa_max_length": preset.qa_max_length, "doc_stride": preset.doc_stride, "precision": precision,
              "seed": seed,
              **{key: round(float(metrics[key]), 2) for key in MEASURED},
              "wall_seconds": round(time.perf_counter() - started, 1),
              "load_before": round(load_before, 2), "load_after": round(load_average(), 2),
              "cpu_gflops": round(speed)}
    with open(out / "runs.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return record


def read_records(out: Path) -> list[dict]:
    """Every finished allocation's record, in the order of ALLOCATIONS; a later line for a name wins."""
    path = out / "runs.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    records = {record["name"]: record for record in map(json.loads, filter(str.strip, lines))}
    order = list(ALLOCATIONS)
    return sorted(records.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))


def _size(value) -> str:
    return "all" if value is None else f"{value:,}"


def table_row(r: dict) -> str:
    """One Markdown row; a run that shared the cores (load above 2.2) has its times marked with *."""
    busy = "*" if max(r["load_before"], r["load_after"]) > 2.2 else ""
    return (f"| {r['name']} | {_size(r['ner_train'])} x {r['ner_epochs']:g} | {_size(r['qa_train'])} x "
            f"{r['qa_epochs']:g} | {r['learning_rate']:g} | {r['batch_size']} | {r['qa_max_length']}/{r['doc_stride']} "
            f"| {'bf16' if r.get('precision') == 'bf16' else 'fp32'} "
            f"| {r['steps']:.0f} | {r['train_seconds']:.0f}{busy} | {r['wall_seconds']:.0f}{busy} | "
            f"{r['load_before']:.1f}/{r['load_after']:.1f} | {r.get('cpu_gflops', '—')} | {r['ner_f1']:.2f} | {r['test_ner_f1']:.2f} | "
            f"{r['qa_exact_match']:.2f} | {r['qa_f1']:.2f} |")


def write_report(out: Path) -> Path:
    """``out/README.md``: the allocation table, generated from ``out/runs.jsonl``."""
    rows = ["| allocation | NER sentences x epochs | QA questions x epochs | lr | batch | QA window/stride | precision "
            "| steps | training s | wall s | load before/after | CPU GFLOP/s | NER val F1 | NER test F1 (all 3,453) "
            "| QA EM | QA F1 |",
            "| --- | --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rows += [table_row(record) for record in read_records(out)]
    text = ("# Allocations of the default CPU run\n\n"
            f"Generated by `python benchmarks/allocations.py --report {out}` from `runs.jsonl`, written by\n"
            f"`python benchmarks/allocations.py --data-dir ../shared/data --out {out}` (one `nerqa train` per row,\n"
            "seed 0, 2 CPU cores). NER validation F1 is on 500 validation sentences, NER test F1 on the whole\n"
            "CoNLL-2003 test set, QA on 500 held-out SQuAD v1.1 questions. Wall time counts loading and tokenising\n"
            "the data, training and the final test evaluation, not the start of Python. Times marked * shared\n"
            "the two cores with other programs (load average above 2.2) and are upper bounds. CPU GFLOP/s is the\n"
            "speed of a 1024 x 1024 matrix product taken just before the run (`cpu_speed`; not recorded for the\n"
            "first rows, —): machines sold as 2 cores differ, so compare times only at similar speeds. Precision\n"
            "bf16 rows autocast to bfloat16 (`--mixed-precision bf16`), which the `precision` policy picks on CPUs\n"
            "with bfloat16 instructions (AVX512-BF16, AMX); fp32 rows, and every row before them, train in float32.\n\n"
            + "\n".join(rows) + "\n")
    path = out / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NERQA_DATA_DIR"))
    parser.add_argument("--out", default="reports/allocations")
    parser.add_argument("--runs-dir", default="runs/allocations", help="where the trained models go (not committed)")
    parser.add_argument("--only", nargs="*", choices=list(ALLOCATIONS), help="allocations to run (default: all)")
    parser.add_argument("--report", metavar="DIR", help="only rewrite DIR/README.md from DIR/runs.jsonl")
    args = parser.parse_args(argv)
    if args.report:
        print(write_report(Path(args.report)))
        return 0
    if not args.data_dir:
        parser.error("give --data-dir (or set NERQA_DATA_DIR): allocations are measured on real data")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = {record["name"] for record in read_records(out)}
    for name in args.only or list(ALLOCATIONS):
        if name in done:
            print(f"{name}: done, skipped")
            continue
        print(json.dumps(run_allocation(ALLOCATIONS[name], args.data_dir, out, Path(args.runs_dir))), flush=True)
    print(write_report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
