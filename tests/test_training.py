"""The training loop: it learns, single-task mode leaves the idle head alone, two processes agree."""
import json
from pathlib import Path

import pytest
import torch

from nerqa_helpers.data import load_tiny
from nerqa_helpers.model import MultiTaskModel
from nerqa_helpers.evaluation import evaluate
from nerqa_helpers.tasks import build_tasks
from nerqa_helpers.training import History, TrainingConfig, train


@pytest.fixture(scope="module")
def tiny_tasks(tokenizer):
    return build_tasks(tokenizer, load_tiny("ner"), load_tiny("qa"), qa_max_length=192, doc_stride=64)


def test_training_lowers_both_losses_and_beats_chance(tokenizer, tmp_path):
    torch.manual_seed(0)
    qa = load_tiny("qa")
    qa["train"] = qa["validation"] = qa["train"].select(range(48))  # QA from 48 questions: it fits what it saw
    tiny_tasks = build_tasks(tokenizer, load_tiny("ner"), qa, qa_max_length=192, doc_stride=64)
    model = MultiTaskModel.from_encoder("default")
    untrained = evaluate(model, tokenizer, tiny_tasks)
    config = TrainingConfig(output_dir=str(tmp_path), max_steps=60, batch_size=8, learning_rate=4e-4,
                            warmup_ratio=0.1, log_every=5, progress=False, strategy="round_robin")
    result = train(model, tokenizer, tiny_tasks, config)
    steps = result.history.frame("train")
    for task in ("ner", "qa"):
        losses = steps[steps.task == task].loss.to_numpy()
        assert losses[-5:].mean() < 0.6 * losses[:5].mean(), task
    # NER is scored on unseen sentences; an untrained head finds no entities.
    assert result.metrics["ner_f1"] > max(30, untrained["ner_f1"] + 25)
    assert result.metrics["qa_f1"] > untrained["qa_f1"] + 8
    saved = Path(result.output_dir)
    assert (saved / "best" / "config.json").is_file() and (saved / "best" / "tokenizer.json").is_file()
    again = History.from_json(saved / "history.json").frame("eval")
    assert again.score.iloc[-1] == pytest.approx(result.metrics["score"])
    assert json.loads((saved / "metrics.json").read_text())["steps"] == 60


def test_lambda_zero_leaves_that_head_untouched(tokenizer, tiny_tasks, tmp_path):
    model = MultiTaskModel.from_encoder("default", task_weights={"ner": 1.0, "qa": 0.0})
    qa_before = {k: v.clone() for k, v in model.qa_head.state_dict().items()}
    ner_before = model.ner_head.weight.clone()
    config = TrainingConfig(output_dir=str(tmp_path), max_steps=4, batch_size=4, progress=False, save_best=False)
    result = train(model, tokenizer, tiny_tasks, config)
    assert set(result.history.frame("train").task) == {"ner"}
    assert all(torch.equal(model.qa_head.state_dict()[k], v) for k, v in qa_before.items())
    assert not torch.equal(model.ner_head.weight, ner_before)


def test_nothing_to_train_is_a_clear_error(tokenizer, tiny_tasks, tmp_path):
    model = MultiTaskModel.from_encoder("default", task_weights={"ner": 0.0, "qa": 0.0})
    with pytest.raises(ValueError, match="Nothing to train"):
        train(model, tokenizer, tiny_tasks, TrainingConfig(output_dir=str(tmp_path), progress=False))


def test_two_cpu_processes_finish_with_equal_weights(run_ddp_worker, tmp_path):
    done = run_ddp_worker(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 6
    assert ranks[0]["checksum"] == ranks[1]["checksum"]


def test_bf16_on_a_cpu_autocasts_the_encoder_and_still_learns(tokenizer, tmp_path):
    """What the policy picks on a CPU with bfloat16 instructions ("bf16"), forced here on any CPU:
    the encoder's matrix products run in bfloat16 while training and scoring, and NER still learns."""
    torch.manual_seed(0)
    tasks = build_tasks(tokenizer, load_tiny("ner"), None)
    model = MultiTaskModel.from_encoder("default")
    seen = []
    query = model.encoder.encoder.layer[0].attention.self.query
    hook = query.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    config = TrainingConfig(output_dir=str(tmp_path), max_steps=40, batch_size=8, learning_rate=4e-4,
                            log_every=5, progress=False, save_best=False, mixed_precision="bf16")
    result = train(model, tokenizer, tasks, config)
    assert set(seen) == {torch.bfloat16}  # training steps and the final evaluation
    losses = result.history.frame("train").loss.to_numpy()
    assert losses[-3:].mean() < 0.6 * losses[:3].mean()
    assert result.metrics["ner_f1"] > 30
    seen.clear()
    as_float32 = evaluate(model, tokenizer, tasks, TrainingConfig(mixed_precision="no"))
    hook.remove()
    assert set(seen) == {torch.float32} and abs(as_float32["ner_f1"] - result.metrics["ner_f1"]) < 10
