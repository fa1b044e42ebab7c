"""The multi-task model: heads, weighted loss, sharing depth, save/load."""
import pytest
import torch
from transformers import AutoModel

from nerqa_helpers.data import NER_LABELS
from nerqa_helpers.model import MultiTaskConfig, MultiTaskModel


def batch_of(tokenizer):
    batch = tokenizer(["Ada Lovelace moved to Turin.", "The Orbis Museum opened in Lisbon in May."],
                      padding=True, return_tensors="pt")
    labels = torch.zeros_like(batch["input_ids"])
    labels[:, 0] = -100
    labels[0, 1] = NER_LABELS.index("B-PER")
    return batch, labels


def test_forward_gives_task_shaped_outputs_and_weighted_loss(model, tokenizer):
    batch, labels = batch_of(tokenizer)
    model.config.task_weights = {"ner": 0.5, "qa": 2.0}
    ner = model(**batch, task="ner", labels=labels)
    assert ner.logits.shape == (*batch["input_ids"].shape, len(NER_LABELS))
    assert torch.allclose(ner.loss, 0.5 * ner.task_loss)
    qa = model(**batch, task="qa", start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([3, 4]))
    assert qa.start_logits.shape == batch["input_ids"].shape
    assert torch.allclose(qa.loss, 2.0 * qa.task_loss)


def negative_log_likelihood(logits: torch.Tensor, targets: list[tuple[int, ...]]) -> torch.Tensor:
    """Mean of −log softmax(logits[index])[target] over ``targets`` (index..., target), by hand."""
    terms = []
    for *index, target in targets:
        scores = logits[tuple(index)].double()
        terms.append(scores.exp().sum().log() - scores[target])
    return torch.stack(terms).mean()


def test_losses_are_the_cross_entropies_computed_by_hand(model, tokenizer):
    batch, labels = batch_of(tokenizer)
    model.eval()
    ner = model(**batch, task="ner", labels=labels)
    tagged = [(row, column, int(labels[row, column])) for row, column in (labels != -100).nonzero().tolist()]
    assert len(tagged) == labels.numel() - 2  # the two [CLS] positions are ignored
    assert ner.task_loss.item() == pytest.approx(negative_log_likelihood(ner.logits, tagged).item(), rel=1e-5)
    starts, ends = [1, 2], [3, 4]
    qa = model(**batch, task="qa", start_positions=torch.tensor(starts), end_positions=torch.tensor(ends))
    start_loss = negative_log_likelihood(qa.start_logits, [(0, starts[0]), (1, starts[1])])
    end_loss = negative_log_likelihood(qa.end_logits, [(0, ends[0]), (1, ends[1])])
    assert qa.task_loss.item() == pytest.approx(((start_loss + end_loss) / 2).item(), rel=1e-5)


def test_unknown_task_is_a_clear_error(model, tokenizer):
    batch, _ = batch_of(tokenizer)
    try:
        model(**batch, task="pos")
    except ValueError as error:
        assert "pos" in str(error)
    else:
        raise AssertionError("an unknown task must raise")


@pytest.mark.slow
def test_a_few_steps_on_a_fixed_batch_reduce_both_losses(model, tokenizer):
    torch.manual_seed(0)
    batch, labels = batch_of(tokenizer)
    positions = {"start_positions": torch.tensor([1, 2]), "end_positions": torch.tensor([2, 4])}
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    model.train()
    first = {task: None for task in ("ner", "qa")}
    for _ in range(8):
        for task, targets in (("ner", {"labels": labels}), ("qa", positions)):
            loss = model(**batch, task=task, **targets).loss
            first[task] = first[task] if first[task] is not None else loss.item()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    assert model(**batch, task="ner", labels=labels).loss.item() < 0.5 * first["ner"]
    assert model(**batch, task="qa", **positions).loss.item() < 0.5 * first["qa"]


def test_save_and_load_give_identical_outputs(model, tokenizer, tmp_path):
    batch, _ = batch_of(tokenizer)
    model.eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    for loaded in (MultiTaskModel.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert isinstance(loaded, MultiTaskModel)
        loaded.eval()
        assert torch.equal(loaded(**batch, task="ner").logits, model(**batch, task="ner").logits)
        assert torch.equal(loaded(**batch, task="qa").end_logits, model(**batch, task="qa").end_logits)
    assert loaded.config.ner_label_names == NER_LABELS
    assert loaded.config.id2label[1] == "B-PER"


def test_sharing_depth_controls_which_parameters_are_shared(tokenizer):
    hard = MultiTaskModel.from_encoder("default")
    full = MultiTaskModel.from_encoder("default", shared_layers=hard.config.num_encoder_layers)
    assert [n for n, _ in full.named_parameters()] == [n for n, _ in hard.named_parameters()]
    separate = MultiTaskModel.from_encoder("default", shared_layers=0)
    assert not any(".layer." in name for name, _ in separate.encoder.named_parameters())
    groups = separate.parameter_groups()
    assert groups["ner"] > 0.9 * hard.parameter_groups()["shared"] * 0.5
    # Each task's copy starts from the same pretrained weights, so both paths agree before training.
    batch, _ = batch_of(tokenizer)
    separate.eval()
    hard.eval()
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert torch.allclose(separate.encode(*args, task="ner"), hard.encode(*args), atol=1e-4)
    assert torch.allclose(separate.encode(*args, task="qa"), hard.encode(*args), atol=1e-4)


def test_config_round_trips_through_dict():
    config = MultiTaskConfig(encoder_config={"model_type": "bert", "num_hidden_layers": 2},
                             ner_label_names=NER_LABELS, task_weights={"ner": 1.0, "qa": 0.3}, shared_layers=1)
    again = MultiTaskConfig.from_dict(config.to_dict())
    assert again.task_weights == {"ner": 1.0, "qa": 0.3}
    assert again.shared_layers == 1 and again.num_encoder_layers == 2
