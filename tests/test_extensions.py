"""Extensions: loss balancers, LoRA adapters per task, soft sharing save/load, gradient probe."""
import pytest
import torch
from torch import nn

from nerqa_helpers.data import NER_LABELS
from nerqa_helpers.extensions import (
    GradientConflictProbe, GradNorm, PCGrad, StaticWeights, UncertaintyWeighting, last_shared_parameters,
    trainable_parameters,
)
from nerqa_helpers.model import MultiTaskModel

LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


def tiny_batches(seed=0, size=4, length=12):
    """One NER batch and one QA batch of random token ids with targets."""
    generator = torch.Generator().manual_seed(seed)
    ids = lambda: torch.randint(1, 100, (size, length), generator=generator)  # noqa: E731
    mask = torch.ones(size, length, dtype=torch.long)
    ner = {"input_ids": ids(), "attention_mask": mask,
           "labels": torch.randint(0, len(NER_LABELS), (size, length), generator=generator)}
    start = torch.randint(1, length - 3, (size,), generator=generator)
    qa = {"input_ids": ids(), "attention_mask": mask, "start_positions": start, "end_positions": start + 2}
    return {"ner": ner, "qa": qa}


def run_steps(model, schedule, balancer=None, step_hook=None, lr=1e-3):
    """The training loop's seam in miniature: ``schedule`` is a list of {task: batch} per step."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.01)
    if balancer is not None and list(balancer.parameters()):
        optimizer.add_param_group({"params": list(balancer.parameters()), "weight_decay": 0.0})
    model.train()
    for step, batches in enumerate(schedule, start=1):
        task_losses = {task: model(**batch, task=task).task_loss for task, batch in batches.items()}
        loss = balancer.combine(task_losses, step) if balancer else sum(task_losses.values())
        loss.backward()
        if step_hook is not None:
            step_hook(step, task_losses, model)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model


def alternating(batches, steps):
    return [{task: batches[task]} for _, task in zip(range(steps), ["ner", "qa"] * steps)]


def toy_regression(noisy_task, seed=0):
    """A shared linear layer with two regression heads; ``noisy_task``'s target has irreducible noise
    (same overall scale), so it trains slower."""
    torch.manual_seed(seed)
    shared, heads = nn.Linear(8, 16), nn.ModuleDict({"a": nn.Linear(16, 1), "b": nn.Linear(16, 1)})
    x = torch.randn(256, 8)
    targets = {}
    for task in ("a", "b"):
        y = x @ torch.randn(8, 1)
        if task == noisy_task:
            y = y + y.std() * torch.randn(256, 1)
        targets[task] = y / y.std()

    def losses():
        hidden = torch.relu(shared(x))
        return {task: nn.functional.mse_loss(heads[task](hidden), targets[task]) for task in ("a", "b")}

    return shared, heads, losses


def train_toy(balancer, losses, parameters, steps: int, lr: float) -> list[dict[str, float]]:
    """``steps`` Adam steps on the balancer's combined toy loss; the task weights after each step."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    weights = []
    for step in range(1, steps + 1):
        loss = balancer.combine(losses(), step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        weights.append(balancer.weights())
    return weights


# -- balancers ----------------------------------------------------------------------------------
def test_static_weights_are_the_guides_weighted_sum():
    losses = {"ner": torch.tensor(2.0), "qa": torch.tensor(3.0)}
    balancer = StaticWeights({"ner": 0.5, "qa": 2.0})
    assert balancer.combine(losses, 1).item() == pytest.approx(7.0)
    assert balancer.combine({"qa": losses["qa"]}, 2).item() == pytest.approx(6.0)
    assert not balancer.joint and StaticWeights(joint=True).joint and list(balancer.parameters()) == []


@pytest.mark.slow
@pytest.mark.parametrize("noisy_task", ["a", "b"])
def test_gradnorm_weights_stay_normalised_and_favour_the_slower_task(noisy_task):
    shared, heads, losses = toy_regression(noisy_task)
    balancer = GradNorm(["a", "b"], shared=lambda: [shared.weight])
    before = [p.detach().clone() for p in shared.parameters()]
    history = train_toy(balancer, losses, [*shared.parameters(), *heads.parameters()], steps=100, lr=1e-2)
    for weights in history:
        assert min(weights.values()) > 0
        assert sum(weights.values()) == pytest.approx(2.0, abs=1e-5)
    clean_task = "a" if noisy_task == "b" else "b"
    assert weights[noisy_task] > 1.5 > 0.5 > weights[clean_task]
    assert balancer.parameters() == [] and balancer.joint
    assert not all(torch.equal(a, b) for a, b in zip(before, shared.parameters()))


def test_gradnorm_trains_on_the_weights_before_its_update_and_leaves_grads_alone():
    shared, heads, losses = toy_regression("b")
    balancer = GradNorm(["a", "b"], shared=lambda: [shared.weight])
    task_losses = losses()
    loss = balancer.combine(task_losses, 1)
    assert shared.weight.grad is None  # the norms came from autograd.grad, not .backward
    assert loss.item() == pytest.approx(sum(l.item() for l in task_losses.values()), rel=1e-6)
    assert balancer.weights() != {"a": 1.0, "b": 1.0}


@pytest.mark.slow
def test_gradnorm_on_the_multitask_model_under_bf16_autocast(tiny_model):
    model = tiny_model()
    balancer = GradNorm(["ner", "qa"], shared=model)
    batches = tiny_batches()
    for step in range(1, 4):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            task_losses = {task: model(**batch, task=task).task_loss for task, batch in batches.items()}
        balancer.combine(task_losses, step).backward()
    weights = balancer.weights()
    assert all(torch.isfinite(torch.tensor(list(weights.values()))))
    assert sum(weights.values()) == pytest.approx(2.0, abs=1e-5) and weights["ner"] != 1.0


def test_gradnorm_uses_the_last_shared_layer(tiny_model):
    hard = tiny_model()
    assert last_shared_parameters(hard)[0] is hard.encoder.encoder.layer[1].attention.self.query.weight
    soft = tiny_model(shared_layers=1)
    assert last_shared_parameters(soft)[0] is soft.encoder.encoder.layer[0].attention.self.query.weight
    none = tiny_model(shared_layers=0)
    assert last_shared_parameters(none)[0] is none.encoder.embeddings.word_embeddings.weight
    with pytest.raises(ValueError, match="LoRA"):
        last_shared_parameters(tiny_model(lora=LORA))


@pytest.mark.slow
def test_uncertainty_weights_are_learned_and_trust_the_noisy_task_less():
    shared, heads, losses = toy_regression("b")
    balancer = UncertaintyWeighting(["a", "b"])
    parameters = [*shared.parameters(), *heads.parameters(), *balancer.parameters()]
    weights = train_toy(balancer, losses, parameters, steps=150, lr=2e-2)[-1]
    assert weights["b"] < weights["a"] and abs(weights["a"] - 1.0) > 0.2
    final = {task: loss.item() for task, loss in losses().items()}
    # At the optimum exp(-s) = 1 / L; the weights track it (up to the last steps' drift).
    assert weights["b"] == pytest.approx(1 / final["b"], rel=0.3)
    assert list(balancer.parameters()) == [balancer.log_variances]


def test_pcgrad_removes_conflicts_and_keeps_agreeing_gradients():
    torch.manual_seed(0)
    shared, heads = nn.Linear(4, 4), nn.ModuleDict({"a": nn.Linear(4, 1), "b": nn.Linear(4, 1)})
    model = nn.ModuleDict({"shared": shared, "heads": heads})
    x = torch.randn(16, 4)
    shared_parameters = [*shared.parameters(), *heads["a"].parameters()]  # what both tasks reach

    def task_losses(sign_b):
        hidden = shared(x)  # b's loss partly follows (or opposes) a's, partly its own head
        return {"a": heads["a"](hidden).mean(),
                "b": sign_b * heads["a"](hidden).mean() + 0.5 * hidden[:, :2].pow(2).mean() + heads["b"](x).mean()}

    def plain_gradients(sign_b):
        grads = {}
        for task, loss in task_losses(sign_b).items():
            grads[task] = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared_parameters, retain_graph=True)])
        return grads

    for sign_b in (1.0, -1.0):  # b agrees with a, then b opposes a
        model.zero_grad(set_to_none=True)
        balancer = PCGrad(model)
        dummy = balancer.combine(task_losses(sign_b), 1)
        dummy.backward()  # what the loop does; it must add nothing
        combined = torch.cat([p.grad.reshape(-1) for p in shared_parameters])
        grads = plain_gradients(sign_b)
        if sign_b > 0:
            assert torch.dot(grads["a"], grads["b"]) > 0
            assert torch.allclose(combined, grads["a"] + grads["b"], atol=1e-6)
        else:
            assert torch.dot(grads["a"], grads["b"]) < 0 and balancer.conflicts[-1] < 0
            assert torch.dot(combined, grads["a"]) >= -1e-6 and torch.dot(combined, grads["b"]) >= -1e-6
            assert not torch.allclose(combined, grads["a"] + grads["b"])
        # a parameter only task b reaches gets b's gradient unchanged
        head_b = torch.autograd.grad(task_losses(sign_b)["b"], heads["b"].weight)[0]
        assert torch.allclose(heads["b"].weight.grad, head_b)


# -- sharing, LoRA, save/load ---------------------------------------------------------------------
def perturb_adapters(model, seed=1):
    """LoRA's B starts at zero; give each adapter its own nonzero B so adapters matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("method", ["hard", "soft", "soft0", "lora", "lora+soft"])
def test_every_method_saves_and_reloads_to_equal_outputs(tiny_model, method, tmp_path):
    settings = {"hard": {}, "soft": {"shared_layers": 1}, "soft0": {"shared_layers": 0}, "lora": {"lora": LORA},
                "lora+soft": {"lora": LORA, "shared_layers": 1}}[method]
    model = tiny_model(**settings)
    perturb_adapters(model)
    model.save_pretrained(tmp_path)
    loaded, info = MultiTaskModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert sorted(loaded.state_dict()) == sorted(model.state_dict())
    model.eval()
    loaded.eval()
    batches = tiny_batches()
    for task in ("ner", "qa"):
        ids, mask = batches[task]["input_ids"], batches[task]["attention_mask"]
        assert torch.equal(loaded.encode(ids, mask, task=task), model.encode(ids, mask, task=task))
    assert torch.equal(loaded(**batches["ner"], task="ner").logits, model(**batches["ner"], task="ner").logits)
    assert torch.equal(loaded(**batches["qa"], task="qa").end_logits, model(**batches["qa"], task="qa").end_logits)
    if "lora" in method:
        assert trainable_parameters(loaded) == trainable_parameters(model)


def test_soft_sharing_all_layers_is_hard_sharing_and_zero_shares_only_embeddings(tiny_model):
    hard, full, none = tiny_model(), tiny_model(shared_layers=2), tiny_model(shared_layers=0)
    assert [n for n, _ in full.named_parameters()] == [n for n, _ in hard.named_parameters()]
    assert not any(".layer." in name for name, _ in none.encoder.named_parameters())
    assert len(none.task_layers["ner"]) == len(none.task_layers["qa"]) == 2


def test_lora_freezes_the_encoder_and_keeps_both_adapters_trainable(tiny_model):
    model = tiny_model(lora=LORA)
    batch = tiny_batches()["qa"]
    model(**batch, task="qa")  # peft's own switch would now freeze the NER adapter
    model(**batch, task="ner")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or "_head." in name for name in trainable)
    assert any(".ner." in name for name in trainable) and any(".qa." in name for name in trainable)
    counts = trainable_parameters(model)
    assert counts["shared"] == 0 and counts["total"] == counts["ner"] + counts["qa"] < 0.1 * counts["all"]


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_a_lora_step_changes_only_that_tasks_adapter_and_head(tiny_model, task):
    model = tiny_model(lora=LORA)
    perturb_adapters(model)
    other = "qa" if task == "ner" else "ner"
    model(**tiny_batches()[other], task=other)  # the other adapter was active last
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    run_steps(model, [{task: tiny_batches()[task]}])
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed, "nothing trained"
    assert all(name.startswith(f"{task}_head") or f".{task}." in name for name in changed), changed
    assert f"{task}_head.weight" in changed and any(f"lora_A.{task}." in name for name in changed)


def test_lora_counts_on_the_bundled_encoder_follow_the_formula():
    model = MultiTaskModel.from_encoder("default", lora={"r": 8})
    layers, hidden = model.config.num_encoder_layers, model.config.encoder_config["hidden_size"]
    adapter = layers * 2 * 8 * (hidden + hidden)  # query and value: A (r, in) + B (out, r)
    counts = trainable_parameters(model)
    assert counts["ner"] == adapter + hidden * len(NER_LABELS) + len(NER_LABELS)
    assert counts["qa"] == adapter + hidden * 2 + 2
    assert counts["total"] == counts["ner"] + counts["qa"]


# -- gradient-conflict probe ---------------------------------------------------------------------
@pytest.mark.slow
def test_probe_does_not_change_training_and_gives_cosines_per_layer(tiny_model):
    batches = tiny_batches()
    schedule = alternating(tiny_batches(seed=1), 5)
    model = tiny_model()
    torch.manual_seed(123)  # dropout masks come from here on, with or without the probe
    plain = run_steps(model, schedule)
    probed_model = tiny_model()
    probe = GradientConflictProbe(probed_model, batches, every=2)
    torch.manual_seed(123)
    probed = run_steps(probed_model, schedule, step_hook=probe)
    for (name, a), b in zip(plain.state_dict().items(), probed.state_dict().values()):
        assert torch.equal(a, b), name
    frame = probe.frame()
    assert list(frame["step"].unique()) == [2, 4]
    assert set(frame["layer"]) == {"embeddings", "layer 0", "layer 1", "all"}
    assert frame["cosine"].between(-1, 1).all() and frame["cosine"].notna().all()
    assert probe.summary().shape == (4, 2)


def test_probe_cosine_matches_a_hand_computed_one_and_sees_only_shared_layers(tiny_model):
    batches = tiny_batches()
    model = tiny_model()
    probe = GradientConflictProbe(model, batches, every=1)
    overall = probe.measure(model, step=7)[-1]
    model.eval()
    encoder = [p for p in model.encoder.parameters()]
    flat = {}
    for task, batch in batches.items():
        grads = torch.autograd.grad(model(**batch, task=task).task_loss, encoder, allow_unused=True)
        flat[task] = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, encoder)])
    expected = nn.functional.cosine_similarity(flat["ner"], flat["qa"], dim=0)
    assert overall["layer"] == "all" and overall["step"] == 7
    assert overall["cosine"] == pytest.approx(expected.item(), abs=1e-5)
    assert all(p.grad is None for p in model.parameters())
    assert set(GradientConflictProbe(tiny_model(shared_layers=1), batches).groups) == {"embeddings", "layer 0"}
    with pytest.raises(ValueError):
        GradientConflictProbe(tiny_model(lora=LORA), batches)


@pytest.mark.slow
def test_balancer_and_probe_plug_into_the_training_loop(tiny_model, tokenizer, tmp_path):
    training = pytest.importorskip("nerqa_helpers.training")
    import datasets

    def features(task, seed):
        batch = tiny_batches(seed=seed, size=8)[task]
        return datasets.Dataset.from_dict({key: value.tolist() for key, value in batch.items()})

    from nerqa_helpers.tasks import TaskData

    tasks = {task: TaskData(train_features=features(task, seed)) for seed, task in enumerate(("ner", "qa"))}
    model = tiny_model()
    balancer = GradNorm(["ner", "qa"], shared=model)
    probe = GradientConflictProbe(model, tiny_batches(), every=2)
    config = training.TrainingConfig(output_dir=str(tmp_path), batch_size=4, max_steps=4, log_every=4,
                                     progress=False, save_best=False, learning_rate=1e-3, warmup_ratio=0.0)
    result = training.train(model, tokenizer, tasks, config, step_hook=probe, balancer=balancer)
    frame = result.history.frame("train")
    assert sorted(frame["task"].value_counts().items()) == [("ner", 4), ("qa", 4)]  # joint: both every step
    assert (frame["weight_ner"] + frame["weight_qa"]).round(5).eq(2.0).all()
    # One flush for all four steps, yet each row holds its own step's learning rate and weights.
    per_step = frame.groupby("step")[["lr", "weight_ner"]].agg(["min", "max"])
    assert (per_step[("lr", "min")] == per_step[("lr", "max")]).all()  # both tasks of a step agree
    assert per_step[("lr", "min")].tolist() == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert per_step[("weight_ner", "min")].tolist() == per_step[("weight_ner", "max")].tolist()
    assert per_step[("weight_ner", "min")].nunique() > 1  # GradNorm moved them between steps
    assert list(probe.frame()["step"].unique()) == [2, 4]


def test_balancer_state_round_trips_for_a_checkpoint():
    """What ``accelerator.register_for_checkpointing`` saves and loads: PCGrad's projection order
    and GradNorm's weights, Adam state and first losses come back equal."""
    first, second = PCGrad(nn.Linear(2, 2), seed=1), PCGrad(nn.Linear(2, 2), seed=2)
    first.conflicts.append(-0.5)
    second.load_state_dict(first.state_dict())
    draws = [torch.randperm(8, generator=balancer.generator).tolist() for balancer in (first, second)]
    assert draws[0] == draws[1] and second.conflicts == [-0.5]
    shared = nn.Parameter(torch.ones(3))
    trained, fresh = GradNorm(["ner", "qa"], shared=[shared]), GradNorm(["ner", "qa"], shared=[shared])
    for scale in (1.0, 3.0):
        trained.combine({"ner": (shared * scale).sum(), "qa": (shared * 2).sum()}, step=1)
    fresh.load_state_dict(trained.state_dict())
    assert torch.equal(fresh.task_weights, trained.task_weights) and fresh.task_weights.sum().item() == pytest.approx(2.0)
    assert torch.equal(fresh.initial_losses, trained.initial_losses)
    assert float(fresh.optimizer.state_dict()["state"][0]["step"]) == 2
    assert StaticWeights().state_dict() == {}
