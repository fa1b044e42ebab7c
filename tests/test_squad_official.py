"""The SQuAD scorer against the official v1.1 evaluation script, re-typed here from its definition:
answers are lowercased, stripped of ASCII punctuation and of the articles a/an/the, and their
whitespace squeezed; F1 is over the bag of tokens the two share; a question scores its best
reference; the totals are percentages over every question (one without a prediction scores 0)."""
import re
import string
from collections import Counter

import pytest

from nerqa_helpers.metrics import exact_match, squad_scores, token_f1


# -- the official v1.1 script's logic (evaluate-v1.1.py) ------------------------------------------
def official_normalize_answer(text):
    text = text.lower()
    text = "".join(character for character in text if character not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return 2 * precision * recall / (precision + recall)


def official_exact_match_score(prediction, ground_truth):
    return official_normalize_answer(prediction) == official_normalize_answer(ground_truth)


def official_max_over_ground_truths(metric, prediction, ground_truths):
    return max(metric(prediction, ground_truth) for ground_truth in ground_truths)


def official_evaluate(references, predictions):
    exact, f1, total = 0.0, 0.0, 0
    for qid, ground_truths in references.items():
        total += 1
        if qid not in predictions:  # "Unanswered question ... will receive score 0."
            continue
        exact += official_max_over_ground_truths(official_exact_match_score, predictions[qid], ground_truths)
        f1 += official_max_over_ground_truths(official_f1_score, predictions[qid], ground_truths)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


# -- fixed tricky cases: (prediction, references) ----------------------------------------------
CASES = {
    "articles only as whole words": ("the Theatre of an Annex", ["Theatre of Annex"]),
    "article inside a word": ("Athens", ["the Athens"]),
    "punctuation inside tokens": ("U.S.A.", ["USA"]),
    "hyphen joins the words": ("state-of-the-art", ["state of the art"]),
    "apostrophes": ("O'Neil's", ["ONeils"]),
    "unicode punctuation is kept": ("«Paris»", ["Paris"]),
    "unicode letters and dashes": ("Zürich – Genève", ["zürich genève"]),
    "case and spacing": ("  NEW\tYork\n City ", ["new york city"]),
    "empty prediction": ("", ["Denver Broncos"]),
    "prediction of punctuation only": ("...", ["Denver Broncos"]),
    "partial overlap": ("Denver Broncos team", ["Denver Broncos"]),
    "repeated tokens count once each": ("the the cat cat cat", ["cat sat on the mat cat"]),
    "best of several references": ("Carolina", ["Carolina Panthers", "the Panthers", "Carolina"]),
    "F1 and EM pick different references": ("Santa Clara, California", ["Santa Clara", "Levi's Stadium in California"]),
    "numbers and units": ("1,000 km", ["1000 kilometres", "1000 km"]),
    "no overlap at all": ("Gold", ["Silver", "Bronze"]),
    "both sides normalise to nothing": ("The", ["a", "..."]),  # v1.1: exact match 1, F1 0
}


@pytest.mark.parametrize("case", CASES)
def test_each_answer_scores_as_the_official_script_scores_it(case):
    prediction, references = CASES[case]
    assert exact_match(prediction, references) == float(
        official_max_over_ground_truths(official_exact_match_score, prediction, references))
    assert token_f1(prediction, references, version_2=False) == pytest.approx(
        official_max_over_ground_truths(official_f1_score, prediction, references), abs=1e-12)


def test_the_totals_match_the_official_script_with_a_question_left_unanswered():
    references = {f"q{index}": refs for index, (_, refs) in enumerate(CASES.values())}
    predictions = {f"q{index}": prediction for index, (prediction, _) in enumerate(CASES.values())}
    del predictions["q0"]  # scores 0 and still counts
    expected = official_evaluate(references, predictions)
    with pytest.warns(UserWarning, match="1 of 17 questions have no prediction"):
        scores = squad_scores(predictions, references)
    assert scores["count"] == len(references)
    assert scores["exact_match"] == pytest.approx(expected["exact_match"], abs=1e-9)
    assert scores["f1"] == pytest.approx(expected["f1"], abs=1e-9)
    assert 0 < expected["exact_match"] < expected["f1"] < 100  # the cases are not all-or-nothing
