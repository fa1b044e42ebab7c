"""Gradient clipping in joint steps: per task (the default) or of the summed gradient (the old rule)."""
import pytest
import torch
from accelerate import Accelerator

from nerqa_helpers.data import load_tiny
from nerqa_helpers.extensions.balancing import PCGrad, StaticWeights, UncertaintyWeighting, clip_gradients
from nerqa_helpers.sampling import make_collators
from nerqa_helpers.tasks import build_tasks
from nerqa_helpers.training import TrainingConfig, backward_and_clip, train, weighted_terms


@pytest.fixture(scope="module")
def batches(tokenizer):
    tasks = build_tasks(tokenizer, load_tiny("ner"), load_tiny("qa"), qa_max_length=128, doc_stride=48)
    collators = make_collators(tokenizer)
    out = {}
    for task in ("ner", "qa"):
        rows = tasks[task].train_features.select(range(6))
        keys = [key for key in ("input_ids", "attention_mask", "token_type_ids", "labels",
                                "start_positions", "end_positions") if key in rows.column_names]
        out[task] = collators[task]([{key: row[key] for key in keys} for row in rows])
    return out


def task_gradient(model, batch, task):
    """∇ L_task over the trainable parameters, flattened (P,)."""
    model.zero_grad(set_to_none=True)
    model(**batch, task=task).task_loss.backward()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters() if p.requires_grad])


def clipped(vector, max_norm):
    return vector * min(1.0, max_norm / (float(vector.norm()) + 1e-6))


def loop_gradient(model, batches, rule, max_norm, balancer=None):
    """The gradient the loop's joint step leaves in ``.grad`` under ``rule``, flattened (P,)."""
    accelerator = Accelerator(cpu=True)
    model.zero_grad(set_to_none=True)
    losses = {task: model(**batch, task=task).task_loss for task, batch in batches.items()}
    config = TrainingConfig(max_grad_norm=max_norm, clipping=rule)
    backward_and_clip(accelerator, model, weighted_terms(losses, 1, balancer, model), config)
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters() if p.requires_grad])


def test_a_joint_step_sums_the_separately_clipped_task_gradients(tiny_model, batches):
    model = tiny_model(seed=3).eval()  # no dropout: every pass sees the same network
    g = {task: task_gradient(model, batch, task) for task, batch in batches.items()}
    norm = 0.2 * min(float(g["ner"].norm()), float(g["qa"].norm()))  # both tasks get clipped
    per_task = loop_gradient(model, batches, "per_task", norm)
    total = loop_gradient(model, batches, "total", norm)
    assert torch.allclose(per_task, clipped(g["ner"], norm) + clipped(g["qa"], norm), atol=1e-6, rtol=1e-4)
    assert torch.allclose(total, clipped(g["ner"] + g["qa"], norm), atol=1e-6, rtol=1e-4)
    # The smaller task keeps a full share of the update only under the per-task rule.
    small = min(g, key=lambda task: float(g[task].norm()))
    share = lambda grad: float(torch.dot(grad, g[small] / g[small].norm()))
    assert share(per_task) > share(total)


def test_weights_scale_the_clipped_gradient(tiny_model, batches):
    model = tiny_model(seed=4).eval()  # no dropout: every pass sees the same network
    g = {task: task_gradient(model, batch, task) for task, batch in batches.items()}
    norm = 0.1 * min(float(g["ner"].norm()), float(g["qa"].norm()))
    weighted = loop_gradient(model, batches, "per_task", norm, StaticWeights({"ner": 2.0, "qa": 0.5}, joint=True))
    expected = 2.0 * clipped(g["ner"], norm) + 0.5 * clipped(g["qa"], norm)
    assert torch.allclose(weighted, expected, atol=1e-6, rtol=1e-4)
    uncertainty = UncertaintyWeighting()
    with torch.no_grad():
        uncertainty.log_variances.copy_(torch.tensor([0.5, -0.5]))
    weights = torch.exp(-uncertainty.log_variances.detach())
    expected = weights[0] * clipped(g["ner"], norm) + weights[1] * clipped(g["qa"], norm)
    assert torch.allclose(loop_gradient(model, batches, "per_task", norm, uncertainty), expected, atol=1e-6, rtol=1e-4)
    assert uncertainty.log_variances.grad is not None  # the learned weights still get their gradient


def test_pcgrad_clips_each_task_before_the_surgery(tiny_model, batches):
    model = tiny_model(seed=5).eval()  # no dropout: every pass sees the same network
    g = {task: task_gradient(model, batch, task) for task, batch in batches.items()}
    norm = 0.2 * min(float(g["ner"].norm()), float(g["qa"].norm()))
    pieces = clip_gradients([g["ner"][:5], g["ner"][5:]], norm)
    assert torch.allclose(torch.cat(pieces), clipped(g["ner"], norm), atol=1e-6)
    pcgrad = PCGrad(model)
    pcgrad.max_grad_norm = norm
    model.zero_grad(set_to_none=True)
    losses = {task: model(**batch, task=task).task_loss for task, batch in batches.items()}
    pcgrad.combine(losses, 1)
    grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters() if p.requires_grad])
    # Without conflict the surgery changes nothing; either way no task contributes more than its clip.
    assert float(grad.norm()) <= 2 * norm + 1e-5
    assert float(grad.norm()) < float((g["ner"] + g["qa"]).norm())


def test_the_clipping_rule_is_checked_and_the_old_rule_trains(tokenizer, tiny_model, tmp_path):
    tasks = build_tasks(tokenizer, load_tiny("ner"), load_tiny("qa"), qa_max_length=128, doc_stride=48)
    with pytest.raises(ValueError, match="clipping must be one of"):
        train(tiny_model(), tokenizer, tasks, TrainingConfig(output_dir=str(tmp_path), clipping="sum", progress=False))
    ends = {}
    for rule in ("per_task", "total"):
        model = tiny_model(seed=1)
        config = TrainingConfig(output_dir=str(tmp_path / rule), max_steps=3, batch_size=4, progress=False,
                                save_best=False, clipping=rule, max_grad_norm=0.05, eval_every=None)
        train(model, tokenizer, tasks, config, balancer=StaticWeights(joint=True))
        ends[rule] = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert not torch.equal(ends["per_task"], ends["total"])  # the rules give different updates
