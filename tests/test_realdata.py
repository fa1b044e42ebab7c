"""The loaders on the real CoNLL-2003 and SQuAD files: the counts their README states.

The data folder is $NERQA_DATA_DIR, else ../shared/data next to the repository; without it every
test here is skipped.
"""
import os
from pathlib import Path

import pytest

from nerqa_helpers import data

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("NERQA_DATA_DIR") or REPO.parent / "shared" / "data")

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not (DATA_DIR / "conll2003").is_dir() or not (DATA_DIR / "squad").is_dir(),
        reason=f"real data not found in {DATA_DIR} (set NERQA_DATA_DIR to a folder with conll2003/ and squad/)",
    ),
]

# From the data README: sentences, tokens, documents and entities per type, after conversion to IOB2.
CONLL_COUNTS = {
    "train": {"sentences": 14041, "tokens": 203621, "documents": 946,
              "entities": {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}},
    "validation": {"sentences": 3250, "tokens": 51362, "documents": 216,
                   "entities": {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}},
    "test": {"sentences": 3453, "tokens": 46435, "documents": 231,
             "entities": {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}},
}
# Tags as written in the files (IOB1); O is unchanged by the conversion.
RAW_B_TAGS = {"train": {"B-MISC": 37, "B-ORG": 24, "B-LOC": 11}, "validation": {"B-MISC": 4},
              "test": {"B-MISC": 9, "B-LOC": 6, "B-ORG": 5}}
O_TAGS = {"train": 169578, "validation": 42759, "test": 38323}


@pytest.fixture(scope="module")
def conll():
    return data.load_conll(DATA_DIR)


@pytest.fixture(scope="module")
def squad_split():
    return data.load_squad(DATA_DIR)


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_conll_counts(conll, split):
    stats = data.ner_dataset_stats(conll[split])
    assert {key: stats[key] for key in CONLL_COUNTS[split]} == CONLL_COUNTS[split]
    assert stats["tags"]["O"] == O_TAGS[split]
    assert conll[split].features == data.ner_features()


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_conll_raw_b_tags_are_touching_entities(split):
    """A B- tag of the IOB1 file follows an entity of its type (two touching entities), except two train
    tags after O ("Atlanta", "Urdu-speaking"; the data README lists them)."""
    path = data.conll_files(DATA_DIR)[split]
    found, after_other, previous = {}, 0, "O"
    for line in path.read_text(encoding="utf-8").splitlines():
        tag = line.split()[-1] if line.strip() and not line.startswith("-DOCSTART-") else "O"
        if tag.startswith("B-"):
            found[tag] = found.get(tag, 0) + 1
            after_other += previous[2:] != tag[2:]
        previous = tag
    assert found == RAW_B_TAGS[split]
    assert after_other == (2 if split == "train" else 0)


def test_find_data_dir_from_environment(monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(DATA_DIR))
    assert data.find_data_dir() == DATA_DIR
    assert len(data.load_conll(max_examples={"train": 100, "validation": 10, "test": 10})["train"]) == 100


def test_squad_dev_counts():
    dev = data.read_squad(DATA_DIR / "squad" / "dev-v1.1.json")
    assert data.squad_dataset_stats(dev) == {"questions": 10570, "articles": 48, "contexts": 2067,
                                             "answers": 34726, "unanswerable": 0}
    assert len(set(dev["id"])) == 10570
    assert dev[0]["question"] == "Which NFL team represented the AFC at Super Bowl 50?"


def test_squad_article_split(squad_split):
    assert {split: len(dataset) for split, dataset in squad_split.items()} == {"train": 8595, "validation": 1975}
    assert data.squad_dataset_stats(squad_split["train"])["articles"] == 39
    assert data.squad_dataset_stats(squad_split["validation"])["articles"] == 9
    assert not set(squad_split["train"]["title"]) & set(squad_split["validation"]["title"])
    assert squad_split["train"].features == data.SQUAD_FEATURES


def test_tiny_sample_shares_no_text_with_the_real_data(conll, squad_split):
    """The tiny sample is written from scratch: none of its sentences or questions is in the real data."""
    real_sentences = {" ".join(tokens) for split in conll.values() for tokens in split["tokens"]}
    tiny = data.load_tiny("ner")
    copied = [" ".join(t) for split in tiny.values() for t in split["tokens"]
              if len(t) >= 6 and " ".join(t) in real_sentences]
    assert not copied
    real_questions = set(squad_split["train"]["question"]) | set(squad_split["validation"]["question"])
    tiny_qa = data.load_tiny("qa", version=2)
    assert not [q for split in tiny_qa.values() for q in split["question"] if q in real_questions]
    real_contexts = " ".join(set(squad_split["train"]["context"]) | set(squad_split["validation"]["context"]))
    for context in set(tiny_qa["train"]["context"]) | set(tiny_qa["validation"]["context"]):
        for sentence in context.split(". "):
            assert len(sentence) < 40 or sentence not in real_contexts, sentence
