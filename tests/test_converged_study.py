"""The converged study: early stopping on a validation split, best weights scored on a test split,
a convergence check on one seed, and every run naming the code it ran."""
import json
from pathlib import Path

import pytest

from nerqa_helpers.experiments import config as sweep_config, runner

CONVERGED = Path(__file__).parents[1] / "experiments" / "converged.json"
CONVERGED_TINY = CONVERGED.with_name("converged-tiny.json")


def test_the_converged_study_keeps_validation_test_and_training_apart():
    config = sweep_config.load_config(CONVERGED_TINY)
    ner, qa = sweep_config.load_datasets(config)
    assert set(ner) == set(qa) == {"train", "validation", "test"}
    train, validation, test = (set(qa[split]["title"]) for split in ("train", "validation", "test"))
    assert validation and not validation & train and not test & (train | validation)
    assert len(validation) == config["data"]["qa_validation_articles"]
    assert len(ner["test"]) > 0 and ner["test"]["tokens"] != ner["validation"]["tokens"]


def test_the_converged_config_covers_what_the_study_must_answer():
    config = sweep_config.load_config(CONVERGED)
    assert sweep_config.is_converged(config) and config["training"]["clipping"] == "per_task"
    methods = {method["name"]: method for method in config["methods"]}
    questions = {question["id"]: question for question in config["questions"]}
    q3 = set(questions["q3-loss-balancing"]["methods"])
    assert {"pcgrad", "pcgrad_total", "shared_joint", "shared_joint_total"} <= q3
    assert sweep_config.clipping_rule(config, methods["pcgrad_total"]) == "total"
    assert sweep_config.clipping_rule(config, methods["pcgrad"]) == "per_task"
    assert methods["shared_bottom_0"]["shared_layers"] == 0  # N = 0 as the package defines it (embeddings shared)
    pilot = [name for name in methods if name.startswith("lora_")]
    assert {(methods[n]["lora"]["r"], methods[n]["learning_rate"]) for n in pilot} == {
        (r, lr) for r in (8, 32) for lr in (1e-3, 2e-3, 4e-3)}
    # at least five seeds for every comparison that involves QA
    for question in config["questions"]:
        for method, baseline, metric in question["compare"]:
            if "qa" in metric or any("qa" in sweep_config.method_tasks(methods[m]) for m in (method, baseline)
                                     if question["id"] not in ("q2-scarce-ner", "q6-document-context")):
                assert min(len(sweep_config.method_seeds(config, methods[m])) for m in (method, baseline)) >= 5


def test_code_versions_are_recorded_and_not_mixed(tmp_path):
    code = runner.code_version()
    assert len(code["commit"]) == 40 and isinstance(code["dirty"], bool)
    runner.write_json(tmp_path / "runs" / "a__seed0.json", {"code": {"commit": "0" * 40}})
    with pytest.raises(ValueError, match="One report holds one code version"):
        runner.check_code_versions(tmp_path)
    assert runner.check_code_versions(tmp_path, allow_mixed=True)["commit"] == code["commit"]


@pytest.mark.slow
def test_a_converged_run_stops_scores_its_best_weights_on_test_and_checks_convergence(tmp_path):
    config = sweep_config.load_config(CONVERGED_TINY)
    config["methods"] = [sweep_config.find_method(config, "shared_joint"), sweep_config.find_method(config, "ner_alone")]
    config["questions"] = []
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "out"
    assert runner.run_sweep(path, out, seeds=[0], isolate=False, cache_root=tmp_path / "cache") == []
    for name in ("shared_joint", "ner_alone"):
        record = json.loads((out / "runs" / f"{name}__seed0.json").read_text())
        assert record["code"]["commit"] == runner.code_version()["commit"]
        assert record["validation"]["ner_f1"] is not None and record["best_step"] <= record["steps"] <= record["step_cap"]
        assert record["data"]["ner_test_sentences"] > 0 and record["eval_curve"]
        steps = [row[0] for row in record["eval_curve"]]
        assert steps == sorted(steps) and len(steps) >= 2
        check = json.loads((out / "convergence" / f"{name}__seed0.json").read_text())
        assert check["stopped_at"] == record["steps"] and check["ner_f1_stopped"] == record["ner_f1"]
        if check["at_cap"]:
            assert record["steps"] == record["step_cap"]
        else:
            assert record["steps"] < check["extended_to"] <= min(record["step_cap"], 1.5 * record["steps"] + 1)
            assert check["ner_f1_change"] == pytest.approx(check["ner_f1_extended"] - check["ner_f1_stopped"])


def test_holm_adjusts_the_family_as_by_hand_and_p_values_match_scipy():
    from scipy import stats

    from nerqa_helpers.experiments.outcomes import holm, paired_p_value

    adjusted = holm([0.01, 0.04, float("nan"), 0.03])
    assert adjusted[0] == pytest.approx(0.03) and adjusted[1] == pytest.approx(0.06) and adjusted[3] == pytest.approx(0.06)
    assert adjusted[2] != adjusted[2]  # NaN stays out of the family
    a, b = {0: 81.0, 1: 84.0, 2: 84.0, 3: 80.0}, {0: 80.0, 1: 82.0, 2: 84.0, 3: 77.0}
    assert paired_p_value(a, b) == pytest.approx(stats.ttest_rel(list(a.values()), list(b.values())).pvalue)


def converged_records(out, config):
    """Synthetic runs of a converged study: method 'good' beats 'base' on every seed, 'same' does not."""
    scores = {"base": [70, 72, 74, 71, 73], "good": [75, 78, 79, 76, 77], "same": [71, 71, 75, 70, 74]}
    for method, values in scores.items():
        for seed, score in enumerate(values):
            runner.write_json(runner.run_path(out, method, seed), {
                "method": method, "seed": seed, "status": "done", "ner_f1": float(score), "steps": 80 + seed,
                "best_step": 40 + seed, "step_cap": 120, "stopped_early": True, "trainable_parameters": 10,
                "total_parameters": 10, "latency": {}, "batches": {"ner": 80}, "device": "cpu", "threads": 2,
                "code": {"commit": "a" * 40, "dirty": False},
                "data": {"ner_train_sentences": 20, "ner_eval_sentences": 5, "ner_test_sentences": 9}})
    runner.write_json(out / "convergence" / "good__seed0.json", {
        "method": "good", "seed": 0, "stopped_at": 80, "extended_to": 120, "at_cap": False, "ner_f1_change": 0.4})
    runner.write_json(out / "convergence" / "same__seed0.json", {
        "method": "same", "seed": 0, "stopped_at": 80, "extended_to": 120, "at_cap": False, "ner_f1_change": -2.5})


def test_a_converged_report_states_the_regime_holm_literature_and_the_convergence_check(tmp_path):
    from nerqa_helpers.experiments import report

    config = sweep_config.load_config(CONVERGED_TINY)
    config["methods"] = [{"name": name, "tasks": ["ner"]} for name in ("base", "good", "same")]
    config["questions"] = [{"id": "q-x", "title": "X", "methods": ["base", "good", "same"],
                            "compare": [["good", "base", "ner_f1"], ["same", "base", "ner_f1"]],
                            "literature": [{"cite": "Someone 2020", "claim": "good helps", "compare": ["good", "base", "ner_f1"],
                                            "expects": "better", "note": "Another dataset."}]}]
    config["seeds"] = [0, 1, 2, 3, 4]
    runner.write_json(tmp_path / "config.json", config)
    converged_records(tmp_path, config)
    index = report.write_report(tmp_path).read_text()
    question = (tmp_path / "q-x" / "README.md").read_text()
    assert "trained to convergence" in index and "test** split" in index and f"`{'a' * 12}` (15 runs)" in index
    assert "2 paired comparisons at 95%; 1 of them exclude 0, and 1 still do after Holm" in index
    assert "**good beats base**" in question and "Holm-adjusted over the study's comparisons" in question
    assert "- **Someone 2020**: good helps; this study agrees (good vs base, NER F1 +5.00 [+4.12, +5.88])" in question
    rows = {line.split("|")[1].strip(): line for line in question.splitlines() if line.startswith("| ")}
    assert "yes" in rows["good"] and "**no: changed by 2.50**" in rows["same"] and "not run yet" in rows["base"]


def test_a_lora_run_stopped_early_resumes_like_the_uninterrupted_one(tokenizer, tiny_model, tmp_path):
    """The convergence check resumes a stopped run from its last checkpoint: LoRA's adapters too."""
    import torch

    import nerqa_helpers.extensions  # noqa: F401  (registers the LoRA adapter)
    from nerqa_helpers.data import load_tiny
    from nerqa_helpers.tasks import build_tasks
    from nerqa_helpers.training import TrainingConfig, train

    tasks = build_tasks(tokenizer, load_tiny("ner"), load_tiny("qa"), qa_max_length=128, doc_stride=48)
    lora = {"r": 4, "alpha": 8}

    def config(out, **changes):
        return TrainingConfig(output_dir=str(out), max_steps=8, batch_size=4, progress=False, save_best=False,
                              eval_every=None, checkpoint_every=4, learning_rate=1e-3, **changes)

    whole = tiny_model(seed=2, lora=lora)
    train(whole, tokenizer, tasks, config(tmp_path / "whole"))
    stopped = tiny_model(seed=2, lora=lora)
    result = train(stopped, tokenizer, tasks, config(tmp_path / "cut", stop_after_steps=6))
    assert result.metrics["steps"] == 6
    resumed = tiny_model(seed=9, lora=lora)  # other starting weights: the checkpoint must replace them all
    train(resumed, tokenizer, tasks, config(tmp_path / "cut"), resume_from=True)
    one, two = whole.state_dict(), resumed.state_dict()
    assert one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)
    assert any("lora_" in name for name in one)
