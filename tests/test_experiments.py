"""Experiment runner and report: runs write their JSON, finished runs are skipped, and the report's
means, standard deviations and confidence intervals match hand-computed ones."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nerqa_helpers import experiments
from nerqa_helpers.experiments import config as sweep_config, records, report, runner, stats

TINY_CONFIG = Path(__file__).parents[1] / "experiments" / "tiny.json"
CPU_CONFIG = TINY_CONFIG.with_name("cpu.json")
T_2 = 4.302652729749462  # Student t, 97.5% quantile, 2 degrees of freedom (any t table)


def small_config(path: Path, **training) -> Path:
    """experiments/tiny.json cut down to one seed and three methods: NER alone for ten steps at a high
    learning rate (enough to learn the tiny sample's entities), GradNorm for two batches of each task,
    and NER on its first 40 sentences with document context for ten steps."""
    config = sweep_config.load_config(TINY_CONFIG)
    config["training"].update(batches={"ner": 2, "qa": 2}, **training)
    config.update(seeds=[0], probe={"count": 2, "batch_size": 2}, latency={"examples": 2, "warmup": 1}, questions=[], floor={})
    config["methods"] = [{"name": "ner_alone", "tasks": ["ner"], "steps": NER_STEPS, "learning_rate": 1e-3},
                         sweep_config.find_method(config, "gradnorm"),
                         {"name": "ner_40_context", "tasks": ["ner"], "steps": NER_STEPS, "learning_rate": 1e-3,
                          "ner_train": 40, "ner_context": True}]
    path.write_text(json.dumps(config))
    return path


NER_STEPS = 10


@pytest.mark.slow
def test_runner_writes_one_json_per_run_and_skips_finished_runs(tmp_path, monkeypatch):
    config_path = small_config(tmp_path / "small.json")
    out = tmp_path / "out"
    failed = runner.run_sweep(config_path, out, isolate=False, cache_root=tmp_path / "cache")
    assert failed == []
    ner = json.loads((out / "runs" / "ner_alone__seed0.json").read_text())
    gradnorm = json.loads((out / "runs" / "gradnorm__seed0.json").read_text())
    assert ner["status"] == gradnorm["status"] == "done"
    assert ner["qa_f1"] is None and set(ner["latency"]) == {"ner"} and ner["gradient_conflict"] is None
    assert isinstance(gradnorm["qa_f1"], float) and set(gradnorm["latency"]) == {"ner", "qa"}
    assert_the_run_learned_and_was_measured(ner)
    assert gradnorm["steps"] == 2 and gradnorm["batches"] == {"ner": 2, "qa": 2}  # 4 batches, 2 joint steps
    weights = gradnorm["task_weights"]["summary"]
    assert weights["ner"]["last"] + weights["qa"]["last"] == pytest.approx(2.0, abs=1e-4)
    conflict = gradnorm["gradient_conflict"]["by_layer"]
    assert "all" in conflict and all(-1 <= value <= 1 for value in conflict.values())
    assert sorted({row["step"] for row in gradnorm["gradient_conflict"]["records"]}) == [1, 2]  # count 2 over 2 steps
    assert gradnorm["trainable_parameters"] == gradnorm["total_parameters"] > ner["total_parameters"]
    assert gradnorm["peak_memory_mib"] > 0 and gradnorm["train_seconds"] > 0
    context = json.loads((out / "runs" / "ner_40_context__seed0.json").read_text())
    assert context["data"]["method_ner_train_sentences"] == 40 < ner["data"]["method_ner_train_sentences"]
    assert context["batches"] == {"ner": NER_STEPS} and context["data"]["ner_eval_sentences"] == ner["data"]["ner_eval_sentences"]
    assert context["ner_f1"] > 5  # ten steps on 40 sentences still find entities (the all-O tagger scores 0)
    # the same validation sentences, with neighbours in the window: longer inputs
    assert context["latency"]["ner"]["mean_tokens"] > 1.5 * ner["latency"]["ner"]["mean_tokens"]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runner, "run_one", no_training)
    assert runner.run_sweep(config_path, out, isolate=False, cache_root=tmp_path / "cache") == []
    changed = json.loads(config_path.read_text())
    changed["methods"][1]["alpha"] = 0.5  # a new GradNorm setting: only that run is out of date
    config_path.write_text(json.dumps(changed))
    assert runner.pending_runs(sweep_config.load_config(config_path), out) == [("gradnorm", 0)]
    disturbed = json.loads((out / "runs" / "ner_alone__seed0.json").read_text())
    disturbed["run_cpu_seconds"] = 0.5 * disturbed["run_seconds"] * disturbed["threads"]
    runner.write_json(out / "runs" / "ner_alone__seed0.json", disturbed)
    calm = json.loads((out / "runs" / "ner_40_context__seed0.json").read_text())  # this machine may be busy too
    calm.update(run_cpu_seconds=calm["run_seconds"] * calm["threads"], load_average=[0.0, 0.0])
    runner.write_json(out / "runs" / "ner_40_context__seed0.json", calm)
    assert runner.pending_runs(sweep_config.load_config(config_path), out, rerun_busy=True) == [
        ("ner_alone", 0), ("gradnorm", 0)]
    assert "ner_alone" in report.write_report(out).read_text()


def assert_the_run_learned_and_was_measured(record: dict) -> None:
    """Ten NER steps on the tiny sample: the loss falls, the scores beat the all-"O" baseline (which
    finds no entity: F1 0), and the steps, parameters, sizes and timings are the run's own."""
    from nerqa_helpers.data import load_tiny
    from nerqa_helpers.model import MultiTaskModel

    assert record["steps"] == NER_STEPS and record["batches"] == {"ner": NER_STEPS}
    curve = [loss for _, loss in record["loss_curve"]["ner"]]  # [step, loss] per logged step
    assert len(curve) == NER_STEPS and sum(curve[-3:]) < 0.5 * sum(curve[:3])
    assert record["ner_f1"] > 20 and record["ner_precision"] > 20 and record["ner_recall"] > 20
    ner_parameters = sum(parameter.numel() for name, parameter in MultiTaskModel.from_encoder("default")
                         .named_parameters() if not name.startswith("qa_head"))
    assert record["trainable_parameters"] == record["total_parameters"] == ner_parameters
    sizes = {split: len(rows) for split, rows in load_tiny("ner").items()}
    assert record["data"]["ner_train_sentences"] == sizes["train"]
    assert record["data"]["ner_eval_sentences"] == sizes["validation"]
    assert 0 < record["train_seconds"] < record["run_seconds"] and record["eval_seconds"] > 0
    assert record["latency"]["ner"]["examples"] == 2 and record["latency"]["ner"]["median_ms"] > 0
    assert record["cpu"] and record["cpu_gflops"] > 0  # which machine the seconds were measured on


def record(method, seed, **values):
    """A synthetic finished run with the fields the report reads."""
    tasks = [task for task in ("ner", "qa") if any(key.startswith(task) for key in values)]
    base = {"method": method, "seed": seed, "status": "done", "steps": 10, "trainable_parameters": 100,
            "total_parameters": 100, "train_seconds": 2.0, "peak_memory_mib": 500.0,
            "latency": {task: {"median_ms": 3.0} for task in tasks}, "batches": {task: 5 for task in tasks},
            "data": {"ner_train_sentences": 10, "ner_eval_sentences": 5, "qa_train_questions": 9,
                     "qa_train_windows": 10, "qa_eval_questions": 5}, "device": "cpu", "threads": 2}
    return {**base, **values}


SCORES = {  # method: [(seed, values), ...]
    "ner_alone": [(0, {"ner_f1": 80.0}), (1, {"ner_f1": 82.0}), (2, {"ner_f1": 84.0})],
    "qa_alone": [(0, {"qa_exact_match": 40.0, "qa_f1": 50.0}), (1, {"qa_exact_match": 42.0, "qa_f1": 54.0}),
                 (2, {"qa_exact_match": 44.0, "qa_f1": 58.0})],
    "shared": [(0, {"ner_f1": 81.0, "qa_exact_match": 40.0, "qa_f1": 52.0}),
               (1, {"ner_f1": 84.0, "qa_exact_match": 42.0, "qa_f1": 54.0}),
               (2, {"ner_f1": 84.0, "qa_exact_match": 44.0, "qa_f1": 56.0})],
    "two_seeds": [(0, {"ner_f1": 83.0}), (1, {"ner_f1": 85.0})],
}


@pytest.fixture()
def synthetic_report(tmp_path):
    config = {"name": "synthetic", "seeds": [0, 1, 2], "methods": [{"name": name} for name in SCORES], **{
        key: value for key, value in sweep_config.DEFAULTS.items() if key != "seeds"}}
    config["methods"][0]["tasks"], config["methods"][1]["tasks"] = ["ner"], ["qa"]
    config["methods"][3]["tasks"] = ["ner"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    for method, runs in SCORES.items():
        for seed, values in runs:
            extra = {}
            if method == "two_seeds":  # seed 0: load above the cores; seed 1: threads busy 60% of the time
                extra = [{"load_average": [0.5, 4.2], "cpu_count": 2},
                         {"run_seconds": 10.0, "run_cpu_seconds": 12.0, "threads": 2}][seed]
            if method == "shared":
                extra = {"task_weights": {"tasks": ["ner", "qa"], "curve": [[1, 1.2, 0.8], [9, 1.1, 0.9]]},
                         "gradient_conflict": {"by_layer": {"layer 0": 0.1 * seed, "all": 0.05}}}
            path = runner.run_path(tmp_path, method, seed)
            runner.write_json(path, record(method, seed, **values, **extra))
    return tmp_path, config


def test_summary_means_stds_and_paired_intervals_match_hand_computed_ones(synthetic_report):
    out, config = synthetic_report
    summary = stats.summarize(report.load_runs(out), config).set_index("method")
    shared = summary.loc["shared"]
    assert shared["ner_f1_mean"] == pytest.approx(83.0) and shared["ner_f1_std"] == pytest.approx(math.sqrt(3))
    # paired differences 1, 2, 0: mean 1, sd 1, half-width t(2) · 1 / √3
    assert shared["ner_f1_ci"] == "paired" and shared["ner_f1_diff"] == pytest.approx(1.0)
    assert shared["ner_f1_low"] == pytest.approx(1 - T_2 / math.sqrt(3))
    assert shared["ner_f1_high"] == pytest.approx(1 + T_2 / math.sqrt(3))
    # QA F1 differences 2, 0, -2: mean 0, sd 2
    assert shared["qa_f1_diff"] == pytest.approx(0.0)
    assert shared["qa_f1_high"] == pytest.approx(2 * T_2 / math.sqrt(3))
    # identical EM on every seed: a zero-width interval at 0
    assert shared["qa_exact_match_low"] == pytest.approx(0.0) == shared["qa_exact_match_high"]
    assert summary.loc["ner_alone", "ner_f1_std"] == pytest.approx(2.0)
    assert math.isnan(summary.loc["ner_alone"].get("ner_f1_diff", float("nan")))  # no difference to itself


def test_seeds_that_do_not_pair_fall_back_to_welch(synthetic_report):
    out, config = synthetic_report
    row = stats.summarize(report.load_runs(out), config).set_index("method").loc["two_seeds"]
    # 83, 85 against 80, 82, 84: variances of the means 2/2 and 4/3, df = (7/3)² / (1 + (4/3)²/2) = 49/17
    half = 3.257208125478903 * math.sqrt(1 + 4 / 3)  # t(0.975, 49/17) · standard error
    assert row["ner_f1_ci"] == "welch" and row["ner_f1_diff"] == pytest.approx(2.0)
    assert row["ner_f1_low"] == pytest.approx(2 - half) and row["ner_f1_high"] == pytest.approx(2 + half)
    lonely = stats.difference_interval({0: 1.0}, {0: 0.5, 1: 0.7})
    assert lonely["kind"] == "none" and math.isnan(lonely["low"])


def test_report_writes_the_tables_figures_and_missing_runs(synthetic_report):
    out, _ = synthetic_report
    text = report.write_report(out).read_text()
    assert f"report {out.as_posix()}`" in text  # the command that made it
    assert "| shared | 83.00 ± 1.73 | +1.00 [-1.48, +3.48] | 42.00 ± 2.00 | +0.00 [+0.00, +0.00] |" in text
    assert "| ner_alone | 82.00 ± 2.00 |  |" in text
    assert "two_seeds seed 2" in text.split("## Missing runs")[1]
    warning = text.split("**Warning:** ")[1].split("\n")[0]
    assert warning.startswith("2 of 11 runs") and "two_seeds seed 0, two_seeds seed 1." in warning
    for name in ("f1_by_method.png", "task_weights.png", "gradient_conflict.png"):
        assert (out / name).stat().st_size > 1000 and f"]({name})" in text
    assert "shared" in (out / "summary.csv").read_text()


def test_notebooks_see_the_reports_numbers_for_the_methods_they_ask_for(synthetic_report, tmp_path, capsys):
    out, _ = synthetic_report
    assert experiments.results_frame(out) is None and "make experiments" in capsys.readouterr().out
    report.write_report(out)
    table = experiments.results_frame(out, ["shared", "ner_alone"])
    assert list(table.index) == ["shared", "ner_alone"]
    assert table.loc["shared", "NER F1"] == "83.00 ± 1.73"
    assert table.loc["shared", "Δ NER F1 [95% CI]"] == "+1.00 [-1.48, +3.48]"
    assert table.loc["ner_alone", "QA F1"] == "" and table.loc["ner_alone", "seeds"] == 3
    with pytest.raises(ValueError, match="no method"):
        experiments.results_frame(out, ["lora"])


def test_step_budget_gives_single_task_runs_their_share_and_joint_steps_half():
    config = sweep_config.load_config(TINY_CONFIG)
    counts = {"ner": 30, "qa": 10}
    training = {key: value for key, value in config["training"].items() if key != "batches"}
    steps = {method["name"]: sweep_config.planned_steps({**config, "training": {**training, "steps": 100}}, method, counts)
             for method in config["methods"]}
    assert steps["ner_alone"] == 75 and steps["qa_alone"] == 25
    assert steps["shared"] == 100 and steps["gradnorm"] == steps["uncertainty"] == 50


def test_batch_budget_plans_exactly_b_batches_of_each_task_whatever_the_data_size():
    from nerqa_helpers.sampling import MultiTaskDataLoader

    config = sweep_config.load_config(CPU_CONFIG)
    steps = {m["name"]: sweep_config.planned_steps(config, m, {}) for m in config["methods"]}
    assert steps["ner_alone"] == steps["ner_alone_200"] == steps["gradnorm"] == steps["shared_joint"] == 120
    assert steps["shared"] == steps["shared_ner200"] == steps["lora"] == 240
    sizes = {"ner": 200, "qa": 1700}  # 13 and 107 batches per pass: 9.2 and 1.1 passes
    for name in ("shared_ner200", "gradnorm", "shared_joint", "ner_alone_200"):
        method = sweep_config.find_method(config, name)
        per_pass = {task: math.ceil(sizes[task] / 16) for task in sweep_config.method_tasks(method)}
        training = runner.training_config(config, method, 0, steps[name], per_pass, "unused")
        datasets = {task: _lengths_only(sizes[task]) for task in per_pass}
        loader = MultiTaskDataLoader(datasets, {}, batch_size=16, task_epochs=training.task_epochs, seed=0)
        assert {task: len(batches) for task, batches in loader.task_batches.items()} == {task: 120 for task in per_pass}
        assert (training.max_steps == 120) if name in ("gradnorm", "shared_joint") else training.max_steps is None
    # the joint control: fixed λ = 1, both losses summed in every step, like GradNorm's steps
    balancer = runner.make_balancer(sweep_config.find_method(config, "shared_joint"), None, 0)
    assert balancer.joint and balancer.weights() == {"ner": 1.0, "qa": 1.0}
    assert not runner.make_balancer({"name": "x", "balancer": "static"}, None, 0).joint


def test_a_methods_budget_scale_multiplies_the_batches_for_it_alone(tmp_path):
    config = sweep_config.load_config(CPU_CONFIG)
    longer = {"name": "lora_longer", "lora": {"r": 4}, "budget_scale": 2}
    config["methods"].append(longer)
    assert sweep_config.planned_batches(config, longer) == {"ner": 240, "qa": 240}
    assert sweep_config.planned_steps(config, longer, {}) == 480
    assert sweep_config.planned_steps(config, sweep_config.find_method(config, "shared"), {}) == 240
    training = runner.training_config(config, longer, 0, 480, {"ner": 120, "qa": 107}, "unused")
    assert training.task_epochs == {"ner": 2.0, "qa": 240 / 107}
    assert "2 times the budget: 240 NER + 240 QA batches" in report.methods_table(config)
    assert "LoRA r=4 per task on query, value" in report.methods_table(config)
    tiny = sweep_config.load_config(TINY_CONFIG)  # derived configs scale their own budget
    assert sweep_config.planned_batches(tiny, sweep_config.find_method(tiny, "lora_long")) == {"ner": 12, "qa": 12}
    for bad in (0, -1, "3", True):
        raw = json.loads(CPU_CONFIG.read_text())
        raw["methods"].append({"name": "x", "budget_scale": bad})
        (tmp_path / "bad.json").write_text(json.dumps(raw))
        with pytest.raises(ValueError, match="'budget_scale'"):
            sweep_config.load_config(tmp_path / "bad.json")


def test_q5_sets_lora_at_three_times_the_batches_against_full_fine_tuning_at_three_times_too():
    config = sweep_config.load_config(CPU_CONFIG)
    method = lambda name: sweep_config.find_method(config, name)  # noqa: E731
    q5 = next(question for question in config["questions"] if question["id"] == "q5-lora")
    assert ["lora_long", "shared_long", "ner_f1"] in q5["compare"] and ["lora_long", "shared_long", "qa_f1"] in q5["compare"]
    assert sweep_config.planned_batches(config, method("lora_long")) == sweep_config.planned_batches(config, method("shared_long"))
    assert sweep_config.planned_batches(config, method("shared_long")) == {"ner": 360, "qa": 360}
    # the long control differs from `shared` in its budget alone
    assert {key: value for key, value in method("shared_long").items() if key not in ("name", "budget_scale")} == \
        {key: value for key, value in method("shared").items() if key != "name"}


def test_loss_curve_questions_say_where_each_method_ended_and_what_its_training_state_costs(synthetic_report):
    from nerqa_helpers.experiments import questions

    out, config = synthetic_report
    falling = [[step, 4.0 - 0.1 * step] for step in range(1, 21)]  # last 10% (3 points): 2.2, 2.1, 2.0
    assert questions.end_loss({"loss_curve": {"qa": falling}}, "qa") == pytest.approx(2.1)
    assert questions.end_loss({"loss_curve": {}}, "qa") is None
    for seed, value in enumerate((80.0, 81.0, 82.0)):
        runner.write_json(runner.run_path(out, "adapters", seed), record(
            "adapters", seed, ner_f1=value, trainable_parameters=2**20, loss_curve={"ner": [[1, 2.0], [2, 1.0], [3, 0.5 + seed]]}))
    config = {**config, "methods": config["methods"] + [{"name": "adapters", "tasks": ["ner"], "lora": {"r": 8}}],
              "questions": [{"id": "q-lora", "title": "LoRA?", "methods": ["adapters"], "figure": "loss_curves"}]}
    (out / "config.json").write_text(json.dumps(config))
    report.write_report(out)
    text = (out / "q-lora" / "README.md").read_text()
    # end losses 1.1667, 1.5, 1.8333 → mean 1.500, std 0.333; 2**20 parameters × 12 bytes = 12 MiB
    assert "| adapters | 1.500 ± 0.333 |  | 5 NER | 12.0 |" in text and "Did training converge?" in text


def _lengths_only(rows: int):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [[1] * (3 + row % 5) for row in range(rows)]})


def test_gpu_study_reuses_the_cpu_studys_methods_and_questions_with_its_own_data():
    cpu, full = sweep_config.load_config(CPU_CONFIG), sweep_config.load_config(CPU_CONFIG.with_name("full.json"))
    assert full["methods"] == cpu["methods"] and full["questions"] == cpu["questions"]
    assert full["data"]["ner_train"] is None and full["data"]["source"] == "dir" and full["name"] == "full"
    assert full["preprocessing"] == {**cpu["preprocessing"], "qa_max_length": 384, "doc_stride": 128}
    assert full["training"]["batches"] == {"ner": 440, "qa": 440} and full["training"]["warmup_ratio"] == 0.1


def test_lora_pilot_keeps_the_studys_data_and_budget_and_drops_its_floor():
    cpu, pilot = sweep_config.load_config(CPU_CONFIG), sweep_config.load_config(CPU_CONFIG.with_name("lora-lr.json"))
    assert pilot["floor"] == {} and cpu["floor"]  # the pilot has no single-task runs to hold to it
    assert all(pilot[key] == cpu[key] for key in ("data", "preprocessing", "training"))
    assert pilot["seeds"] == [0] and all("lora" in method for method in pilot["methods"])


def test_config_mistakes_are_caught_before_a_long_sweep(tmp_path):
    good = json.loads(CPU_CONFIG.read_text())
    for mistake in ({"name": "x", "shared_layer": 2}, {"name": "x", "tasks": ["ner"], "balancer": "gradnorm"},
                    {"name": "ner_alone"}, {"name": "x", "ner_size": 200}, {"name": "x", "joint": True},
                    {"name": "x", "balancer": "gradnorm", "joint": True}):
        bad = {**good, "methods": good["methods"] + [mistake]}
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            sweep_config.load_config(tmp_path / "bad.json")
    for question in ({"id": "q", "title": "t", "methods": ["shared", "nobody"]},
                     {"id": "q", "title": "t", "methods": ["shared"], "compare": [["shared", "nobody", "ner_f1"]]},
                     {"id": "q", "methods": ["shared"]}):
        (tmp_path / "bad.json").write_text(json.dumps({**good, "questions": [question]}))
        with pytest.raises(ValueError, match="question"):
            sweep_config.load_config(tmp_path / "bad.json")
    for reference in ("../experiments-cpu", {"label": "float32"}, {"report": "../x", "lable": "typo"}):
        (tmp_path / "bad.json").write_text(json.dumps({**good, "reference": reference}))
        with pytest.raises(ValueError, match="reference"):
            sweep_config.load_config(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text(json.dumps({**good, "training": {"batches": {"ner": 10}}}))
    with pytest.raises(ValueError, match="batches"):
        sweep_config.load_config(tmp_path / "bad.json")


def test_each_question_gets_a_report_whose_conclusion_follows_its_interval(synthetic_report):
    out, config = synthetic_report
    config = {**config, "methods": config["methods"] + [{"name": "better", "tasks": ["ner"]}], "questions": [
        {"id": "q-test", "title": "Does sharing help?", "methods": ["ner_alone", "shared", "better"],
         "compare": [["shared", "ner_alone", "ner_f1"], ["better", "ner_alone", "ner_f1"], ["ner_alone", "better", "ner_f1"]]}]}
    config["floor"] = {"ner_alone": {"ner_f1": 82.5}, "qa_alone": {"qa_f1": 50}}  # means 82 and 54
    (out / "config.json").write_text(json.dumps(config))
    for seed, score in enumerate((83.0, 85.5, 88.0)):  # ner_alone + 3, 3.5, 4
        runner.write_json(runner.run_path(out, "better", seed), record("better", seed, ner_f1=score))
    index = report.write_report(out).read_text()
    question = (out / "q-test" / "README.md").read_text()
    # shared − ner_alone: differences 1, 2, 0 → +1.00 ± t(2)·1/√3: the interval contains 0
    assert "**No difference shown** between shared and ner_alone" in question
    assert "95% CI -1.48 to +3.48, paired over 3 seeds" in question and "gain above 3.48 or a loss beyond 1.48" in question
    # better − ner_alone: differences 3, 3.5, 4 → +3.50 ± t(2)·0.5/√3 = [2.26, 4.74]
    assert "**better beats ner_alone**" in question and "95% CI +2.26 to +4.74" in question
    assert "**ner_alone is worse than better**" in question and "from 2.26 to 4.74 points" in question
    assert "| better | 85.50 ± 2.50 |" in question and "Missing runs" not in question
    assert "(q-test/README.md)" in index and "**better beats ner_alone**" in index
    assert "ner_alone NER F1 82.00 (floor 82.5): **NOT met**; qa_alone QA F1 54.00 (floor 50): met." in index
    assert (out / "q-test" / "figure.png").stat().st_size > 1000 and "](figure.png)" in question
    (out / "runs" / "better__seed2.json").unlink()
    report.write_report(out)
    assert "better seed 2" in (out / "q-test" / "README.md").read_text().split("Missing runs")[1]


def test_a_lora_run_builds_its_model_in_a_fresh_process():
    """``run-one`` starts a new Python for each run: nothing else has imported the LoRA extension there."""
    code = ("from nerqa_helpers.experiments import runner, config\n"
            "model = runner.build_model(config.load_config('experiments/tiny.json'), {'name': 'x', 'lora': {'r': 4}})\n"
            "print(sum('lora_' in name for name, _ in model.named_parameters()),\n"
            "      sum(p.requires_grad for name, p in model.encoder.named_parameters() if 'lora_' not in name))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    adapters, trainable_base = map(int, done.stdout.split())
    assert adapters > 0 and trainable_base == 0  # LoRA matrices added, the encoder's own weights frozen


def test_seconds_from_two_machines_are_reported_apart():
    runs = [record("shared", 0, ner_f1=1.0), record("lora", 0, ner_f1=1.0, cpu="AMD EPYC, AVX2", cpu_gflops=94.6),
            record("lora", 1, ner_f1=1.0, cpu="AMD EPYC, AVX2", cpu_gflops=101.2)]
    text = report.machines_text(runs)
    assert "AMD EPYC, AVX2 (95–101 GFLOP/s in a float32 matrix product): 2 runs (lora)" in text
    assert "a machine not recorded: 1 run (shared)" in text
    assert report.machines_text(runs[1:]) == ""  # one machine: nothing to warn about
    assert records.machine_of({"device": "NVIDIA H200", "cpu": "x"}) == "NVIDIA H200"


def test_the_bf16_study_is_the_cpu_study_in_another_precision_and_refuses_emulated_bf16(tmp_path, monkeypatch):
    cpu, bf16 = sweep_config.load_config(CPU_CONFIG), sweep_config.load_config(CPU_CONFIG.with_name("cpu-bf16.json"))
    assert cpu["training"]["mixed_precision"] == "no" and bf16["training"]["mixed_precision"] == "bf16"
    assert {**bf16["training"], "mixed_precision": "no"} == cpu["training"]
    assert all(bf16[key] == cpu[key] for key in ("data", "preprocessing", "methods", "questions", "seeds", "floor"))
    shared = sweep_config.find_method(cpu, "shared")
    assert sweep_config.setup_hash(bf16, shared) != sweep_config.setup_hash(cpu, shared)  # float32 runs never count
    assert bf16["reference"] == {"report": "../experiments-cpu", "label": "float32"}
    monkeypatch.setenv("NERQA_CPU_BF16", "0")  # a CPU that would only emulate bfloat16
    with pytest.raises(ValueError, match="no bfloat16 instructions"):
        runner.run_sweep(CPU_CONFIG.with_name("cpu-bf16.json"), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing anything
    runner.check_precision(cpu)  # float32 runs anywhere
    monkeypatch.setenv("NERQA_CPU_BF16", "1")
    runner.check_precision(bf16)


def test_a_report_sets_its_verdicts_beside_those_of_a_reference_study(synthetic_report):
    out, config = synthetic_report
    reference = out / "reference"
    for method, runs in SCORES.items():  # the same scores, except shared's NER: ner_alone + 3, 4, 2
        for seed, values in runs:
            values = {**values, "ner_f1": [83.0, 86.0, 86.0][seed]} if method == "shared" else values
            runner.write_json(runner.run_path(reference, method, seed),
                              record(method, seed, **values, train_seconds=4.0, precision="no"))
    config = {**config, "reference": {"report": "reference", "label": "float32"}, "questions": [
        {"id": "q", "title": "Sharing?", "methods": ["ner_alone", "qa_alone", "shared"],
         "compare": [["shared", "ner_alone", "ner_f1"], ["shared", "qa_alone", "qa_f1"], ["shared", "ner_alone", "ner_f1"]]}]}
    (out / "config.json").write_text(json.dumps(config))
    text = report.write_report(out).read_text()
    section = text.split("## Against the float32 study")[1].split("## Setup")[0]
    # here: differences 1, 2, 0 → +1.00 [−1.48, +3.48]; there: 3, 4, 2 → +3.00 ± t(2)·1/√3 = [+0.52, +5.48]
    assert ("| shared − ner_alone | NER F1 | +1.00 [-1.48, +3.48] | +3.00 [+0.52, +5.48] | no difference shown | gain "
            "| **no** |") in section
    assert "| shared − qa_alone | QA F1 | +0.00 [-4.97, +4.97] | +0.00 [-4.97, +4.97] | no difference shown" in section
    assert "1 of 2 comparisons reach the same verdict in both; they differ on shared − ner_alone on NER F1." in section
    assert "| shared | 83.00 / 85.00 | 54.00 / 54.00 | 2 / 4 | 0.50 |" in section  # training seconds 2.0 vs 4.0
    assert "](reference/README.md)" in section  # a link from this report's folder
    (out / "runs" / "shared__seed2.json").unlink()
    (out / "runs" / "shared__seed1.json").unlink()
    section = report.write_report(out).read_text().split("## Against")[1]
    assert "0 of 0 comparisons" in section and "2 cannot be compared yet (runs missing)" in section
    config["reference"]["report"] = "../nowhere"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="reference"):
        report.write_report(out)


def test_the_setup_says_which_precision_the_runs_trained_in():
    config = {"training": {"mixed_precision": "bf16"}}
    assert "Precision: `bf16` (as the config asks" in report.precision_text(config, [])
    bf16 = [record("shared", seed, ner_f1=1.0, precision="bf16") for seed in (0, 1)]
    assert report.precision_text(config, bf16) == ("- Precision: bfloat16 autocast (weights and optimizer in float32), "
                                                   "in training, evaluation and latency.")
    mixed = report.precision_text(config, bf16 + [record("shared", 2, ner_f1=1.0, precision="no")])
    assert "float32 throughout (1 runs)" in mixed and "(2 runs)" in mixed and "not alike" in mixed
