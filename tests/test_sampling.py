"""The multi-task loader: strategies hit their targets, batches are used once, padding is per batch."""
from collections import Counter

import pytest
from datasets import Dataset

from nerqa_helpers.sampling import (STRATEGIES, MultiTaskDataLoader, make_collators, plan_schedule,
                                    shard_indices, task_probabilities)

SIZES = {"ner": 300, "qa": 100}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_produced_mix_matches_target_over_many_draws(strategy):
    schedule = plan_schedule(SIZES, strategy, total_steps=20_000, temperature=2.0, seed=3)
    share = Counter(schedule)["ner"] / len(schedule)
    if strategy == "annealed":  # the average of proportional (0.75) and uniform (0.5)
        target = 0.625
    else:
        target = task_probabilities(SIZES, strategy, temperature=2.0)["ner"]
    assert abs(share - target) < 0.015, (strategy, share, target)


def test_temperature_interpolates_between_proportional_and_uniform():
    assert task_probabilities(SIZES, "temperature", temperature=1.0)["ner"] == pytest.approx(0.75)
    assert task_probabilities(SIZES, "temperature", temperature=1e6)["ner"] == pytest.approx(0.5, abs=1e-4)
    assert 0.5 < task_probabilities(SIZES, "temperature", temperature=2.0)["ner"] < 0.75


def test_annealing_moves_from_proportional_to_uniform():
    schedule = plan_schedule(SIZES, "annealed", total_steps=40_000, seed=0)
    early, late = Counter(schedule[:4000])["ner"] / 4000, Counter(schedule[-4000:])["ner"] / 4000
    assert early > 0.7 and late < 0.55


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="strategy"):
        plan_schedule(SIZES, "greedy")


def features(tokenizer, texts, **extra):
    encoded = dict(tokenizer(texts))
    return Dataset.from_dict({**encoded, **extra})


@pytest.fixture()
def two_tasks(tokenizer):
    words = "alpha beta gamma delta epsilon zeta eta theta".split()
    texts = [" ".join(words[: 1 + i % 8]) for i in range(37)]
    ner = features(tokenizer, texts)
    ner = ner.add_column("labels", [[0] * len(ids) for ids in ner["input_ids"]])
    ner = ner.add_column("row", list(range(len(ner))))
    qa = features(tokenizer, texts[:13], start_positions=[1] * 13, end_positions=[1] * 13)
    return {"ner": ner, "qa": qa}


@pytest.mark.parametrize("strategy", ["round_robin", "proportional"])
def test_every_batch_is_used_once_per_pass_and_padding_is_per_batch(two_tasks, tokenizer, strategy):
    loader = MultiTaskDataLoader(two_tasks, make_collators(tokenizer), batch_size=4, strategy=strategy, seed=1)
    seen = Counter()
    for (task, indices), (task_again, batch) in zip(loader.schedule, loader):
        assert task == task_again
        lengths = [len(two_tasks[task][i]["input_ids"]) for i in indices]
        assert batch["input_ids"].shape == (len(indices), max(lengths))
        seen.update((task, i) for i in indices)
    assert set(seen.values()) == {1}
    assert len(seen) == len(two_tasks["ner"]) + len(two_tasks["qa"])
    assert loader.task_mix() == loader.planned_mix()


def test_schedule_is_deterministic_for_a_seed(two_tasks, tokenizer):
    make = lambda seed: MultiTaskDataLoader(two_tasks, make_collators(tokenizer), batch_size=4, seed=seed).schedule
    assert make(5) == make(5)
    assert make(5) != make(6)


def test_task_epochs_repeat_a_task_and_grouping_reduces_padding(two_tasks, tokenizer):
    loader = MultiTaskDataLoader(two_tasks, make_collators(tokenizer), batch_size=4, task_epochs={"ner": 2, "qa": 1})
    counts = Counter(task for task, _ in loader.schedule)
    assert counts == {"ner": 2 * 10, "qa": 4}

    def padding(group):
        loader = MultiTaskDataLoader({"ner": two_tasks["ner"]}, make_collators(tokenizer), batch_size=4,
                                     group_by_length=group, seed=0)
        return sum(int((batch["attention_mask"] == 0).sum()) for _, batch in loader)

    assert padding(True) < padding(False)


def test_shards_are_equal_and_cover_everything():
    shards = [shard_indices(10, 3, rank) for rank in range(3)]
    assert {len(shard) for shard in shards} == {4}
    assert set().union(*map(set, shards)) == set(range(10))
