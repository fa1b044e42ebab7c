"""Inference: raw text in, whole-word entities and answer spans (with character offsets) out.

NER   text ──split_words──► words + offsets ──prepare_ner_features──► sub-word windows ──model──►
      logits (F, T, C) ──ner_logits_to_tags──► one tag per word ──iob2_spans──► entities
      (a model trained with document context tags each sentence, ``context.split_sentences``, with
      the words around it in the window, ``context.sentences_in_context``)
QA    (question, context) ──prepare_qa_eval_features──► windows ──model──► start, end (F, T)
      ──postprocess_qa_predictions──► best span over all windows, in characters of the context

The windowing (``preprocessing``), the forward pass (``evaluation.predict_features``) and the span
post-processing (``postprocessing``) are the functions evaluation uses, called on a plain dict: no
``datasets.map`` per call, the tokenizer runs once per call (twice with document context: once to count
sub-words, once for the windows).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import regex
import torch

from .context import sentences_in_context
from .evaluation import predict_features
from .model import MultiTaskConfig, MultiTaskModel
from .postprocessing import ner_logits_to_tags, postprocess_qa_predictions
from .preprocessing import prepare_ner_features, prepare_qa_eval_features

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")

WORD_PATTERN = regex.compile(
    r"""
      (?:\p{L}\.){2,}                           # abbreviations: U.S.  e.g.
    | \d+(?:[.,:]\d+)+                          # numbers: 1,000  3.5  10:30
    | ['’][sS]\b                                # possessive 's (a word of its own, as in CoNLL)
    | \w+(?:[-'’]\w+)*?(?=['’][sS]\b)           # the word before a possessive 's
    | \w+(?:[-'’]\w+)*                          # words, hyphenated words, o'clock
    | (?!\s)\X                                  # any other visible character (emoji stay whole)
    """,
    regex.VERBOSE,
)
"""One match = one word. ``\\w`` here includes combining marks, so "café" and "नमस्ते" stay whole."""


class ModelDirectoryError(OSError, ValueError):
    """The folder is not a saved multi-task model (missing, incomplete, or another kind of model)."""


# -- words and entities ----------------------------------------------------------------------------
def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """CoNLL-like words of ``text`` and their character spans: ``words[i] == text[start:end]``."""
    matches = list(WORD_PATTERN.finditer(text))
    return [match.group() for match in matches], [match.span() for match in matches]


def join_words(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """``" ".join(words)`` and the character span of every word in it."""
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


def iob2_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities (type, first word, last word + 1) in IOB2 tags, decoded as seqeval's default mode:
    B-X starts an entity, I-X continues an X entity and starts one after O or another type."""
    spans: list[list] = []
    previous = "O"
    for index, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-") if "-" in tag else ("I", "", tag)
        if tag == "O":
            previous = "O"
            continue
        continues = prefix == "I" and previous != "O" and previous[2:] == kind
        if continues:
            spans[-1][2] = index + 1
        else:
            spans.append([kind, index, index + 1])
        previous = f"{prefix}-{kind}"
    return [tuple(span) for span in spans]


def entities_from_tags(text: str, words: Sequence[str], spans: Sequence[tuple[int, int]],
                       tags: Sequence[str], scores: Sequence[float]) -> list[dict]:
    """Whole-word entities ``{"entity", "text", "start", "end", "score", "words"}``.

    ``text == text[start:end]`` of the input; ``score`` is the mean over the entity's words of
    the probability of each word's chosen tag.
    """
    entities = []
    for kind, first, stop in iob2_spans(tags):
        start, end = spans[first][0], spans[stop - 1][1]
        entities.append({"entity": kind, "text": text[start:end], "start": start, "end": end,
                         "score": float(np.mean(scores[first:stop])), "words": list(words[first:stop])})
    return entities


def word_probabilities(features, logits: Sequence[np.ndarray], num_words: Sequence[int]) -> list[list[float]]:
    """Per example (N lists of words): softmax probability of each word's arg-max tag.

    features: ``example_index`` and ``word_ids`` (F, T) from ``prepare_ner_features``; logits: one
    (T, C) array per window. The probability is read at the sub-word that scores the word, the
    same position ``ner_logits_to_tags`` reads its tag from; 0.0 for a word with no sub-word.
    """
    scores = [[0.0] * count for count in num_words]
    for example, word_ids, window in zip(features["example_index"], features["word_ids"], logits):
        positions = [position for position, word in enumerate(word_ids) if word >= 0]
        if not positions:
            continue
        chosen = window[positions].astype(np.float64)  # (P, C)
        chosen = np.exp(chosen - chosen.max(axis=-1, keepdims=True))
        for position, probability in zip(positions, (chosen.max(axis=-1) / chosen.sum(axis=-1)).tolist()):
            scores[example][word_ids[position]] = probability
    return scores


# -- loading ---------------------------------------------------------------------------------------
def _directory_problem(directory: Path) -> str | None:
    """What is wrong with ``directory`` as a saved multi-task model, or None."""
    if not directory.is_dir():
        return "does not exist or is not a folder"
    if not (directory / "config.json").is_file():
        return "has no config.json"
    try:
        model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return "has a config.json that is not valid JSON"
    if model_type != MultiTaskConfig.model_type:
        return f"holds a {model_type!r} model, not a multi-task NER + QA model"
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        return "has no weights (model.safetensors or pytorch_model.bin)"
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        return "has no tokenizer files (tokenizer.json / tokenizer_config.json)"
    return None


def _directory_error(directory: Path, problem: str) -> ModelDirectoryError:
    return ModelDirectoryError(
        f"{directory} {problem}. A model folder must hold config.json (model_type "
        f"{MultiTaskConfig.model_type!r}), model.safetensors and the tokenizer files, as "
        "training.save_model(model, tokenizer, folder) writes them (a run's runs/<name>/best)."
    )


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None → CPU; "auto" → CUDA when available, else CPU; anything else as ``torch.device``."""
    if device is None:
        return torch.device("cpu")
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _device_of(model) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _trained_windows(config) -> dict[str, int]:
    """The window sizes stored in a model config (``MultiTaskConfig.windows()``); the preset defaults
    for a config that has none (a stand-in model)."""
    from .presets import DEFAULTS

    windows = getattr(config, "windows", None)
    return windows() if callable(windows) else DEFAULTS.windows()


# -- the pipeline ----------------------------------------------------------------------------------
class MultiTaskPipeline:
    """Entities and answers from a trained :class:`MultiTaskModel` and its tokenizer.

    ``ner_max_length`` / ``ner_stride``: NER windows (as ``prepare_ner_features``); ``qa_max_length``
    / ``doc_stride``: QA windows (as ``prepare_qa_eval_features``); each defaults to the window the
    model was trained with (``model.config.windows()``), and so does ``ner_context_tokens``: with it > 0
    a text is tagged sentence by sentence, its neighbours in the text as context (:meth:`tag_words`).
    ``batch_size``: windows per forward pass.
    The model is put in eval mode on ``device`` (see :func:`resolve_device`; ``None``: where the model
    already is, e.g. the GPU ``accelerator.prepare`` moved it to), and every batch follows it there.
    """

    def __init__(self, model, tokenizer, device: str | torch.device | None = None, ner_max_length: int | None = None,
                 ner_stride: int | None = None, qa_max_length: int | None = None, doc_stride: int | None = None,
                 batch_size: int = 32, ner_context_tokens: int | None = None):
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("MultiTaskPipeline needs a fast tokenizer (it reads character offsets).")
        trained = _trained_windows(model.config)
        ner_max_length = ner_max_length or trained["ner_max_length"]
        ner_stride = trained["ner_stride"] if ner_stride is None else ner_stride
        qa_max_length = qa_max_length or trained["qa_max_length"]
        doc_stride = trained["doc_stride"] if doc_stride is None else doc_stride
        special = tokenizer.num_special_tokens_to_add(pair=True)
        if not 0 <= doc_stride < qa_max_length - special - 1:
            raise ValueError(f"doc_stride must be smaller than qa_max_length - {special + 1}, got {doc_stride}")
        self.device = resolve_device(device) if device is not None else _device_of(model)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.ner_max_length, self.ner_stride = ner_max_length, ner_stride
        self.ner_context_tokens = trained.get("ner_context_tokens", 0) if ner_context_tokens is None else ner_context_tokens
        self.qa_max_length, self.doc_stride = qa_max_length, doc_stride
        self.batch_size = batch_size
        self.max_question_tokens = (qa_max_length - special - doc_stride) // 2

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device | None = None,
                        **settings) -> "MultiTaskPipeline":
        """Load model + tokenizer saved by ``training.save_model`` (on the CPU unless ``device`` says
        otherwise), served with the windows it was trained with (``settings`` may override them); a
        bad folder raises :class:`ModelDirectoryError` saying what the folder should hold."""
        from transformers import AutoTokenizer

        directory = Path(directory).expanduser()
        problem = _directory_problem(directory)
        if problem:
            raise _directory_error(directory, problem)
        try:
            model = MultiTaskModel.from_pretrained(directory)
            tokenizer = AutoTokenizer.from_pretrained(directory)
        except Exception as error:  # safetensors, torch and json errors share no base class
            raise _directory_error(directory, f"could not be loaded ({type(error).__name__}: {error})") from error
        return cls(model, tokenizer, device=device, **settings)  # windows: the config's, unless given

    def __repr__(self) -> str:
        return f"MultiTaskPipeline({type(self.model).__name__}, device={self.device}, labels={self.label_names})"

    @property
    def label_names(self) -> list[str]:
        config = self.model.config
        names = list(getattr(config, "ner_label_names", []) or [])
        return names or [config.id2label[i] for i in range(len(config.id2label))]

    @property
    def version_2(self) -> bool:
        """Whether the model was trained to say "no answer" (SQuAD v2)."""
        return bool(getattr(self.model.config, "version_2_with_negative", False))

    # -- forward -----------------------------------------------------------------------------------
    def _forward(self, features, task: str) -> list:
        """Run ``task``'s head over all windows in ``features`` (``evaluation.predict_features``, the
        forward pass evaluation uses). Returns per window, trimmed to its length: NER logits (T, C);
        QA (start_logits (T,), end_logits (T,)); numpy float32."""
        return predict_features(self.model, features, task, self.tokenizer, self.batch_size, self.device,
                                ner_logits=True)

    # -- NER ---------------------------------------------------------------------------------------
    def ner_features(self, word_lists: Sequence[Sequence[str]], context_left: Sequence[Sequence[str]] | None = None,
                     context_right: Sequence[Sequence[str]] | None = None) -> dict:
        """``prepare_ner_features`` on a batch of word lists (the exact function evaluation maps);
        ``context_left`` / ``context_right`` (words per list) go around them when the model was
        trained with document context (``ner_context_tokens`` > 0)."""
        examples = {"tokens": [list(words) for words in word_lists]}
        if context_left is not None and context_right is not None:
            examples.update(context_left=[list(words) for words in context_left],
                            context_right=[list(words) for words in context_right])
        return prepare_ner_features(examples, self.tokenizer, max_length=self.ner_max_length, stride=self.ner_stride,
                                    context_tokens=self.ner_context_tokens)

    def tag_words(self, word_lists: Sequence[Sequence[str]]) -> tuple[list[list[str]], list[list[float]]]:
        """Tags and tag probabilities per word for N word lists: every word gets exactly one
        prediction, from its first sub-word in the window where it has the most context. A model
        trained with document context (``ner_context_tokens`` > 0) tags each sentence of a list
        (``context.split_sentences``) with the words around it, up to ``ner_context_tokens`` words
        and sub-words per side, as context (``context.sentences_in_context``)."""
        word_lists = [list(words) for words in word_lists]
        tags, scores = [[] for _ in word_lists], [[] for _ in word_lists]
        owners, rows = sentences_in_context(word_lists, self.ner_context_tokens)  # R rows, in order
        if not owners:
            return tags, scores
        features = self.ner_features(rows["tokens"], rows["context_left"], rows["context_right"])
        logits = self._forward(features, "ner")
        num_words = [len(words) for words in rows["tokens"]]
        for owner, row_tags, row_scores in zip(owners, ner_logits_to_tags(features, logits, num_words, self.label_names),
                                               word_probabilities(features, logits, num_words)):
            tags[owner] += row_tags
            scores[owner] += row_scores
        return tags, scores

    def ner_tags(self, words: Sequence[str] | str, with_scores: bool = False):
        """Word-level tags (N,) for a list of words (or a text, split by :func:`split_words`);
        with ``with_scores`` also the probability of each tag."""
        words = split_words(words)[0] if isinstance(words, str) else _checked_words(words)
        tags, scores = self.tag_words([words])
        return (tags[0], scores[0]) if with_scores else tags[0]

    def ner(self, text_or_words: str | Sequence[str], aggregation: str = "first") -> list[dict]:
        """Entities ``{"entity", "text", "start", "end", "score", "words"}`` in a text or a word list.

        A text is split into words (:func:`split_words`); a word list is read as ``" ".join(words)``
        and offsets point into that string. Entities are whole words and ``text ==
        input[start:end]``. Each word's tag comes from its first sub-word (``aggregation="first"``,
        the only mode, as in training); ``score`` is the mean over the entity's words of the
        softmax probability of the chosen tag. Empty or blank input gives ``[]``.
        """
        return self.ner_batch([text_or_words], aggregation)[0]

    def ner_batch(self, texts: Sequence[str | Sequence[str]], aggregation: str = "first") -> list[list[dict]]:
        """:meth:`ner` for several texts (or word lists) in one pass through the model."""
        if aggregation != "first":
            raise ValueError(f"aggregation must be 'first' (the first sub-word's tag), got {aggregation!r}")
        prepared = [_as_words(text) for text in texts]  # (text, words, spans)
        tags, scores = self.tag_words([words for _, words, _ in prepared])
        return [entities_from_tags(text, words, spans, example_tags, example_scores)
                for (text, words, spans), example_tags, example_scores in zip(prepared, tags, scores)]

    # -- QA ----------------------------------------------------------------------------------------
    def fit_question(self, question: str) -> str:
        """The question, cut to at most ``max_question_tokens`` = (qa_max_length - special tokens
        - doc_stride) // 2 tokens (126 for 384 / 128), so every window keeps room for context."""
        question, keep = question.lstrip(), self.max_question_tokens
        while True:  # a cut prefix can tokenize differently (BPE): cut again until it fits
            offsets = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True,
                                     verbose=False)["offset_mapping"]  # long on purpose: no warning
            if len(offsets) <= keep:
                return question
            question = question[: min(offsets[keep - 1][1], len(question) - 1)]

    def qa_features(self, questions: Sequence[str], contexts: Sequence[str]) -> tuple[list[dict], dict]:
        """Examples ``[{"id", "question", "context"}]`` and their windows from
        ``prepare_qa_eval_features`` (the function evaluation maps), questions cut by :meth:`fit_question`."""
        examples = [{"id": str(index), "question": self.fit_question(question), "context": context}
                    for index, (question, context) in enumerate(zip(questions, contexts))]
        columns = {key: [example[key] for example in examples] for key in ("id", "question", "context")}
        return examples, prepare_qa_eval_features(columns, self.tokenizer, max_length=self.qa_max_length,
                                                  doc_stride=self.doc_stride)

    def qa(self, question: str, context: str, top_k: int = 1, max_answer_length: int = 30,
           handle_impossible: bool | None = None, null_threshold: float = 0.0):
        """The answer span of ``question`` in ``context``: ``{"answer", "start", "end", "score"}``
        (a list of ``top_k`` of them when ``top_k > 1``), with ``answer == context[start:end]``.

        Long contexts are cut into windows sharing ``doc_stride`` tokens; spans of all windows
        compete (``postprocess_qa_predictions``). ``score`` is a probability: the softmax over the
        n-best span logits (start + end logit), with the null score among them for v2. ``handle_impossible`` (default: the model config's
        ``version_2_with_negative``) allows the answer ``""`` (start = end = 0) for "no answer".
        Long questions are cut (:meth:`fit_question`). Empty question or context: ValueError.
        """
        return self.qa_batch([question], [context], top_k, max_answer_length, handle_impossible, null_threshold)[0]

    def qa_batch(self, questions: Sequence[str], contexts: Sequence[str], top_k: int = 1,
                 max_answer_length: int = 30, handle_impossible: bool | None = None,
                 null_threshold: float = 0.0) -> list:
        """:meth:`qa` for several (question, context) pairs in one pass through the model."""
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions for {len(contexts)} contexts")
        for question, context in zip(questions, contexts):
            _check_text(question, "question")
            _check_text(context, "context")
        if not isinstance(top_k, int) or top_k < 1 or not isinstance(max_answer_length, int) or max_answer_length < 1:
            raise ValueError(f"top_k and max_answer_length must be positive ints, got {top_k!r}, {max_answer_length!r}")
        version_2 = self.version_2 if handle_impossible is None else bool(handle_impossible)
        examples, features = self.qa_features(questions, contexts)
        outputs = self._forward(features, "qa")
        answers = postprocess_qa_predictions(
            examples, features, [start for start, _ in outputs], [end for _, end in outputs],
            n_best_size=max(20, top_k), max_answer_length=max_answer_length, version_2=version_2,
            null_threshold=null_threshold,
        )
        return [_ranked_answers(answers[example["id"]], top_k, version_2) for example in examples]


# -- checks and shaping ----------------------------------------------------------------------------
def _check_text(value, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"The {name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"The {name} is empty; qa() needs a non-empty question and context.")


def _checked_words(words) -> list[str]:
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise TypeError(f"Expected a text (str) or a list of words (list[str]), got {type(words).__name__}")
    for index, word in enumerate(words):
        if not isinstance(word, str):
            raise TypeError(f"Word {index} is a {type(word).__name__}, not a str")
    return list(words)


def _as_words(text_or_words) -> tuple[str, list[str], list[tuple[int, int]]]:
    """(the text offsets point into, words, their character spans) for a text or a word list."""
    if isinstance(text_or_words, str):
        return (text_or_words, *split_words(text_or_words))
    words = _checked_words(text_or_words)
    text, spans = join_words(words)
    return text, words, spans


def _answer(candidate: dict) -> dict:
    return {"answer": candidate["text"], "start": int(candidate["start"]), "end": int(candidate["end"]),
            "score": float(candidate["score"])}


def _ranked_answers(result: dict, top_k: int, version_2: bool):
    """The chosen answer first, then the other n-best spans (and "no answer" for v2) by score."""
    best = _answer(result)
    if top_k == 1:
        return best
    others = [_answer(candidate) for candidate in result["n_best"]]
    if version_2:
        others.append({"answer": "", "start": 0, "end": 0, "score": float(_null_probability(result))})
    others = [other for other in others if (other["start"], other["end"]) != (best["start"], best["end"])]
    return [best] + sorted(others, key=lambda other: -other["score"])[: top_k - 1]


def _null_probability(result: dict) -> float:
    """Probability of "no answer" in a v2 result: what is left after the n-best spans."""
    return max(0.0, 1.0 - sum(candidate["score"] for candidate in result["n_best"]))
