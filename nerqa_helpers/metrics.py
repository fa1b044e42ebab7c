"""Scores for both tasks: entity-level NER scores (seqeval) and SQuAD exact match / F1.

Pure functions: predictions and references in, numbers out, all in percent (0–100). No model and
no torch. The same numbers are available as local ``evaluate`` modules (:func:`load_metric`),
which load without the hub.

NER: an entity counts as found only when its type and its exact span match. ``strict=False`` is
seqeval's default (conlleval-compatible: an ``I-X`` after ``O`` still starts an entity);
``strict=True`` checks IOB2 tags exactly, so such a span is not an entity at all.

SQuAD: answers are compared after :func:`normalize_answer` (lowercase, no punctuation, no articles
a/an/the, single spaces), and a question scores the best match over its reference answers, as in
the official v1.1 and v2.0 evaluation scripts. In v2 an empty list of references means "no answer",
and the prediction ``""`` means the model answered "no answer".
"""
from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from pathlib import Path

from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2

METRIC_MODULES = Path(__file__).parent / "metric_modules"
"""Folder of the local ``evaluate`` modules: ``nerqa_seqeval/`` and ``nerqa_squad/``."""

_AVERAGES = {"micro avg", "macro avg", "weighted avg"}
_PUNCTUATION = set(string.punctuation)


# -- NER --------------------------------------------------------------------------------------------
def _check_same_shape(references: list[list[str]], predictions: list[list[str]]) -> None:
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} reference sentences but {len(predictions)} predicted ones")
    for index, (gold, guess) in enumerate(zip(references, predictions)):
        if len(gold) != len(guess):
            raise ValueError(f"Sentence {index}: {len(gold)} reference tags but {len(guess)} predicted tags")


def _percent(scores: dict) -> dict:
    return {name: 100 * float(scores[name]) for name in ("precision", "recall", "f1-score")}


def ner_scores(references: list[list[str]], predictions: list[list[str]], strict: bool = False) -> dict:
    """Entity-level precision, recall, F1 (micro average), token accuracy and scores per entity type.

    references, predictions: one list of IOB2 tag strings per sentence, of equal lengths.
    Returns {"precision", "recall", "f1", "accuracy", "per_type": {TYPE: {"precision", "recall",
    "f1", "number"}}} in percent; "number" is how many entities of that type the references hold.
    """
    _check_same_shape(references, predictions)
    if not references:
        raise ValueError("No sentences to score.")
    mode = {"mode": "strict", "scheme": IOB2} if strict else {}
    report = classification_report(references, predictions, output_dict=True, zero_division=0, **mode)
    overall = _percent(report["micro avg"])
    per_type = {
        name: {**_renamed(_percent(scores)), "number": int(scores["support"])}
        for name, scores in sorted(report.items())
        if name not in _AVERAGES
    }
    return {**_renamed(overall), "accuracy": 100 * accuracy_score(references, predictions), "per_type": per_type}


def _renamed(scores: dict) -> dict:
    return {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1-score"]}


# -- SQuAD ------------------------------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, squeeze whitespace (official SQuAD rule)."""
    text = "".join(character for character in text.lower() if character not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _as_list(references: str | list[str]) -> list[str]:
    return [references] if isinstance(references, str) else list(references)


def _as_references(references: str | list[str]) -> list[str]:
    """A list of reference answers; no reference at all stands for the answer "" (v2: unanswerable)."""
    return _as_list(references) or [""]


def exact_match(prediction: str, references: str | list[str]) -> float:
    """1.0 when the normalised prediction equals one of the normalised references, else 0.0."""
    guess = normalize_answer(prediction)
    return max(float(guess == normalize_answer(reference)) for reference in _as_references(references))


def _f1(prediction: str, reference: str, version_2: bool = True) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not gold:  # v2: "no answer" matches only "no answer"; v1.1: an empty side scores 0
        return float(version_2 and predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: str | list[str], version_2: bool = True) -> float:
    """Best bag-of-words F1 (0–1) between the normalised prediction and any reference.

    When one side normalises to nothing ("" or "The"), the v2 script scores 1 if both do (no
    answer against no answer), the v1.1 script (``version_2=False``) always 0.
    """
    return max(_f1(prediction, reference, version_2) for reference in _as_references(references))


def _question_scores(predictions: dict[str, str], references: dict[str, list[str]],
                     version_2: bool = True) -> dict[str, tuple]:
    """id → (exact match, F1) for every reference question; a question without prediction scores 0."""
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        warnings.warn(f"{len(missing)} of {len(references)} questions have no prediction and score 0 "
                      f"(first: {missing[0]!r}).", stacklevel=3)
    scores = {qid: (0.0, 0.0) for qid in missing}
    for qid, refs in references.items():
        if qid in predictions:
            scores[qid] = (exact_match(predictions[qid], refs), token_f1(predictions[qid], refs, version_2))
    return scores


def _summary(per_question: dict[str, tuple], ids: list[str], prefix: str = "") -> dict:
    """Mean exact match and F1 (percent) over ``ids``, with their count."""
    count = len(ids)
    return {
        f"{prefix}exact_match": 100 * sum(per_question[qid][0] for qid in ids) / max(count, 1),
        f"{prefix}f1": 100 * sum(per_question[qid][1] for qid in ids) / max(count, 1),
        f"{prefix}count": count,
    }


def squad_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict:
    """SQuAD v1.1 scores: {"exact_match", "f1", "count"}, averaged over the reference questions.

    predictions: id → answer text; references: id → list of reference answer texts (at least one).
    """
    if not references:
        raise ValueError("No reference questions to score.")
    unanswerable = [qid for qid, refs in references.items() if not _as_list(refs)]
    if unanswerable:
        raise ValueError(f"{len(unanswerable)} questions have no reference answer (first: {unanswerable[0]!r}); "
                         "use squad_v2_scores for SQuAD v2.")
    return _summary(_question_scores(predictions, references, version_2=False), list(references))


def _apply_null_threshold(predictions, null_scores, threshold) -> dict[str, str]:
    """Replace a prediction by "" (no answer) where its null score is above ``threshold``."""
    if null_scores is None:
        return dict(predictions)
    return {qid: "" if null_scores.get(qid, float("-inf")) > threshold else text for qid, text in predictions.items()}


def squad_v2_scores(
    predictions: dict[str, str],
    references: dict[str, list[str]],
    null_scores: dict[str, float] | None = None,
    threshold: float = 0.0,
) -> dict:
    """SQuAD v2.0 scores with the answerable (HasAns_) and unanswerable (NoAns_) questions apart.

    references: id → reference texts, [] for an unanswerable question. predictions: id → text, ""
    for "no answer". null_scores (optional): id → how strongly the model prefers "no answer"; the
    prediction becomes "" where null_scores[id] > threshold. Returns {"exact_match", "f1", "count"}
    plus the same keys prefixed HasAns_ / NoAns_ for each group that has questions.
    """
    if not references:
        raise ValueError("No reference questions to score.")
    answers = _apply_null_threshold(predictions, null_scores, threshold)
    per_question = _question_scores(answers, references)
    scores = _summary(per_question, list(references))
    for prefix, answerable in (("HasAns_", True), ("NoAns_", False)):
        ids = [qid for qid, refs in references.items() if bool(_as_list(refs)) == answerable]
        if ids:
            scores.update(_summary(per_question, ids, prefix))
    return scores


def best_null_threshold(predictions: dict[str, str], references: dict[str, list[str]],
                        null_scores: dict[str, float]) -> dict:
    """The null-score threshold that maximises v2 F1 (as the official script's best_f1_thresh).

    Returns {"best_f1", "best_f1_threshold"}; use the threshold with :func:`squad_v2_scores`.
    """
    answered = _question_scores(predictions, references)
    # Start from "every question gets no answer", then answer questions in order of null score.
    total = sum(1.0 for refs in references.values() if not _as_list(refs))
    best, best_threshold = total, float("-inf")
    for qid in sorted(references, key=lambda qid: null_scores.get(qid, float("-inf"))):
        has_answer = bool(_as_list(references[qid]))
        total += answered[qid][1] - (0.0 if has_answer else 1.0)
        if total > best:
            best, best_threshold = total, null_scores.get(qid, float("-inf"))
    return {"best_f1": 100 * best / len(references), "best_f1_threshold": best_threshold}


# -- evaluate modules -------------------------------------------------------------------------------
_METRIC_NAMES = {
    "nerqa_seqeval": ("nerqa_seqeval", None), "seqeval": ("nerqa_seqeval", None), "ner": ("nerqa_seqeval", None),
    "nerqa_squad": ("nerqa_squad", None), "squad": ("nerqa_squad", None), "qa": ("nerqa_squad", None),
    "squad_v2": ("nerqa_squad", "v2"),
}


def load_metric(name: str, config_name: str | None = None):
    """``evaluate.load`` of a local module (works offline): "seqeval"/"ner", "squad"/"qa" or "squad_v2".

    Its ``compute`` returns the same dict as :func:`ner_scores` / :func:`squad_scores` /
    :func:`squad_v2_scores`.
    """
    if name not in _METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; choose one of {sorted(_METRIC_NAMES)}")
    import evaluate  # imported here: it takes seconds, and the functions above do not need it
    folder, default_config = _METRIC_NAMES[name]
    return evaluate.load(str(METRIC_MODULES / folder), config_name=config_name or default_config)
