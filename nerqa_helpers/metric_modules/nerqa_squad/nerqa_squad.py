"""SQuAD exact match and F1 as a local `evaluate` module, backed by ``nerqa_helpers.metrics``.

Loads without the hub: ``evaluate.load("<path to this folder>")`` for SQuAD v1.1, with
``config_name="v2"`` for SQuAD v2.0; or ``nerqa_helpers.metrics.load_metric("squad" / "squad_v2")``.
"""
import datasets
import evaluate

from nerqa_helpers.metrics import squad_scores, squad_v2_scores

_DESCRIPTION = "SQuAD exact match and token F1 (official normalisation, best over references), in percent."
_INPUTS = """
Args:
    predictions: {"id": str, "prediction_text": str}; with config "v2" also "null_score": float
        (how strongly the model prefers "no answer"; "" as prediction_text means "no answer").
    references: {"id": str, "answers": {"text": list[str], "answer_start": list[int]}}; in v2 empty
        lists mark an unanswerable question.
    threshold (v2 only): a prediction counts as "no answer" where its null_score > threshold.
Returns:
    {"exact_match", "f1", "count"}; v2 adds the same keys prefixed HasAns_ and NoAns_.
"""

_ANSWERS = {"text": datasets.Sequence(datasets.Value("string")), "answer_start": datasets.Sequence(datasets.Value("int32"))}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class NerqaSquad(evaluate.Metric):
    """SQuAD v1.1 (default config) or v2.0 (config "v2") scores in the workbook's format."""

    def _info(self):
        prediction = {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")}
        if self.config_name == "v2":
            prediction["null_score"] = datasets.Value("float64")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": prediction, "references": {"id": datasets.Value("string"), "answers": _ANSWERS}}
            ),
        )

    def _compute(self, predictions, references, threshold=0.0):
        texts = {p["id"]: p["prediction_text"] for p in predictions}
        gold = {r["id"]: list(r["answers"]["text"]) for r in references}
        if self.config_name != "v2":
            return squad_scores(texts, gold)
        null_scores = {p["id"]: p["null_score"] for p in predictions}
        return squad_v2_scores(texts, gold, null_scores=null_scores, threshold=threshold)
