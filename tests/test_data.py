"""Tests of nerqa_helpers.data: tag conversion, the file readers, bad input, subsets, the tiny sample."""
import json
import warnings
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nerqa_helpers import data
from nerqa_helpers.data import NER_LABELS, DataFormatError
from nerqa_helpers.presets import get_preset

TINY = data.tiny_data_dir()
TYPES = ["PER", "ORG", "LOC", "MISC"]

GOOD_CONLL = """-DOCSTART- -X- -X- O

Maria NNP I-NP I-PER
Okafor NNP I-NP I-PER
visited VBD I-VP O
Porto NNP I-NP I-LOC
Braga NNP B-NP B-LOC
. . O O

-DOCSTART- -X- -X- O

Veltrix NNP I-NP I-ORG
hired VBD I-VP O
Danish JJ I-NP I-MISC
engineers NNS I-NP O
"""


def write(tmp_path, name, text, encoding="utf-8", newline="\n"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding, newline=newline)
    return path


def tags_of(dataset, row):
    names = dataset.features["ner_tags"].feature.names
    return [names[i] for i in dataset[row]["ner_tags"]]


# -- IOB1 → IOB2 ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "iob1, iob2",
    [
        (["I-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"]),
        (["I-LOC", "B-LOC"], ["B-LOC", "B-LOC"]),  # two touching entities of one type
        (["I-LOC", "I-LOC", "B-LOC", "I-LOC"], ["B-LOC", "I-LOC", "B-LOC", "I-LOC"]),
        (["I-PER", "I-ORG"], ["B-PER", "B-ORG"]),  # a type change starts an entity
        (["O", "I-MISC", "O", "I-MISC"], ["O", "B-MISC", "O", "B-MISC"]),
        (["B-PER", "I-PER", "O", "B-ORG"], ["B-PER", "I-PER", "O", "B-ORG"]),  # IOB2 stays as it is
        ([], []),
    ],
)
def test_to_iob2_cases(iob1, iob2):
    assert data.to_iob2(iob1) == iob2


def entities_iob1(tags):
    """Entities as (type, start, end) read the IOB1 way: I-X continues X unless it is B-X."""
    spans = []
    for index, tag in enumerate(tags):
        kind = tag[2:] if tag != "O" else None
        continues = kind and index > 0 and tags[index - 1][2:] == kind and not tag.startswith("B-")
        if continues:
            spans[-1] = (kind, spans[-1][1], index + 1)
        elif kind:
            spans.append((kind, index, index + 1))
    return spans


def entities_iob2(tags):
    """Entities as (type, start, end) read the IOB2 way: every entity starts with B-."""
    spans = []
    for index, tag in enumerate(tags):
        if tag.startswith("B-"):
            spans.append((tag[2:], index, index + 1))
        elif tag.startswith("I-"):
            assert spans and spans[-1][0] == tag[2:] and spans[-1][2] == index, "I- must continue an entity"
            spans[-1] = (tag[2:], spans[-1][1], index + 1)
    return spans


iob1_tags = st.lists(st.sampled_from(["O", "I-PER", "I-LOC", "B-LOC", "I-ORG"]), max_size=12)


@given(iob1_tags)
def test_to_iob2_keeps_every_entity_and_is_idempotent(tags):
    converted = data.to_iob2(tags)
    assert entities_iob2(converted) == entities_iob1(tags)
    assert data.to_iob2(converted) == converted


# -- reading CoNLL ----------------------------------------------------------------------------------
def test_read_conll_converts_and_numbers_documents(tmp_path):
    dataset = data.read_conll(write(tmp_path, "a.txt", GOOD_CONLL))
    assert dataset["tokens"] == [["Maria", "Okafor", "visited", "Porto", "Braga", "."],
                                 ["Veltrix", "hired", "Danish", "engineers"]]
    assert tags_of(dataset, 0) == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O"]
    assert tags_of(dataset, 1) == ["B-ORG", "O", "B-MISC", "O"]
    assert dataset["document_id"] == [0, 1]
    assert dataset["id"] == ["0", "1"]
    assert dataset.features["ner_tags"].feature.names == NER_LABELS


def test_windows_line_endings_and_bom_load_the_same(tmp_path):
    plain = data.read_conll(write(tmp_path, "plain.txt", GOOD_CONLL))
    windows = data.read_conll(write(tmp_path, "windows.txt", GOOD_CONLL, encoding="utf-8-sig", newline="\r\n"))
    assert (tmp_path / "windows.txt").read_bytes().startswith(b"\xef\xbb\xbf")
    assert windows.to_dict() == plain.to_dict()


def test_sentence_without_blank_line_before_docstart_and_no_trailing_blank(tmp_path):
    text = "A NN I-NP I-PER\n-DOCSTART- -X- -X- O\nB NN I-NP I-LOC"
    dataset = data.read_conll(write(tmp_path, "a.txt", text))
    assert dataset["tokens"] == [["A"], ["B"]]
    assert dataset["document_id"] == [0, 1]


@pytest.mark.parametrize(
    "bad_line, line_number, words",
    [
        ("Porto NNP I-LOC", 5, "columns"),  # 3 columns in a 4-column file
        ("Porto NNP I-NP I-LOC extra", 5, "columns"),
        ("Porto NNP I-NP I-CITY", 5, "unknown NER tag"),
        ("Porto NNP I-NP i-loc", 5, "unknown NER tag"),
    ],
)
def test_malformed_conll_line_names_file_and_line(tmp_path, bad_line, line_number, words):
    lines = GOOD_CONLL.splitlines()
    lines[line_number - 1] = bad_line
    path = write(tmp_path, "broken.txt", "\n".join(lines))
    with pytest.raises(DataFormatError, match=rf"broken\.txt, line {line_number}: .*{words}"):
        data.read_conll(path)


def test_single_column_line_is_an_error(tmp_path):
    with pytest.raises(DataFormatError, match=r"one\.txt, line 1: .*token and a NER tag"):
        data.read_conll(write(tmp_path, "one.txt", "Porto\n"))


@pytest.mark.parametrize("text", ["", "\n\n", "-DOCSTART- -X- -X- O\n\n"])
def test_empty_conll_split_is_an_error(tmp_path, text):
    with pytest.raises(DataFormatError, match=r"empty\.txt: no sentences"):
        data.read_conll(write(tmp_path, "empty.txt", text))


def test_not_utf8_is_a_format_error(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Jos\xe9 NNP I-NP I-PER\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match="latin.txt"):
        data.read_conll(path)


def test_missing_file_and_folder_in_place_of_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        data.read_conll(tmp_path / "nowhere.txt")
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(IsADirectoryError, match="folder.txt"):
        data.read_conll(tmp_path / "folder.txt")
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        data.read_squad(tmp_path / "nowhere.json")
    with pytest.raises(IsADirectoryError, match="folder.txt"):
        data.read_squad(tmp_path / "folder.txt")


def test_load_conll_needs_every_split_file(tmp_path):
    folder = tmp_path / "conll2003"
    folder.mkdir()
    write(folder, "train.txt", GOOD_CONLL)
    write(folder, "validation.txt", GOOD_CONLL)
    with pytest.raises(FileNotFoundError, match=r"test\.txt"):
        data.load_conll(tmp_path)
    write(folder, "test.txt", GOOD_CONLL)
    assert set(data.load_conll(tmp_path)) == {"train", "validation", "test"}


def test_entity_types_differing_between_splits_is_an_error(tmp_path):
    other = GOOD_CONLL.replace("I-MISC", "O")
    files = {"train": write(tmp_path, "train.txt", GOOD_CONLL), "validation": write(tmp_path, "dev.txt", other)}
    with pytest.raises(DataFormatError, match="different entity types.*validation: \\['LOC', 'ORG', 'PER'\\]"):
        data.load_conll(files=files)


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_VARIABLE, raising=False)
    assert data.find_data_dir() is None
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(tmp_path))
    assert data.find_data_dir() == tmp_path
    assert data.find_data_dir(TINY) == TINY  # the argument wins
    monkeypatch.delenv(data.DATA_DIR_VARIABLE)
    with pytest.raises(FileNotFoundError, match="NERQA_DATA_DIR"):
        data.load_conll()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_squad(tmp_path / "absent")


# -- every entity of a file survives ----------------------------------------------------------------
def raw_sentences(path):
    """(tokens, IOB1 tags) per sentence, read without the package."""
    sentences, tokens, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        fields = line.split()
        if fields and fields[0] != "-DOCSTART-":
            tokens.append(fields[0])
            tags.append(fields[-1])
        elif tokens:
            sentences.append((tokens, tags))
            tokens, tags = [], []
    return sentences


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_every_entity_of_the_tiny_files_survives(split):
    path = TINY / "conll" / f"{split}.txt"
    dataset = data.read_conll(path)
    raw = raw_sentences(path)
    assert dataset["tokens"] == [tokens for tokens, _ in raw]
    for row, (tokens, tags) in enumerate(raw):
        assert entities_iob2(tags_of(dataset, row)) == entities_iob1(tags)
    expected = Counter(kind for _, tags in raw for kind, _, _ in entities_iob1(tags))
    assert data.ner_dataset_stats(dataset)["entities"] == dict(sorted(expected.items()))


# -- the tiny sample --------------------------------------------------------------------------------
def test_tiny_ner_sample_covers_what_the_notebooks_need():
    splits = data.load_tiny("ner")
    assert {split: len(d) for split, d in splits.items()} == {"train": 170, "validation": 50, "test": 48}
    for split, dataset in splits.items():
        stats = data.ner_dataset_stats(dataset)
        assert set(stats["entities"]) == set(TYPES), split
        assert stats["documents"] >= 3, split
        multi_word = [s for s in entities_in(dataset) if len(s[1].split()) > 1]
        assert multi_word, split
        raw_tags = [tag for _, tags in raw_sentences(TINY / "conll" / f"{split}.txt") for tag in tags]
        assert any(tag.startswith("B-") for tag in raw_tags), f"{split} has no touching entities"
    train_names = {name for _, name in entities_in(splits["train"])}
    validation_names = {name for _, name in entities_in(splits["validation"])}
    assert len(train_names & validation_names) >= 8, "train and validation should share entity names"


def entities_in(dataset):
    names = dataset.features["ner_tags"].feature.names
    found = []
    for tokens, tags in zip(dataset["tokens"], dataset["ner_tags"]):
        for kind, start, end in entities_iob2([names[t] for t in tags]):
            found.append((kind, " ".join(tokens[start:end])))
    return found


def test_tiny_qa_sample():
    v1, v2 = data.load_tiny("qa"), data.load_tiny("qa", version=2)
    assert {s: len(d) for s, d in v1.items()} == {"train": 320, "validation": 87}
    assert {s: len(d) for s, d in v2.items()} == {"train": 357, "validation": 95}
    for dataset in [*v1.values(), *v2.values()]:
        for row in dataset:
            for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
                assert row["context"][start : start + len(text)] == text
    assert all(len(a["text"]) >= 2 for a in v1["validation"]["answers"]), "dev questions carry several references"
    assert all(data.squad_dataset_stats(d)["unanswerable"] > 0 for d in v2.values())
    assert data.squad_dataset_stats(v1["train"])["unanswerable"] == 0


def test_tiny_qa_validation_asks_new_questions():
    v2 = data.load_tiny("qa", version=2)
    assert not set(v2["train"]["question"]) & set(v2["validation"]["question"])
    assert not set(v2["train"]["id"]) & set(v2["validation"]["id"])


def test_tiny_qa_has_answers_beyond_the_first_window(tokenizer):
    """The tiny preset's QA window holds fewer context tokens than the long paragraphs: some answers
    must need the second window."""
    window = get_preset("tiny").qa_max_length
    for split in ("train", "validation"):
        dataset = data.load_tiny("qa")[split]
        late = []
        for row in dataset:
            encoding = tokenizer(row["question"], row["context"], return_offsets_mapping=True)
            start = row["answers"]["answer_start"][0]
            token = next(i for i, (s, e) in enumerate(encoding["offset_mapping"])
                         if encoding.sequence_ids()[i] == 1 and e > start)
            late.append(token >= window)
        assert any(late), split


# -- reading SQuAD ----------------------------------------------------------------------------------
def squad_json(**question_changes):
    question = {"id": "q1", "question": "Where?", "answers": [{"text": "Porto", "answer_start": 11}]}
    question.update(question_changes)
    question = {k: v for k, v in question.items() if v is not None}
    paragraph = {"context": "Factory in Porto.", "qas": [question]}
    return {"version": "1.1", "data": [{"title": "Plant", "paragraphs": [paragraph]}]}


def write_json(tmp_path, name, content):
    return write(tmp_path, name, json.dumps(content))


def test_read_squad_good_file(tmp_path):
    dataset = data.read_squad(write_json(tmp_path, "ok.json", squad_json()))
    assert dataset[0] == {"id": "q1", "title": "Plant", "context": "Factory in Porto.", "question": "Where?",
                          "answers": {"text": ["Porto"], "answer_start": [11]}}
    assert dataset.features == data.SQUAD_FEATURES


@pytest.mark.parametrize("field", ["question", "answers"])
def test_squad_missing_question_field_names_file_and_id(tmp_path, field):
    path = write_json(tmp_path, "missing.json", squad_json(**{field: None}))
    with pytest.raises(DataFormatError, match=rf"missing\.json, question id 'q1': missing field.*{field}"):
        data.read_squad(path)


def test_squad_missing_id_or_answer_field_or_context(tmp_path):
    with pytest.raises(DataFormatError, match=r"noid\.json, article 0 \(Plant\), paragraph 0, question 0: .*id"):
        data.read_squad(write_json(tmp_path, "noid.json", squad_json(id=None)))
    content = squad_json(answers=[{"text": "Porto"}])
    with pytest.raises(DataFormatError, match=r"nostart\.json, question id 'q1', answer: .*answer_start"):
        data.read_squad(write_json(tmp_path, "nostart.json", content))
    content = squad_json()
    del content["data"][0]["paragraphs"][0]["context"]
    with pytest.raises(DataFormatError, match=r"nocontext\.json, article 0 \(Plant\), paragraph 0: .*context"):
        data.read_squad(write_json(tmp_path, "nocontext.json", content))


def test_squad_misaligned_answer_start(tmp_path):
    content = squad_json(answers=[{"text": "Porto", "answer_start": 3}])
    path = write_json(tmp_path, "shifted.json", content)
    with pytest.raises(DataFormatError, match=r"shifted\.json, question id 'q1': answer_start 3"):
        data.read_squad(path)
    content["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "q2", "question": "What?", "answers": [{"text": "Factory", "answer_start": 0},
                                                     {"text": "Factory", "answer_start": 1}]})
    path = write_json(tmp_path, "shifted2.json", content)
    with pytest.warns(UserWarning, match="skipped 2 answers.*1 questions were left without an answer"):
        dataset = data.read_squad(path, misaligned="warn")
    assert dataset["id"] == ["q2"]
    assert dataset[0]["answers"] == {"text": ["Factory"], "answer_start": [0]}


def test_squad_other_bad_records(tmp_path):
    content = squad_json()
    content["data"][0]["paragraphs"][0]["qas"] *= 2
    with pytest.raises(DataFormatError, match=r"twice\.json, question id 'q1': the id occurs more than once"):
        data.read_squad(write_json(tmp_path, "twice.json", content))
    with pytest.raises(DataFormatError, match=r"noanswer\.json, question id 'q1': has no answer"):
        data.read_squad(write_json(tmp_path, "noanswer.json", squad_json(answers=[])))
    with pytest.raises(DataFormatError, match=r"bad\.json, line 1: not valid JSON"):
        data.read_squad(write(tmp_path, "bad.json", "{oops"))
    with pytest.raises(DataFormatError, match=r"list\.json: expected SQuAD JSON"):
        data.read_squad(write_json(tmp_path, "list.json", []))
    with pytest.raises(DataFormatError, match=r"empty\.json: no questions"):
        data.read_squad(write_json(tmp_path, "empty.json", {"version": "1.1", "data": []}))


def test_squad_v2_unanswerable_gives_empty_lists(tmp_path):
    content = squad_json(answers=[], is_impossible=True, plausible_answers=[{"text": "Porto", "answer_start": 11}])
    dataset = data.read_squad(write_json(tmp_path, "v2.json", content))
    assert dataset[0]["answers"] == {"text": [], "answer_start": []}


def test_load_squad_picks_files_in_order(tmp_path):
    folder = tmp_path / "squad"
    folder.mkdir()
    for name in ("dev-v1.1-split-train.json", "dev-v1.1-split-heldout.json", "dev-v1.1.json"):
        write_json(folder, name, squad_json(id=name))
    assert data.squad_files(tmp_path) == {"train": folder / "dev-v1.1-split-train.json",
                                          "validation": folder / "dev-v1.1-split-heldout.json"}
    write_json(folder, "train-v1.1.json", squad_json(id="official"))
    splits = data.load_squad(tmp_path)
    assert splits["train"]["id"] == ["official"] and splits["validation"]["id"] == ["dev-v1.1.json"]
    with pytest.raises(FileNotFoundError, match=r"No SQuAD v2 files .*squad_v2/train-v2\.0\.json"):
        data.load_squad(tmp_path, version=2)
    assert data.squad_files(TINY, version=2)["train"] == TINY / "squad_v2" / "train.json"


# -- subsets ----------------------------------------------------------------------------------------
def test_subset_is_deterministic_and_in_file_order():
    splits = data.load_tiny("ner")
    first = data.subset(splits, 10, seed=3)
    again = data.subset(splits, 10, seed=3)
    other = data.subset(splits, 10, seed=4)
    for split in splits:
        assert len(first[split]) == 10
        assert first[split]["id"] == again[split]["id"]
        assert [int(i) for i in first[split]["id"]] == sorted(int(i) for i in first[split]["id"])
    assert first["train"]["id"] != other["train"]["id"]
    limited = data.load_tiny("ner", max_examples={"train": 5})
    assert [len(limited[s]) for s in ("train", "validation", "test")] == [5, 50, 48]
    assert len(data.subset(splits["train"], 1000)) == 170
    with pytest.raises(ValueError, match="splits \\['dev'\\]"):
        data.subset(splits, {"dev": 3})
    with pytest.raises(ValueError, match="at least 1"):
        data.subset(splits, 0)


def test_no_warning_on_good_files():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load_tiny("qa", version=2)
        data.load_tiny("ner")
