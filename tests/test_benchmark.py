"""The benchmark measures what it says: same batches in every loop, honest padding counts, ratios
that follow from the numbers. One tiny run (bundled sample, a few steps) is shared by the tests."""
import json
from pathlib import Path

import pytest
import torch

BENCH_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script(BENCH_PATH, "nerqa_bench")


@pytest.fixture(scope="module")
def report(bench):
    preset = bench.PRESETS["tiny"]
    return bench.run_benchmark(preset, torch.device("cpu"), log=lambda *args: None)


def test_every_loop_trains_on_the_same_examples(report):
    assert report["same_batches"]
    real = {name: {task: loop[task]["real_tokens"] for task in ("ner", "qa", "all") if task in loop}
            for name, loop in report["training"].items()}
    assert real["project"] == real["pad_to_max"] == real["bare_encoder"]
    assert report["training"]["project"]["all"]["steps"] == report["preset"]["steps"]


def test_pad_to_max_pads_every_batch_to_the_task_length(report, bench):
    project, tutorial = report["training"]["project"], report["training"]["pad_to_max"]
    for task in ("ner", "qa"):
        if task not in project:
            continue
        assert tutorial[task]["padded_tokens"] % bench.MAX_LENGTH[task] == 0
        assert project[task]["real_tokens"] <= project[task]["padded_tokens"] <= tutorial[task]["padded_tokens"]
        assert 0 <= project[task]["padding_share"] < tutorial[task]["padding_share"] < 1


def test_ratios_follow_from_the_throughputs(report):
    loops = report["training"]
    for task, ratios in report["ratios"].items():
        project = loops["project"][task]["real_tokens_per_s"]
        assert ratios["project_over_pad_to_max"] == pytest.approx(project / loops["pad_to_max"][task]["real_tokens_per_s"], rel=1e-2)
        assert ratios["project_over_bare_encoder"] == pytest.approx(project / loops["bare_encoder"][task]["real_tokens_per_s"], rel=1e-2)


def test_latency_inputs_have_the_promised_sizes(report):
    latency = report["pipeline_latency"]
    assert latency["ner_words"] == 30
    assert latency["qa_windows"] == [384]
    assert latency["ner"]["median_ms"] > 0 and latency["qa"]["median_ms"] > 0


def test_report_is_json_and_has_a_summary(report, bench):
    text = json.dumps(report)
    assert json.loads(text)["evaluation"].keys() == {"ner", "qa"}
    assert set(report["targets"]) == {"project_over_pad_to_max >= 2.0", "project_over_bare_encoder >= 0.85",
                                      "ner_latency_median_ms <= 30", "qa_latency_median_ms <= 150"}
    lines = bench.summary(report)
    assert "ratio all" in lines and "pipeline latency" in lines
    page = bench.markdown(report, "python benchmarks/bench.py --preset tiny")
    assert "`python benchmarks/bench.py --preset tiny`" in page and lines in page
    missed = [name for name, ok in report["targets"].items() if not ok]
    assert all(f"| `{name}` | **no** |" in page for name in missed)


def test_throughput_skips_warmup_and_attributes_steps_to_tasks(bench):
    clock = bench.StepClock(torch.device("cpu"))
    clock.marks, clock.tasks = [0.0, 1.0, 1.5, 3.5], ["ner", "ner", "qa", "ner"]
    sizes = [("ner", 10, 20), ("ner", 30, 40), ("qa", 50, 100), ("ner", 20, 20)]
    result = bench.throughput(clock, sizes, warmup=1)  # timed: steps 2, 3, 4 = 1.0 s, 0.5 s, 2.0 s
    assert result["ner"]["real_tokens_per_s"] == pytest.approx(50 / 3.0, rel=1e-2)
    assert result["qa"]["padded_tokens_per_s"] == pytest.approx(100 / 0.5, rel=1e-2)
    assert result["all"]["steps"] == 3 and result["all"]["seconds"] == pytest.approx(3.5)


def test_pad_to_max_batch_pads_labels_with_ignore_index(bench):
    from datasets import Dataset

    features = Dataset.from_dict({"input_ids": [[101, 7, 102], [101, 102]], "attention_mask": [[1, 1, 1], [1, 1]],
                                  "labels": [[-100, 3, -100], [-100, -100]]})
    batch = bench.pad_to_max(features, [0, 1], 6, pad_id=0)
    assert batch["input_ids"].shape == (2, 6)
    assert batch["labels"][1].tolist() == [-100] * 6
    assert batch["attention_mask"].sum().item() == 5
