"""Tests of nerqa_helpers.metrics: hand-computed SQuAD and NER scores, seqeval agreement, the evaluate modules."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from nerqa_helpers import metrics
from nerqa_helpers.metrics import exact_match, ner_scores, normalize_answer, squad_scores, squad_v2_scores, token_f1


# -- SQuAD answer normalisation and per-question scores ---------------------------------------------
@pytest.mark.parametrize(
    "text, normalised",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("an apple, a pear & the plum.", "apple pear plum"),
        ("Theatre of the Absurd", "theatre of absurd"),  # "the" only as a whole word
        ("  Lisbon\t\n Portugal ", "lisbon portugal"),
        ("U.S.A.", "usa"),
        ("rock-'n'-roll", "rocknroll"),
        ("A", ""),
        ("", ""),
    ],
)
def test_normalize_answer(text, normalised):
    assert normalize_answer(text) == normalised


def test_exact_match_takes_the_best_reference():
    assert exact_match("the Eiffel Tower", ["Eiffel Tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel Tower", "eiffel."]) == 1.0
    assert exact_match("Paris", ["Lyon", "Nice"]) == 0.0
    assert exact_match("Paris", "paris") == 1.0  # a single reference may be a string
    assert exact_match("", []) == 1.0 and exact_match("Paris", []) == 0.0  # v2: no answer


@pytest.mark.parametrize(
    "prediction, references, expected",
    [
        ("a red car", ["the red bus"], 0.5),  # {red, car} vs {red, bus}: P = R = 1/2
        ("Lisbon, Portugal", ["Lisbon"], 2 / 3),  # P = 1/2, R = 1
        ("Lisbon", ["in Lisbon", "Lisbon Portugal"], 2 / 3),  # best of two references, both 2/3
        ("Lisbon", ["Porto", "lisbon!"], 1.0),
        ("the the cat cat", ["cat"], 2 / 3),  # repeated words count once per match: P = 1/2, R = 1
        ("Rome", ["Milan"], 0.0),
        ("", ["Lisbon"], 0.0),
        ("", [], 1.0),
        ("Lisbon", [], 0.0),
    ],
)
def test_token_f1_hand_computed(prediction, references, expected):
    assert token_f1(prediction, references) == pytest.approx(expected)


def test_squad_scores_hand_computed():
    predictions = {"q1": "the Eiffel Tower", "q2": "red car", "q3": "northern Rome"}
    references = {"q1": ["Eiffel Tower"], "q2": ["the red bus", "a red car!"], "q3": ["Rome"]}
    scores = squad_scores(predictions, references)
    assert scores["count"] == 3
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3) / 3)


def test_squad_scores_missing_prediction_scores_zero_with_a_warning():
    references = {"q1": ["Porto"], "q2": ["Lisbon"]}
    with pytest.warns(UserWarning, match="1 of 2 questions have no prediction"):
        scores = squad_scores({"q1": "Porto", "extra": "ignored"}, references)
    assert scores == {"exact_match": 50.0, "f1": 50.0, "count": 2}
    with pytest.raises(ValueError, match="squad_v2_scores"):
        squad_scores({"q1": ""}, {"q1": []})


def test_squad_v2_scores_breakdown_and_threshold():
    references = {"a": ["Porto"], "b": [], "c": []}
    predictions = {"a": "Porto", "b": "", "c": "Lisbon"}
    scores = squad_v2_scores(predictions, references)
    assert scores == pytest.approx({
        "exact_match": 100 * 2 / 3, "f1": 100 * 2 / 3, "count": 3,
        "HasAns_exact_match": 100.0, "HasAns_f1": 100.0, "HasAns_count": 1,
        "NoAns_exact_match": 50.0, "NoAns_f1": 50.0, "NoAns_count": 2,
    })
    null_scores = {"a": -2.0, "b": 0.5, "c": 1.0}
    assert squad_v2_scores(predictions, references, null_scores, threshold=0.0)["exact_match"] == 100.0
    assert squad_v2_scores(predictions, references, null_scores, threshold=0.7)["NoAns_exact_match"] == 100.0
    assert squad_v2_scores(predictions, references, null_scores, threshold=1.5)["NoAns_exact_match"] == 50.0
    strict = squad_v2_scores(predictions, references, null_scores, threshold=-3.0)
    assert strict["HasAns_f1"] == 0.0 and strict["NoAns_f1"] == 100.0
    only_answerable = squad_v2_scores({"a": "Porto"}, {"a": ["Porto"]})
    assert "NoAns_count" not in only_answerable and only_answerable["HasAns_count"] == 1


def test_best_null_threshold():
    references = {"a": ["Porto"], "b": [], "c": []}
    predictions = {"a": "Porto", "b": "", "c": "Lisbon"}
    null_scores = {"a": -2.0, "b": 0.5, "c": 1.0}
    best = metrics.best_null_threshold(predictions, references, null_scores)
    assert best == {"best_f1": 100.0, "best_f1_threshold": -2.0}
    assert squad_v2_scores(predictions, references, null_scores, best["best_f1_threshold"])["f1"] == 100.0


# -- NER --------------------------------------------------------------------------------------------
REFERENCES = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
PREDICTIONS = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "B-MISC", "O"]]


def test_ner_scores_hand_computed():
    # gold: PER, LOC, ORG, MISC(2 words); predicted: PER, ORG, ORG, MISC(1 word); right: PER, second ORG
    scores = ner_scores(REFERENCES, PREDICTIONS)
    assert scores["precision"] == scores["recall"] == scores["f1"] == pytest.approx(50.0)
    assert scores["accuracy"] == pytest.approx(75.0)  # 6 of 8 tags
    expected = {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 1},
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 1},
        "ORG": {"precision": 50.0, "recall": 100.0, "f1": 100 * 2 / 3, "number": 1},
        "PER": {"precision": 100.0, "recall": 100.0, "f1": 100.0, "number": 1},
    }
    assert list(scores["per_type"]) == list(expected)
    for entity_type, numbers in expected.items():
        assert scores["per_type"][entity_type] == pytest.approx(numbers), entity_type
    assert ner_scores(REFERENCES, PREDICTIONS, strict=True) == scores  # valid IOB2: both modes agree


def test_default_and_strict_differ_on_an_entity_without_b():
    references, predictions = [["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    assert ner_scores(references, predictions)["f1"] == 100.0  # default: I-PER after O starts an entity
    strict = ner_scores(references, predictions, strict=True)
    assert strict["f1"] == 0.0 and strict["per_type"]["PER"]["number"] == 1


CASES = [
    (REFERENCES, PREDICTIONS),
    ([["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]),
    ([["O", "B-LOC", "I-LOC", "B-LOC"], ["B-MISC", "O"]], [["O", "B-LOC", "B-LOC", "B-LOC"], ["I-MISC", "I-MISC"]]),
    ([["O", "O"]], [["B-ORG", "O"]]),
]


@pytest.mark.parametrize("references, predictions", CASES)
@pytest.mark.parametrize("strict", [False, True])
def test_ner_scores_agree_with_seqeval(references, predictions, strict):
    mode = {"mode": "strict", "scheme": IOB2} if strict else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns about 0/0
        expected = {
            "precision": 100 * precision_score(references, predictions, zero_division=0, **mode),
            "recall": 100 * recall_score(references, predictions, zero_division=0, **mode),
            "f1": 100 * f1_score(references, predictions, zero_division=0, **mode),
            "accuracy": 100 * accuracy_score(references, predictions),
        }
    scores = ner_scores(references, predictions, strict=strict)
    assert {key: scores[key] for key in expected} == pytest.approx(expected)


def test_ner_scores_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="Sentence 1: 4 reference tags but 3"):
        ner_scores(REFERENCES, [PREDICTIONS[0], PREDICTIONS[1][:3]])
    with pytest.raises(ValueError, match="2 reference sentences but 1"):
        ner_scores(REFERENCES, PREDICTIONS[:1])
    with pytest.raises(ValueError, match="No sentences"):
        ner_scores([], [])


# -- the local evaluate modules ---------------------------------------------------------------------
SQUAD_PREDICTIONS = {"q1": "the Eiffel Tower", "q2": "red car", "q3": "northern Rome"}
SQUAD_REFERENCES = {"q1": ["Eiffel Tower"], "q2": ["the red bus", "a red car!"], "q3": ["Rome"]}
V2_PREDICTIONS = {"a": "Porto", "b": "", "c": "Lisbon"}
V2_REFERENCES = {"a": ["Porto"], "b": [], "c": []}
V2_NULL = {"a": -2.0, "b": 0.5, "c": 1.0}

MODULE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from nerqa_helpers.metrics import load_metric
    cases = json.loads(sys.argv[1])
    def answers(texts):
        return {"text": texts, "answer_start": [0] * len(texts)}
    seqeval = load_metric("seqeval")
    squad, squad_v2 = load_metric("squad"), load_metric("squad_v2")
    out = {
        "ner": seqeval.compute(predictions=cases["ner"][1], references=cases["ner"][0]),
        "ner_strict": seqeval.compute(predictions=cases["strict"][1], references=cases["strict"][0], strict=True),
        "squad": squad.compute(
            predictions=[{"id": i, "prediction_text": t} for i, t in cases["squad"][0].items()],
            references=[{"id": i, "answers": answers(r)} for i, r in cases["squad"][1].items()]),
        "squad_v2": squad_v2.compute(
            predictions=[{"id": i, "prediction_text": t, "null_score": cases["v2"][2][i]} for i, t in cases["v2"][0].items()],
            references=[{"id": i, "answers": answers(r)} for i, r in cases["v2"][1].items()], threshold=0.7),
    }
    print(json.dumps(out))
    """
)


def test_evaluate_modules_load_offline_and_match_the_functions(tmp_path):
    """Run in a fresh process with the hub switched off and unreachable, and an empty HF cache."""
    cases = {"ner": CASES[2], "strict": CASES[1], "squad": [SQUAD_PREDICTIONS, SQUAD_REFERENCES],
             "v2": [V2_PREDICTIONS, V2_REFERENCES, V2_NULL]}
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9",
                   "HF_HOME": str(tmp_path / "hf_home"), "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run([sys.executable, "-c", MODULE_SCRIPT, json.dumps(cases)], env=environment,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["ner"] == ner_scores(*CASES[2])  # JSON keeps floats exact
    assert scores["ner_strict"] == ner_scores(*CASES[1], strict=True)
    assert scores["squad"] == pytest.approx(squad_scores(SQUAD_PREDICTIONS, SQUAD_REFERENCES))
    assert scores["squad_v2"] == pytest.approx(squad_v2_scores(V2_PREDICTIONS, V2_REFERENCES, V2_NULL, 0.7))


def test_load_metric_rejects_unknown_names():
    with pytest.raises(ValueError, match="Unknown metric 'bleu'"):
        metrics.load_metric("bleu")


def test_metrics_module_needs_no_torch():
    code = "import sys, nerqa_helpers.metrics; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr[-2000:]
