"""Each task's data, tokenized once: training features, evaluation features, and references.

``build_tasks`` turns the ``DatasetDict`` of each task into a :class:`TaskData`; the loop
(``training.train``) draws batches from ``train_features``, and ``evaluation.evaluate`` scores
the model on ``eval_features`` against ``references`` (NER) or ``eval_examples`` (QA).
"""
from __future__ import annotations

from dataclasses import dataclass

from .preprocessing import tokenize_ner, tokenize_qa
from .presets import DEFAULTS


@dataclass
class TaskData:
    """A task's tokenized training features, and what evaluation needs.

    ner: ``eval_features`` from ``tokenize_ner`` (with ``example_index`` and ``word_ids``) and
    ``references`` (word-level IOB2 tags per sentence). qa: ``eval_features`` from
    ``tokenize_qa(split_kind="eval")`` and ``eval_examples`` (the raw SQuAD examples).
    """

    train_features: object | None = None
    eval_features: object | None = None
    eval_examples: object | None = None
    references: list | None = None
    version_2: bool = False


def build_tasks(tokenizer, ner=None, qa=None, eval_split: str = "validation",
                ner_max_length: int = DEFAULTS.ner_max_length, ner_stride: int = DEFAULTS.ner_stride,
                qa_max_length: int = DEFAULTS.qa_max_length, doc_stride: int = DEFAULTS.doc_stride,
                ner_context_tokens: int = DEFAULTS.ner_context_tokens, version_2: bool = False) -> dict[str, TaskData]:
    """Tokenize each task's ``DatasetDict`` once: train features, evaluation features, references.

    ``ner``: CoNLL-style DatasetDict (``tokens``, ``ner_tags``); ``qa``: SQuAD-style DatasetDict.
    Either may be ``None`` (single-task runs). The window sizes are those of
    ``MultiTaskConfig.windows()``: ``build_tasks(tokenizer, ner, qa, **model.config.windows())``.
    ``ner_context_tokens`` > 0 puts document context in the NER windows (``ner`` then needs the
    ``context_left`` / ``context_right`` columns of ``sources.load_task_data(..., ner_context=True)``).
    """
    tasks: dict[str, TaskData] = {}
    if ner is not None:
        evaluation = ner[eval_split] if eval_split in ner else None
        names = (ner["train"] if "train" in ner else evaluation).features["ner_tags"].feature.names
        settings = {"max_length": ner_max_length, "stride": ner_stride}
        if ner_context_tokens:  # only then: 0 keeps the map's cache fingerprint of sentence-only windows
            settings["context_tokens"] = ner_context_tokens
        tasks["ner"] = TaskData(
            train_features=tokenize_ner(ner["train"], tokenizer, **settings) if "train" in ner else None,
            eval_features=tokenize_ner(evaluation, tokenizer, **settings) if evaluation is not None else None,
            references=[[names[tag] for tag in tags] for tags in evaluation["ner_tags"]] if evaluation is not None else None,
        )
    if qa is not None:
        evaluation = qa[eval_split] if eval_split in qa else None
        settings = {"max_length": qa_max_length, "doc_stride": doc_stride}
        tasks["qa"] = TaskData(
            train_features=tokenize_qa(qa["train"], tokenizer, split_kind="train", **settings) if "train" in qa else None,
            eval_features=tokenize_qa(evaluation, tokenizer, split_kind="eval", **settings) if evaluation is not None else None,
            eval_examples=evaluation,
            version_2=version_2,
        )
    return tasks
