"""Entity-level NER scores as a local `evaluate` module, backed by ``nerqa_helpers.metrics.ner_scores``.

Loads without the hub: ``evaluate.load("<path to this folder>")`` or ``nerqa_helpers.metrics.load_metric("seqeval")``.
"""
import datasets
import evaluate

from nerqa_helpers.metrics import ner_scores

_DESCRIPTION = "Entity-level precision, recall and F1 (micro average), token accuracy and scores per type, in percent."
_INPUTS = """
Args:
    predictions: one list of IOB2 tags (strings) per sentence.
    references: the gold tags, same shape as predictions.
    strict: False for seqeval's default mode, True for strict IOB2 matching.
Returns:
    {"precision", "recall", "f1", "accuracy", "per_type": {TYPE: {"precision", "recall", "f1", "number"}}}
Example:
    >>> metric.compute(predictions=[["B-PER", "I-PER", "O"]], references=[["B-PER", "I-PER", "O"]])["f1"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class NerqaSeqeval(evaluate.Metric):
    """seqeval scores in the workbook's format."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references, strict=False):
        return ner_scores(references, predictions, strict=strict)
