"""CoNLL-2003 and SQuAD as ``datasets.DatasetDict`` objects, from local files or the tiny sample.

Columns of the NER datasets (``read_conll``, ``load_conll``, ``load_tiny("ner")``; also
``sources.load_hub_conll``):

    id           str        sentence number within its file: "0", "1", ...
    document_id  int32      which ``-DOCSTART-`` document the sentence is in: 0, 1, ... (-1 from the hub,
                            whose copy has no document boundaries)
    tokens       list[str]  the words of the sentence
    ner_tags     list[ClassLabel(names=NER_LABELS)]  one IOB2 tag per word (stored as class ids)

Columns of the QA datasets (``read_squad``, ``load_squad``, ``load_tiny("qa")``; also ``sources.load_hub_squad``):

    id, title, context, question   str
    answers      {"text": list[str], "answer_start": list[int32]}: character offsets into ``context``;
                 several reference answers on dev questions; two empty lists for a SQuAD v2 question
                 that has no answer.

Where the files are looked for: ``data_dir`` (argument), else ``$NERQA_DATA_DIR`` (the data rule in
:mod:`nerqa_helpers.sources` also takes ``data/`` at the top of the repository when it is filled). In that folder,
CoNLL files are ``conll2003/{train,validation,test}.txt`` (or ``conll/...``); SQuAD files are in
``squad/`` (v2: ``squad_v2/``), see :func:`squad_files` for the order in which file names are tried.
``load_tiny`` reads the small sample that ships inside the package (``nerqa_helpers/tiny_data``).
The hub loaders and the rule for which data a run uses are in :mod:`nerqa_helpers.sources`.

CoNLL-2003 is distributed in IOB1 (an entity starts with ``I-`` unless it directly follows one of
the same type). Every file is converted to IOB2 (every entity starts with ``B-``) while loading;
IOB2 files pass through unchanged, so the scheme never has to be declared.
"""
from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from .base import NER_LABELS

CONLL_SPLITS = ("train", "validation", "test")
SQUAD_SPLITS = ("train", "validation")
DATA_DIR_VARIABLE = "NERQA_DATA_DIR"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / "data"
"""``data/`` at the top of the repository: the folder the data rule uses when ``$NERQA_DATA_DIR`` is
unset and it is filled (:func:`filled_data_dir`); ``nerqa data download`` fills it from the hub."""

SQUAD_FEATURES = Features(
    {
        "id": Value("string"),
        "title": Value("string"),
        "context": Value("string"),
        "question": Value("string"),
        "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))},
    }
)


class DataFormatError(ValueError):
    """A data file breaks its format; the message names the file and the line or question id."""


def ner_features(label_names: list[str] = NER_LABELS) -> Features:
    """The explicit ``Features`` of every NER dataset this module builds."""
    return Features(
        {
            "id": Value("string"),
            "document_id": Value("int32"),
            "tokens": List(Value("string")),
            "ner_tags": List(ClassLabel(names=list(label_names))),
        }
    )


# -- where the data is ------------------------------------------------------------------------------
def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data folder: ``data_dir`` if given, else ``$NERQA_DATA_DIR``, else None (not checked)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_VARIABLE) or None
    return None if chosen is None else Path(chosen).expanduser()


def filled_data_dir(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds every CoNLL split (``conll_files``) and a SQuAD v1.1 pair (``squad_files``)."""
    folder = Path(folder)
    if not folder.is_dir() or not all(path.is_file() for path in conll_files(folder).values()):
        return False
    try:
        squad_files(folder)
    except FileNotFoundError:
        return False
    return True


def tiny_data_dir() -> Path:
    """``nerqa_helpers/tiny_data``: the small sample written for this project (ships with the package)."""
    return Path(__file__).resolve().parent / "tiny_data"


def require_data_dir(data_dir) -> Path:
    """:func:`find_data_dir`, but an error that says what to do when there is no usable folder."""
    folder = find_data_dir(data_dir)
    if folder is None:
        raise FileNotFoundError(
            f"No data folder: pass data_dir=..., set {DATA_DIR_VARIABLE} to a folder holding conll2003/ "
            "and squad/, or use load_tiny('ner') / load_tiny('qa') for the small sample."
        )
    if not folder.is_dir():
        raise FileNotFoundError(f"Data folder {folder} does not exist or is not a folder.")
    return folder


def _existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a clear error when it is missing or is a folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a data file.")
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {path}")
    return path


# -- CoNLL ------------------------------------------------------------------------------------------
def to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (or IOB2) tags → IOB2: an ``I-X`` that does not continue an ``X`` entity becomes ``B-X``.

    ["I-PER", "I-PER", "O", "I-LOC", "B-LOC"] → ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]
    """
    converted, previous_type = [], None
    for tag in tags:
        prefix, _, entity_type = tag.partition("-")
        if prefix == "I" and entity_type != previous_type:
            tag = "B-" + entity_type
        converted.append(tag)
        previous_type = entity_type if prefix in {"B", "I"} else None
    return converted


def _numbered_fields(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) per line; a UTF-8 BOM and Windows line ends are fine."""
    try:
        with open(path, encoding="utf-8-sig") as file:  # text mode turns \r\n into \n
            for number, line in enumerate(file, start=1):
                yield number, line.split()
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text ({error})") from error


def _check_conll_line(fields, width, allowed_tags, path, number) -> tuple[str, str]:
    """(token, NER tag) of one token line; the tag is the last column."""
    if len(fields) < 2:
        raise DataFormatError(f"{path}, line {number}: a token line needs a token and a NER tag: {fields[0]!r}")
    if len(fields) != width:
        raise DataFormatError(
            f"{path}, line {number}: {len(fields)} columns where the file's first token line has {width} "
            f"(token POS chunk NER): {' '.join(fields)!r}"
        )
    if fields[-1] not in allowed_tags:
        raise DataFormatError(
            f"{path}, line {number}: unknown NER tag {fields[-1]!r}; expected one of {sorted(allowed_tags)}"
        )
    return fields[0], fields[-1]


def _conll_sentences(path: Path, allowed_tags: set[str]) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield (document_id, tokens, tags as written) for every sentence of a CoNLL file."""
    document, sentences_in_document, width = 0, 0, None
    tokens, tags = [], []
    for number, fields in _numbered_fields(path):
        if fields and fields[0] != "-DOCSTART-":
            width = width or len(fields)
            token, tag = _check_conll_line(fields, width, allowed_tags, path, number)
            tokens.append(token)
            tags.append(tag)
            continue
        if tokens:  # a blank line or -DOCSTART- ends the sentence
            yield document, tokens, tags
            tokens, tags, sentences_in_document = [], [], sentences_in_document + 1
        if fields and sentences_in_document:  # -DOCSTART- opens the next document
            document, sentences_in_document = document + 1, 0
    if tokens:
        yield document, tokens, tags


def read_conll(path: str | os.PathLike, label_names: list[str] = NER_LABELS) -> Dataset:
    """One CoNLL file (``token POS chunk NER`` per line, blank line between sentences) → Dataset.

    Columns: id, document_id, tokens, ner_tags (IOB2 class ids); see the module docstring.
    Raises DataFormatError naming the file and line for a bad line, or when there is no sentence.
    """
    path = _existing_file(path)
    sentences = list(_conll_sentences(path, set(label_names)))
    if not sentences:
        raise DataFormatError(f"{path}: no sentences found (empty split?)")
    label_ids = {name: index for index, name in enumerate(label_names)}
    columns = {
        "id": [str(index) for index in range(len(sentences))],
        "document_id": [document for document, _, _ in sentences],
        "tokens": [tokens for _, tokens, _ in sentences],
        "ner_tags": [[label_ids[tag] for tag in to_iob2(tags)] for _, _, tags in sentences],
    }
    return Dataset.from_dict(columns, features=ner_features(label_names))


def conll_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    """split → path of ``{train,validation,test}.txt`` in data_dir/conll2003, data_dir/conll or data_dir."""
    data_dir = Path(data_dir)
    folder = next((f for f in (data_dir / "conll2003", data_dir / "conll") if f.is_dir()), data_dir)
    return {split: folder / f"{split}.txt" for split in CONLL_SPLITS}


def entity_types(dataset: Dataset) -> set[str]:
    """The entity types (PER, ORG, ...) that occur in a NER dataset's tags."""
    names = dataset.features["ner_tags"].feature.names
    used = {tag for tags in dataset["ner_tags"] for tag in tags}
    return {names[tag].split("-", 1)[1] for tag in used if names[tag] != "O"}


def check_same_entity_types(splits: Mapping[str, Dataset]) -> None:
    """Raise DataFormatError when the splits do not use the same entity types."""
    found = {split: entity_types(dataset) for split, dataset in splits.items()}
    if len({frozenset(types) for types in found.values()}) > 1:
        described = "; ".join(f"{split}: {sorted(types)}" for split, types in found.items())
        raise DataFormatError(f"The splits use different entity types ({described}).")


def load_conll(
    data_dir: str | os.PathLike | None = None,
    files: Mapping[str, str | os.PathLike] | None = None,
    max_examples: int | Mapping[str, int] | None = None,
    seed: int = 0,
) -> DatasetDict:
    """CoNLL-2003 train / validation / test from a data folder (or ``files``: split → path).

    ``max_examples`` and ``seed`` draw a deterministic subset (see :func:`subset`).
    """
    files = files if files is not None else conll_files(require_data_dir(data_dir))
    splits = DatasetDict({split: read_conll(path) for split, path in files.items()})
    check_same_entity_types(splits)
    return subset(splits, max_examples, seed)


# -- SQuAD ------------------------------------------------------------------------------------------
SQUAD_FILE_CHOICES = {
    1: [
        ("squad", "train-v1.1.json", "dev-v1.1.json"),
        ("squad", "dev-v1.1-split-train.json", "dev-v1.1-split-heldout.json"),
        ("squad", "train.json", "validation.json"),
    ],
    2: [
        ("squad_v2", "train-v2.0.json", "dev-v2.0.json"),
        ("squad", "train-v2.0.json", "dev-v2.0.json"),
        ("squad_v2", "train.json", "validation.json"),
    ],
}
"""(folder, train file, validation file) in the order :func:`squad_files` tries them."""


def _load_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8-sig") as file:
            content = json.load(file)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from error
    if not isinstance(content, dict) or not isinstance(content.get("data"), list):
        raise DataFormatError(f"{path}: expected SQuAD JSON, an object with a 'data' list of articles")
    return content


def _require_fields(record, fields, path, where) -> None:
    missing = [field for field in fields if not isinstance(record, dict) or field not in record]
    if missing:
        raise DataFormatError(f"{path}, {where}: missing field(s) {missing}")


def _squad_records(path: Path, content: dict) -> Iterator[tuple[dict, dict, dict]]:
    """(article, paragraph, question) for every question, after checking the fields they need."""
    for a, article in enumerate(content["data"]):
        _require_fields(article, ["title", "paragraphs"], path, f"article {a}")
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"article {a} ({article['title']}), paragraph {p}"
            _require_fields(paragraph, ["context", "qas"], path, where)
            for q, question in enumerate(paragraph["qas"]):
                _require_fields(question, ["id"], path, f"{where}, question {q}")
                _require_fields(question, ["question", "answers"], path, f"question id {question['id']!r}")
                yield article, paragraph, question


def _aligned_answers(context: str, question: dict, path: Path, misaligned: str) -> tuple[list[dict], int]:
    """The answers whose ``answer_start`` points at their text, and how many were skipped."""
    kept = []
    for answer in question["answers"]:
        _require_fields(answer, ["text", "answer_start"], path, f"question id {question['id']!r}, answer")
        start = answer["answer_start"]
        if isinstance(start, int) and context[start : start + len(answer["text"])] == answer["text"]:
            kept.append(answer)
        elif misaligned == "raise":
            raise DataFormatError(
                f"{path}, question id {question['id']!r}: answer_start {start} does not point at {answer['text']!r}"
            )
    return kept, len(question["answers"]) - len(kept)


def _squad_row(article, paragraph, question, answers, path) -> dict:
    """One row of the QA dataset; checks that answerable questions have an answer and vice versa."""
    impossible = bool(question.get("is_impossible", False))
    if impossible == bool(question["answers"]):
        problem = "is_impossible but has answers" if impossible else "has no answer and is not marked is_impossible"
        raise DataFormatError(f"{path}, question id {question['id']!r}: {problem}")
    return {
        "id": str(question["id"]),
        "title": article["title"],
        "context": paragraph["context"],
        "question": question["question"],
        "answers": {"text": [a["text"] for a in answers], "answer_start": [a["answer_start"] for a in answers]},
    }


def read_squad(path: str | os.PathLike, misaligned: str = "raise") -> Dataset:
    """One SQuAD JSON file (v1.1 or v2.0) → Dataset with one row per question.

    Columns: id, title, context, question, answers; see the module docstring. A missing field,
    a repeated id or an ``answer_start`` that does not point at its answer raises DataFormatError
    naming the file and question id. With ``misaligned="warn"`` such answers are skipped instead
    (and questions left with none), with a warning that gives the counts.
    """
    if misaligned not in {"raise", "warn"}:
        raise ValueError(f"misaligned must be 'raise' or 'warn', not {misaligned!r}")
    path = _existing_file(path)
    rows, seen, skipped, dropped = [], set(), 0, 0
    for article, paragraph, question in _squad_records(path, _load_json(path)):
        if question["id"] in seen:
            raise DataFormatError(f"{path}, question id {question['id']!r}: the id occurs more than once")
        seen.add(question["id"])
        answers, misses = _aligned_answers(paragraph["context"], question, path, misaligned)
        skipped += misses
        if misses and not answers:
            dropped += 1
            continue
        rows.append(_squad_row(article, paragraph, question, answers, path))
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} answers whose answer_start does not point at their text; "
                      f"{dropped} questions were left without an answer and dropped.", stacklevel=2)
    if not rows:
        raise DataFormatError(f"{path}: no questions found (empty split?)")
    return Dataset.from_dict({name: [row[name] for row in rows] for name in SQUAD_FEATURES}, features=SQUAD_FEATURES)


def squad_files(data_dir: str | os.PathLike, version: int = 1) -> dict[str, Path]:
    """split → path of the SQuAD files to use: the first complete choice of ``SQUAD_FILE_CHOICES``.

    v1: official train-v1.1.json + dev-v1.1.json; else the article split of the dev file
    (dev-v1.1-split-train.json + dev-v1.1-split-heldout.json); else train.json + validation.json.
    v2: train-v2.0.json + dev-v2.0.json (in squad_v2/ or squad/); else squad_v2/{train,validation}.json.
    """
    if version not in SQUAD_FILE_CHOICES:
        raise ValueError(f"SQuAD version must be 1 or 2, not {version!r}")
    data_dir = Path(data_dir)
    for folder, train, validation in SQUAD_FILE_CHOICES[version]:
        pair = {"train": data_dir / folder / train, "validation": data_dir / folder / validation}
        if all(path.is_file() for path in pair.values()):
            return pair
    tried = ", ".join(f"{folder}/{train} + {folder}/{dev}" for folder, train, dev in SQUAD_FILE_CHOICES[version])
    raise FileNotFoundError(f"No SQuAD v{version} files in {data_dir}; looked for {tried}.")


def load_squad(
    data_dir: str | os.PathLike | None = None,
    files: Mapping[str, str | os.PathLike] | None = None,
    max_examples: int | Mapping[str, int] | None = None,
    seed: int = 0,
    version: int = 1,
) -> DatasetDict:
    """SQuAD train / validation from a data folder (files chosen by :func:`squad_files`) or ``files``."""
    files = files if files is not None else squad_files(require_data_dir(data_dir), version)
    splits = DatasetDict({split: read_squad(path) for split, path in files.items()})
    return subset(splits, max_examples, seed)


# -- writing the local-file layout ------------------------------------------------------------------
def write_conll(dataset: Dataset, path: str | os.PathLike) -> Path:
    """One NER split → a CoNLL file :func:`read_conll` reads back: ``token POS chunk NER`` per line
    when the split has the hub's ``pos_tags`` / ``chunk_tags`` columns, else ``token NER``.

    A split without document boundaries (``document_id`` missing or -1, as from the hub) gets a
    ``-DOCSTART-`` line before every sentence, so that no sentence borrows another as its document
    context; a split with documents gets one before each document.
    """
    names = {column: dataset.features[column].feature.names
             for column in ("pos_tags", "chunk_tags", "ner_tags") if column in dataset.column_names}
    columns = [column for column in ("pos_tags", "chunk_tags") if column in names] + ["ner_tags"]
    documents = dataset["document_id"] if "document_id" in dataset.column_names else [-1] * len(dataset)
    lines, previous = [], None
    for row, document in zip(dataset, documents):
        if document == -1 or document != previous:
            lines += ["-DOCSTART- -X- -X- O" if len(columns) == 3 else "-DOCSTART- O", ""]
        previous = document
        for position, token in enumerate(row["tokens"]):
            lines.append(" ".join([token] + [names[column][row[column][position]] for column in columns]))
        lines.append("")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_squad(dataset: Dataset, path: str | os.PathLike, version: int = 1) -> Path:
    """One QA split → a SQuAD JSON file (articles → paragraphs → questions, in row order) that
    :func:`read_squad` reads back; ``version=2`` marks questions without answers ``is_impossible``."""
    articles: dict[str, dict[str, list]] = {}
    for row in dataset:
        question = {"id": row["id"], "question": row["question"],
                    "answers": [{"text": text, "answer_start": start}
                                for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"])]}
        if version == 2:
            question["is_impossible"] = not question["answers"]
        articles.setdefault(row["title"], {}).setdefault(row["context"], []).append(question)
    content = {"version": "v2.0" if version == 2 else "1.1",
               "data": [{"title": title, "paragraphs": [{"context": context, "qas": questions}
                                                        for context, questions in paragraphs.items()]}
                        for title, paragraphs in articles.items()]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


# -- tiny sample and subsets ------------------------------------------------------------------------
def load_tiny(task: str, version: int = 1, max_examples=None, seed: int = 0) -> DatasetDict:
    """The bundled small sample (``tiny_data_dir()``): ``task="ner"`` (train/validation/test) or ``"qa"``
    (train/validation)."""
    if task == "ner":
        return load_conll(tiny_data_dir(), max_examples=max_examples, seed=seed)
    if task == "qa":
        return load_squad(tiny_data_dir(), max_examples=max_examples, seed=seed, version=version)
    raise ValueError(f"task must be 'ner' or 'qa', not {task!r}")


def _sample(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    """``size`` rows drawn without replacement by ``seed``, kept in file order (all rows if size is None)."""
    if size is None or size >= len(dataset):
        return dataset
    if size < 1:
        raise ValueError(f"max_examples must be at least 1, got {size}")
    chosen = np.random.default_rng(seed).choice(len(dataset), size=size, replace=False)
    return dataset.select(np.sort(chosen))


def subset(dataset_dict, max_examples: int | Mapping[str, int] | None = None, seed: int = 0):
    """A deterministic subset: at most ``max_examples`` rows per split (an int, or split → int).

    The same seed always gives the same rows. A Dataset is accepted too (then ``max_examples`` is an int).
    """
    if max_examples is None:
        return dataset_dict
    if isinstance(dataset_dict, Dataset):
        return _sample(dataset_dict, max_examples, seed)
    limits = dict(max_examples) if isinstance(max_examples, Mapping) else dict.fromkeys(dataset_dict, max_examples)
    unknown = set(limits) - set(dataset_dict)
    if unknown:
        raise ValueError(f"max_examples names splits {sorted(unknown)} that are not in {list(dataset_dict)}")
    return DatasetDict({split: _sample(data, limits.get(split), seed) for split, data in dataset_dict.items()})


# -- statistics -------------------------------------------------------------------------------------
def ner_dataset_stats(dataset: Dataset) -> dict:
    """Counts of one NER split: sentences, tokens, documents, entities per type and tags."""
    names = dataset.features["ner_tags"].feature.names
    tags = Counter(names[tag] for sentence in dataset["ner_tags"] for tag in sentence)
    return {
        "sentences": len(dataset),
        "tokens": sum(tags.values()),
        "documents": len(set(dataset["document_id"])),
        "entities": {name[2:]: count for name, count in sorted(tags.items()) if name.startswith("B-")},
        "tags": dict(tags.most_common()),
    }


def squad_dataset_stats(dataset: Dataset) -> dict:
    """Counts of one QA split: questions, articles, contexts, answer annotations, unanswerable questions."""
    answer_counts = [len(answers["text"]) for answers in dataset["answers"]]
    return {
        "questions": len(dataset),
        "articles": len(set(dataset["title"])),
        "contexts": len(set(dataset["context"])),
        "answers": sum(answer_counts),
        "unanswerable": answer_counts.count(0),
    }
