"""The allocation table (benchmarks/allocations.py): the `small` preset is one of its measured rows,
and the report says which rows shared the cores and at what CPU speed each was measured."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from nerqa_helpers.presets import PRESETS

ALLOCATIONS_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "allocations.py"
SMALL_ALLOCATION = "ner-all-qa4000-w256"


@pytest.fixture(scope="module")
def allocations(load_script):
    return load_script(ALLOCATIONS_PATH, "nerqa_allocations")


def record(name, **fields):
    values = {"name": name, "ner_train": None, "qa_train": 4000, "ner_epochs": 1.0, "qa_epochs": 1.0,
              "learning_rate": 2e-4, "batch_size": 16, "qa_max_length": 256, "doc_stride": 96, "seed": 0,
              "steps": 1164, "train_seconds": 600.0, "ner_f1": 88.0, "test_ner_f1": 84.0,
              "qa_exact_match": 37.0, "qa_f1": 51.0, "wall_seconds": 640.0, "load_before": 0.1, "load_after": 1.9}
    return {**values, **fields}


def test_the_small_preset_is_the_measured_allocation(allocations):
    measured = allocations.ALLOCATIONS[SMALL_ALLOCATION]
    assert replace(measured, name="small") == PRESETS["small"]


def test_the_report_orders_rows_marks_busy_runs_and_shows_cpu_speed(allocations, tmp_path):
    lines = [record("ner-all-qa5000-w256", load_after=2.6, cpu_gflops=141),
             record(SMALL_ALLOCATION, qa_f1=40.0),
             record(SMALL_ALLOCATION, qa_f1=51.58)]  # a later line for the same name wins
    (tmp_path / "runs.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    page = allocations.write_report(tmp_path).read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ner-all")]
    assert [row.split(" | ")[0] for row in rows] == ["| ner-all-qa5000-w256", "| ner-all-qa4000-w256"]
    busy, small = rows  # the order of ALLOCATIONS, not of the file
    assert small.rstrip(" |").endswith("51.58") and "| — |" in small and "*" not in small
    assert "| 600* | 640* |" in busy and "| 141 |" in busy
    assert "| 256/96 | fp32 |" in small  # rows from before the precision column trained in float32


def test_bf16_rows_say_so_and_need_a_cpu_with_bf16_instructions(allocations, tmp_path, monkeypatch):
    bf16 = "ner-all-qa5000-w256-bf16"
    assert allocations.PRECISION == {"ner-all-qa4000-w256-bf16": "bf16", bf16: "bf16"}
    assert replace(allocations.ALLOCATIONS[bf16], name="x") == replace(allocations.ALLOCATIONS["ner-all-qa5000-w256"], name="x")
    (tmp_path / "runs.jsonl").write_text(json.dumps(record(bf16, qa_train=5000, precision="bf16")) + "\n")
    row = next(line for line in allocations.write_report(tmp_path).read_text().splitlines() if line.startswith("| ner-all"))
    assert "| 256/96 | bf16 |" in row
    monkeypatch.setenv("NERQA_CPU_BF16", "0")  # a CPU without them: refused before anything is trained
    with pytest.raises(SystemExit, match="no bfloat16 instructions"):
        allocations.run_allocation(allocations.ALLOCATIONS[bf16], "unused", tmp_path, tmp_path / "runs")
    assert (tmp_path / "runs.jsonl").read_text().count("\n") == 1
