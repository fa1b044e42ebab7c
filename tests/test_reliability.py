"""Resume, determinism, crash-safe checkpoints and the guard against a diverging loss.

All runs use a tiny random BERT (hidden size 32, two layers) on the bundled sample, so one run
of 14 steps takes about a second on one CPU thread; the runs compare bit for bit.
"""
import json
import shutil
from pathlib import Path

import pytest
import torch

from nerqa_helpers import checkpoint as checkpoints
from nerqa_helpers.checkpoint import CheckpointError, find_checkpoint, read_checkpoint
from nerqa_helpers.data import load_tiny
from nerqa_helpers.extensions.balancing import GradNorm
from nerqa_helpers.inference import ModelDirectoryError, MultiTaskPipeline
from nerqa_helpers.model import MultiTaskModel
from nerqa_helpers.tasks import build_tasks
from nerqa_helpers.training import TrainingConfig, TrainingDiverged, train

STEPS, CHECKPOINT_EVERY, EVAL_EVERY, STOP_AT = 14, 5, 4, 8
pytestmark = pytest.mark.slow  # every test trains, or reads a checkpoint a module fixture trains


class Interrupted(Exception):
    """Stands for the session dying in the middle of a step."""


@pytest.fixture(scope="module", autouse=True)
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.fixture(scope="module")
def tasks(tokenizer):
    return build_tasks(tokenizer, load_tiny("ner"), load_tiny("qa"), qa_max_length=128, doc_stride=32)


def settings(output_dir, **changes) -> TrainingConfig:
    values = dict(output_dir=str(output_dir), max_steps=STEPS, batch_size=8, learning_rate=1e-3, log_every=3,
                  eval_every=EVAL_EVERY, checkpoint_every=CHECKPOINT_EVERY, progress=False, deterministic=True)
    return TrainingConfig(**{**values, **changes})


def stop_at(step_to_stop: int):
    def hook(step, task_losses, model):
        if step == step_to_stop:
            raise Interrupted
    return hook


def run(tiny_model, tokenizer, tasks, output_dir, hook=None, resume_from=None, balancer=None, **changes):
    model = tiny_model()
    made = balancer(model) if balancer else None
    result = train(model, tokenizer, tasks, settings(output_dir, **changes), step_hook=hook, balancer=made,
                   resume_from=resume_from)
    return model, result


def interrupted_then_resumed(tiny_model, tokenizer, tasks, output_dir, balancer=None, **changes):
    with pytest.raises(Interrupted):
        run(tiny_model, tokenizer, tasks, output_dir, hook=stop_at(STOP_AT), balancer=balancer, **changes)
    assert read_checkpoint(output_dir).step == settings(output_dir, **changes).checkpoint_every
    return run(tiny_model, tokenizer, tasks, output_dir, resume_from=True, balancer=balancer, **changes)


def same_weights(first, second) -> bool:
    one, two = first.state_dict(), second.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)


def without_time(result) -> tuple:
    metrics = {key: value for key, value in result.metrics.items() if key != "train_seconds"}
    history = [{key: value for key, value in record.items() if key != "time"} for record in result.history.records]
    return metrics, history, result.best_metrics


@pytest.fixture(scope="module")
def reference(tiny_model, tokenizer, tasks, tmp_path_factory):
    """The uninterrupted run everything is compared with."""
    return run(tiny_model, tokenizer, tasks, tmp_path_factory.mktemp("reference"))


# -- resume and determinism -------------------------------------------------------------------
def test_same_seed_gives_identical_metrics_and_weights(tiny_model, tokenizer, tasks, reference, tmp_path):
    model, result = run(tiny_model, tokenizer, tasks, tmp_path)
    assert same_weights(model, reference[0])
    assert without_time(result) == without_time(reference[1])
    assert result.metrics["ner_f1"] == reference[1].metrics["ner_f1"]


@pytest.mark.parametrize("changes", [{}, {"strategy": "temperature", "gradient_accumulation_steps": 2,
                                         "checkpoint_every": 4}])
def test_resumed_run_ends_like_the_uninterrupted_one(tiny_model, tokenizer, tasks, reference, tmp_path, changes):
    expected = reference if not changes else run(tiny_model, tokenizer, tasks, tmp_path / "whole", **changes)
    model, result = interrupted_then_resumed(tiny_model, tokenizer, tasks, tmp_path / "cut", **changes)
    assert same_weights(model, expected[0])
    assert without_time(result) == without_time(expected[1])
    saved = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert saved["steps"] == STEPS and saved["task_mix"] == expected[1].metrics["task_mix"]


def test_resume_restores_the_dropout_generator(tiny_model, tokenizer, tasks, reference, tmp_path, monkeypatch):
    """The test above has teeth: without torch's random state (dropout) the resumed run drifts."""
    monkeypatch.setattr(torch, "set_rng_state", lambda state: None)  # what load_state puts back
    model, _ = interrupted_then_resumed(tiny_model, tokenizer, tasks, tmp_path)
    assert not same_weights(model, reference[0])


def test_resume_with_a_learned_loss_balancer(tiny_model, tokenizer, tasks, tmp_path):
    def gradnorm(model):
        return GradNorm(["ner", "qa"], shared=model, alpha=1.5, lr=0.05)

    whole, whole_result = run(tiny_model, tokenizer, tasks, tmp_path / "whole", balancer=gradnorm)
    model, result = interrupted_then_resumed(tiny_model, tokenizer, tasks, tmp_path / "cut", balancer=gradnorm)
    assert same_weights(model, whole)
    assert without_time(result) == without_time(whole_result)
    assert "weight_ner" in result.history.frame("train")


def test_resume_refuses_other_settings_but_takes_a_new_learning_rate(tiny_model, tokenizer, tasks, tmp_path):
    with pytest.raises(Interrupted):
        run(tiny_model, tokenizer, tasks, tmp_path, hook=stop_at(STOP_AT))
    with pytest.raises(CheckpointError, match=r"other settings \(batch_size=8 there, 4 now\)"):
        run(tiny_model, tokenizer, tasks, tmp_path, resume_from=True, batch_size=4)
    _, result = run(tiny_model, tokenizer, tasks, tmp_path, resume_from=True, learning_rate=5e-4)
    steps = result.history.frame("train")
    assert steps.step.max() == STEPS and result.metrics["steps"] == STEPS
    reference_lr = settings(tmp_path).learning_rate
    assert steps[steps.step > CHECKPOINT_EVERY].lr.max() <= 0.5 * reference_lr + 1e-12


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_model, tokenizer, tasks, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        run(tiny_model, tokenizer, tasks, tmp_path / "never-ran", resume_from=True)
    with pytest.raises(CheckpointError, match="no checkpoint/ folder"):
        run(tiny_model, tokenizer, tasks, tmp_path, resume_from=True)


# -- crash-safe writing -----------------------------------------------------------------------
def test_killed_while_saving_keeps_the_previous_checkpoint(tiny_model, tokenizer, tasks, reference, tmp_path,
                                                           monkeypatch):
    real_save, state_files = torch.save, []

    def dies_writing_the_second_checkpoint(obj, path, *args, **kwargs):
        if Path(path).name == checkpoints.OPTIMIZER_FILE:
            state_files.append(path)
            if len(state_files) == 2:
                Path(path).write_bytes(b"half a file")
                raise Interrupted
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoints.torch, "save", dies_writing_the_second_checkpoint)
    with pytest.raises(Interrupted):
        run(tiny_model, tokenizer, tasks, tmp_path)  # dies writing the checkpoint of step 10
    monkeypatch.setattr(checkpoints.torch, "save", real_save)
    assert (tmp_path / ".checkpoint.tmp").is_dir()  # the half-written one, never looked at
    assert read_checkpoint(tmp_path).step == CHECKPOINT_EVERY
    model, result = run(tiny_model, tokenizer, tasks, tmp_path, resume_from=True)
    assert same_weights(model, reference[0]) and without_time(result) == without_time(reference[1])
    assert not (tmp_path / ".checkpoint.tmp").exists()


def test_killed_between_the_two_renames_resumes_from_previous(tiny_model, tokenizer, tasks, reference, tmp_path):
    with pytest.raises(Interrupted):
        run(tiny_model, tokenizer, tasks, tmp_path, hook=stop_at(STOP_AT))
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.previous")  # the moment between them
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint.previous"
    model, result = run(tiny_model, tokenizer, tasks, tmp_path, resume_from=True)
    assert same_weights(model, reference[0]) and without_time(result) == without_time(reference[1])


def test_a_broken_checkpoint_falls_back_to_the_previous_one(tmp_path, good_checkpoint):
    shutil.copytree(good_checkpoint, tmp_path / "checkpoint.previous")
    shutil.copytree(good_checkpoint, tmp_path / "checkpoint")
    (tmp_path / "checkpoint" / checkpoints.MANIFEST_FILE).unlink()
    with pytest.warns(UserWarning, match="not a complete training checkpoint"):
        assert find_checkpoint(tmp_path) == tmp_path / "checkpoint.previous"


@pytest.fixture(scope="module")
def good_checkpoint(tiny_model, tokenizer, tasks, tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    with pytest.raises(Interrupted):
        run(tiny_model, tokenizer, tasks, folder, hook=stop_at(STOP_AT))
    return folder / "checkpoint"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _zero_tail(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-200] + bytes(200))  # same size, central directory gone


DAMAGE = {
    "missing weights": (lambda d: (d / "model.safetensors").unlink(), "has no weights"),
    "truncated weights": (lambda d: _truncate(d / "model.safetensors"), "model.safetensors is truncated"),
    "garbage config.json": (lambda d: (d / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    "truncated optimizer state": (lambda d: _truncate(d / "optimizer.bin"), "damaged optimizer.bin"),
    "corrupt optimizer state": (lambda d: _zero_tail(d / "optimizer.bin"),
                                r"damaged optimizer.bin \(its bytes changed after it was written\)"),
    "corrupt scheduler state": (lambda d: _zero_tail(d / "custom_checkpoint_0.pkl"), "damaged custom_checkpoint_0.pkl"),
    "no manifest": (lambda d: (d / "manifest.json").unlink(), "not a complete training checkpoint"),
    "garbage trainer state": (lambda d: (d / "trainer_state.json").write_text("[1, 2"), "damaged trainer_state.json"),
    "missing random state": (lambda d: (d / "random_states_0.pkl").unlink(), "missing random_states_0.pkl"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_checkpoint_names_the_folder_and_the_problem(tiny_model, tokenizer, tasks, tmp_path, good_checkpoint,
                                                               damage):
    folder = tmp_path / "checkpoint"
    shutil.copytree(good_checkpoint, folder)
    spoil, problem = DAMAGE[damage]
    spoil(folder)
    with pytest.raises(CheckpointError, match=problem) as caught:
        run(tiny_model, tokenizer, tasks, tmp_path, resume_from=True)
    assert str(folder) in str(caught.value)


@pytest.mark.parametrize("damage", ["missing weights", "truncated weights", "garbage config.json"])
def test_a_damaged_model_folder_names_the_folder_for_the_pipeline(tmp_path, good_checkpoint, damage):
    folder = tmp_path / "model"
    shutil.copytree(good_checkpoint, folder)
    DAMAGE[damage][0](folder)
    with pytest.raises((CheckpointError, ModelDirectoryError)) as caught:
        MultiTaskPipeline.from_pretrained(folder)
    assert str(folder) in str(caught.value)
    with pytest.raises(CheckpointError, match=DAMAGE[damage][1]):
        checkpoints.check_model_dir(folder)


def test_a_checkpoint_is_a_loadable_model_folder(tiny_model, good_checkpoint):
    """The pipeline loads every saved tensor (none left at a fresh initialisation), and they are the
    trained weights, not the ones the run started from."""
    from safetensors.torch import load_file

    pipeline = MultiTaskPipeline.from_pretrained(good_checkpoint)
    loaded, saved = pipeline.model.state_dict(), load_file(good_checkpoint / "model.safetensors")
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[name].cpu(), saved[name]) for name in saved)
    assert not same_weights(pipeline.model.cpu(), tiny_model())
    text = "Marisol Quenby lives in Vantorsk ."
    for entity in pipeline.ner(text):
        assert text[entity["start"]:entity["end"]] == entity["text"]
    answer = pipeline.qa("Where does Marisol Quenby live?", text)
    assert text[answer["start"]:answer["end"]] == answer["answer"]


def test_weights_of_another_model_are_refused(tiny_model, tokenizer, tasks, tmp_path, good_checkpoint):
    shutil.copytree(good_checkpoint, tmp_path / "checkpoint")
    model = tiny_model(ner_label_names=["O", "B-PER", "I-PER"])
    with pytest.raises(CheckpointError, match=r"weights of another model \(other shape: ner_head"):
        checkpoints.check_weights(model, tmp_path / "checkpoint")


def test_two_processes_resume_like_the_uninterrupted_run(run_ddp_worker, tmp_path):
    """Under DDP the checkpoint keeps the unwrapped weight names (it loads with from_pretrained),
    every process gets its own random state back, and the resumed run ends bit for bit as the whole."""
    for mode in ("", "cut", "resume"):
        done = run_ddp_worker(tmp_path, *([mode] if mode else []), port=29523)
        assert done.returncode == 0, (mode, done.stderr[-3000:])
    checkpoint = tmp_path / "cut" / "checkpoint"
    assert sorted(path.name for path in checkpoint.glob("random_states_*.pkl")) == [
        "random_states_0.pkl", "random_states_1.pkl"]
    _, loading = MultiTaskModel.from_pretrained(checkpoint, output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"]
    whole = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    resumed = [json.loads((tmp_path / f"resume{rank}.json").read_text()) for rank in (0, 1)]
    assert [run["checksum"] for run in resumed] == [run["checksum"] for run in whole]


# -- numerical guards -------------------------------------------------------------------------
def poison_at(step_to_poison: int):
    """Make the shared embeddings infinite after the backward pass of one step."""
    def hook(step, task_losses, model):
        if step == step_to_poison:
            with torch.no_grad():
                model.encoder.embeddings.word_embeddings.weight.fill_(float("inf"))
    return hook


@pytest.mark.parametrize("poisoned, message", [
    (6, r"Loss became nan at step 7 on task '(ner|qa)' \(batch of training features \[\d+"),
    (10, r"Weights became NaN or infinite by step 10 \(encoder.embeddings.word_embeddings.weight"),
])
def test_a_diverging_run_stops_naming_step_task_batch_and_keeps_checkpoints(
        tiny_model, tokenizer, tasks, reference, tmp_path, poisoned, message):
    with pytest.raises(TrainingDiverged, match=message) as caught:
        run(tiny_model, tokenizer, tasks, tmp_path, hook=poison_at(poisoned), log_every=1,
            checkpoint_every=CHECKPOINT_EVERY)
    if "Loss" in message:
        task = reference[1].history.frame("train").set_index("step").task[poisoned + 1]
        assert f"on task {task!r}" in str(caught.value)
    kept = read_checkpoint(tmp_path)
    assert kept.step == CHECKPOINT_EVERY
    for folder in (kept.directory, tmp_path / "best"):
        model = MultiTaskModel.from_pretrained(folder)
        assert checkpoints.nonfinite_parameters(model) == []


def test_a_huge_learning_rate_is_caught_before_anything_is_saved(tiny_model, tokenizer, tasks, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"Loss became nan at step \d+ on task"):
        run(tiny_model, tokenizer, tasks, tmp_path, learning_rate=1e30, warmup_ratio=0.0, log_every=1)
    assert not (tmp_path / "best").exists() and not (tmp_path / "checkpoint").exists()
