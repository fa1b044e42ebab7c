"""Prediction and scoring: a model's outputs on tokenized features, turned into task metrics.

    features ──predict_features──► per window: NER tag ids (T,) or logits (T, C); QA start, end (T,)
             ──postprocessing──► word tags / answer spans ──metrics──► seqeval F1 / SQuAD EM, F1

``predict_features`` is the one batched forward pass: evaluation runs it over a ``Dataset`` of
features, ``inference.MultiTaskPipeline`` over the plain dict of one call's features.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from .metrics import ner_scores, squad_scores, squad_v2_scores
from .postprocessing import ner_logits_to_tags, postprocess_qa_predictions
from .precision import autocast_for
from .sampling import ENCODER_INPUTS, make_collators
from .tasks import TaskData


def length_sorted_batches(features, batch_size: int, collate):
    """Yield (indices, padded batch) over ``features`` (a ``Dataset`` or a dict of lists), shortest
    features first so each batch pads little; ``indices`` say where each row's result belongs."""
    names = getattr(features, "column_names", None) or list(features)
    keys = [key for key in ENCODER_INPUTS if key in names]
    columns = features.select_columns(keys) if hasattr(features, "select_columns") else features
    order = np.argsort([len(ids) for ids in features["input_ids"]], kind="stable")
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size].tolist()
        if hasattr(columns, "select_columns"):  # a Dataset: one read per batch
            rows = columns[indices]
        else:
            rows = {key: [columns[key][index] for index in indices] for key in keys}
        yield indices, collate([{key: rows[key][row] for key in keys} for row in range(len(indices))])


@torch.no_grad()  # not inference_mode: training goes on with this model after evaluating it
def predict_features(model, features, task: str, tokenizer, batch_size: int = 128, device=None,
                     ner_logits: bool = False, precision: str | None = None) -> list:
    """Run ``task``'s head over tokenized ``features`` (F windows), sorted by length, results in input order.

    features: a ``Dataset`` or a dict of lists with ``input_ids``, ``attention_mask`` (and
    ``token_type_ids``). Returns one entry per feature, numpy, trimmed to the feature's own length
    T: NER — tag ids (T,), or with ``ner_logits`` the float32 logits (T, C); QA — (start_logits
    (T,), end_logits (T,)). The model runs in eval mode on ``device`` (default: the model's), in the
    precision ``precision.autocast_for`` picks (``precision``: "auto"/None, or "bf16", "fp16", "no"
    as in ``TrainingConfig.mixed_precision``), and is put back in the mode it was in.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    collate = make_collators(tokenizer)["qa"]  # plain padding; labels are not needed here
    results: list = [None] * len(features["input_ids"])
    for indices, batch in length_sorted_batches(features, batch_size, collate):
        batch = {key: value.to(device) for key, value in batch.items()}
        with autocast_for(device, precision):
            output = model(**batch, task=task)
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        if task == "ner":
            logits = output.logits.float() if ner_logits else output.logits.argmax(dim=-1)
            values = logits.cpu().numpy()
            for row, index in enumerate(indices):
                results[index] = values[row, : lengths[row]]
        else:
            starts, ends = output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()
            for row, index in enumerate(indices):
                results[index] = (starts[row, : lengths[row]], ends[row, : lengths[row]])
    model.train(was_training)
    return results


def evaluate_ner(model, tokenizer, data: TaskData, batch_size: int = 128, precision: str | None = None) -> dict:
    """Entity-level seqeval scores on words (not sub-words): {"f1", "precision", "recall", ...}."""
    predictions = predict_features(model, data.eval_features, "ner", tokenizer, batch_size, precision=precision)
    num_words = [len(tags) for tags in data.references]
    label_names = model.config.ner_label_names
    predicted_tags = ner_logits_to_tags(data.eval_features, predictions, num_words, label_names)
    return ner_scores(data.references, predicted_tags)


def evaluate_qa(model, tokenizer, data: TaskData, batch_size: int = 128, n_best_size: int = 20,
                max_answer_length: int = 30, precision: str | None = None) -> dict:
    """SQuAD Exact Match and F1 after n-best span post-processing across windows."""
    outputs = predict_features(model, data.eval_features, "qa", tokenizer, batch_size, precision=precision)
    start_logits = [start for start, _ in outputs]
    end_logits = [end for _, end in outputs]
    answers = postprocess_qa_predictions(
        data.eval_examples, data.eval_features, start_logits, end_logits,
        n_best_size=n_best_size, max_answer_length=max_answer_length, version_2=data.version_2,
    )
    references = {example["id"]: example["answers"]["text"] for example in data.eval_examples}
    predictions = {key: answer["text"] for key, answer in answers.items()}
    if data.version_2:
        return squad_v2_scores(predictions, references)
    return squad_scores(predictions, references)



def evaluate(model, tokenizer, tasks: Mapping[str, TaskData], config=None) -> dict:
    """Flat metrics for every task that has evaluation data, plus the combined ``score``.

    ``config``: a ``training.TrainingConfig`` (its ``eval_batch_size``, ``n_best_size``,
    ``max_answer_length`` and ``mixed_precision`` are used) or None for the defaults of
    :func:`evaluate_ner` / :func:`evaluate_qa`.
    """
    ner_options = {} if config is None else {"batch_size": config.eval_batch_size,
                                             "precision": config.mixed_precision}
    qa_options = {} if config is None else {"batch_size": config.eval_batch_size, "n_best_size": config.n_best_size,
                                            "max_answer_length": config.max_answer_length,
                                            "precision": config.mixed_precision}
    metrics: dict = {}
    if "ner" in tasks and tasks["ner"].eval_features is not None:
        scores = evaluate_ner(model, tokenizer, tasks["ner"], **ner_options)
        metrics.update({f"ner_{key}": value for key, value in scores.items() if key != "per_type"})
        metrics["ner_per_type"] = scores.get("per_type", {})
    if "qa" in tasks and tasks["qa"].eval_features is not None:
        scores = evaluate_qa(model, tokenizer, tasks["qa"], **qa_options)
        metrics.update({f"qa_{key}": value for key, value in scores.items()})
    metrics["score"] = combined_score(metrics)
    return metrics


def combined_score(metrics: Mapping) -> float:
    """Mean of NER F1 and QA F1 over the tasks evaluated (the checkpoint selection score)."""
    parts = [metrics[key] for key in ("ner_f1", "qa_f1") if key in metrics]
    return float(np.mean(parts)) if parts else float("nan")
