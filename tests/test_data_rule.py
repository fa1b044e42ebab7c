"""The one data rule (local files → the hub → the bundled sample) and the hub loaders, offline.

The hub is never contacted: ``datasets.load_dataset`` is replaced by a function returning
DatasetDicts built with the exact features of the hub's datasets (the CoNLL-2003 parquet export
of eriktks/conll2003, rajpurkar/squad and rajpurkar/squad_v2), and reachability is mocked.
"""
import time

import datasets
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Sequence, Value

from nerqa_helpers import data, sources
from nerqa_helpers.presets import get_preset

POS_NAMES = ['"', "''", "#", "$", "(", ")", ",", ".", ":", "``", "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR",
             "JJS", "LS", "MD", "NN", "NNP", "NNPS", "NNS", "NN|SYM", "PDT", "POS", "PRP", "PRP$", "RB", "RBR",
             "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB"]
CHUNK_NAMES = ["O", "B-ADJP", "I-ADJP", "B-ADVP", "I-ADVP", "B-CONJP", "I-CONJP", "B-INTJ", "I-INTJ", "B-LST",
               "I-LST", "B-NP", "I-NP", "B-PP", "I-PP", "B-PRT", "I-PRT", "B-SBAR", "I-SBAR", "B-UCP", "I-UCP",
               "B-VP", "I-VP"]
HUB_NER_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
HUB_CONLL_FEATURES = Features({
    "id": Value("string"),
    "tokens": Sequence(Value("string")),
    "pos_tags": Sequence(ClassLabel(names=POS_NAMES)),
    "chunk_tags": Sequence(ClassLabel(names=CHUNK_NAMES)),
    "ner_tags": Sequence(ClassLabel(names=HUB_NER_NAMES)),
})
HUB_SQUAD_FEATURES = Features({
    "id": Value("string"), "title": Value("string"), "context": Value("string"), "question": Value("string"),
    "answers": Sequence({"text": Value("string"), "answer_start": Value("int32")}),
})


def hub_conll() -> DatasetDict:
    rows = {"id": ["0", "1"], "tokens": [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]],
            "pos_tags": [[22, 42, 16, 21], [22, 22]], "chunk_tags": [[11, 21, 11, 12], [11, 12]],
            "ner_tags": [[3, 0, 7, 0], [1, 2]]}
    return DatasetDict({split: Dataset.from_dict(rows, features=HUB_CONLL_FEATURES)
                        for split in ("train", "validation", "test")})


def hub_squad(version: int) -> DatasetDict:
    context = "Lena Brandt designed the Harbour Bridge in 1932."
    rows = {"id": ["q1", "q2"], "title": ["Bridge", "Bridge"], "context": [context, context],
            "question": ["Who designed it?", "Who painted it?"],
            "answers": [{"text": ["Lena Brandt"], "answer_start": [0]},
                        {"text": [], "answer_start": []} if version == 2 else {"text": ["1932"], "answer_start": [43]}]}
    return DatasetDict({split: Dataset.from_dict(rows, features=HUB_SQUAD_FEATURES) for split in ("train", "validation")})


@pytest.fixture()
def hub(monkeypatch):
    """The hub answers (mocked): ``load_dataset`` returns the fixtures and records what was asked for."""
    calls = []

    def load_dataset(repo_id, revision=None, **kwargs):
        calls.append((repo_id, revision))
        return {sources.CONLL_HUB_ID: hub_conll, "rajpurkar/squad": lambda: hub_squad(1),
                "rajpurkar/squad_v2": lambda: hub_squad(2)}[repo_id]()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(sources, "_offline_mode", lambda: False)
    monkeypatch.setattr(sources, "_hub_reachable", lambda: True)
    monkeypatch.delenv("NERQA_TINY", raising=False)
    monkeypatch.delenv("NERQA_DATA_DIR", raising=False)
    return calls


@pytest.fixture()
def no_hub(hub, monkeypatch):
    monkeypatch.setattr(sources, "_hub_reachable", lambda: False)
    return hub


# -- the hub loaders against the hub's schemas ------------------------------------------------------
def test_hub_conll_loads_to_the_local_columns_and_labels(hub):
    loaded = sources.load_hub_conll()
    local = data.load_tiny("ner")
    assert hub == [(sources.CONLL_HUB_ID, sources.CONLL_HUB_REVISION)]
    assert list(loaded) == list(local) == ["train", "validation", "test"]
    for split in loaded:
        assert loaded[split].features == local[split].features
        assert loaded[split].column_names == local[split].column_names
    assert loaded["train"].features["ner_tags"].feature.names == data.NER_LABELS
    assert loaded["train"][0]["tokens"] == ["EU", "rejects", "German", "call"]
    assert [data.NER_LABELS[tag] for tag in loaded["train"][0]["ner_tags"]] == ["B-ORG", "O", "B-MISC", "O"]


@pytest.mark.parametrize("version", [1, 2])
def test_hub_squad_loads_to_the_local_columns(hub, version):
    loaded = sources.load_hub_squad(version)
    local = data.load_tiny("qa", version=version)
    assert hub == [(sources.SQUAD_HUB_IDS[version], None)]
    assert list(loaded) == list(local) == ["train", "validation"]
    for split in loaded:
        assert loaded[split].features == local[split].features
    assert loaded["train"][0]["answers"] == {"text": ["Lena Brandt"], "answer_start": [0]}
    if version == 2:
        assert loaded["train"][1]["answers"] == {"text": [], "answer_start": []}


def test_hub_conll_with_other_label_names_is_refused(hub, monkeypatch):
    renamed = hub_conll()
    renamed = renamed.cast_column("ner_tags", Sequence(ClassLabel(names=list(reversed(HUB_NER_NAMES)))))
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: renamed)
    with pytest.raises(data.DataFormatError, match="differ from NER_LABELS"):
        sources.load_hub_conll()


# -- the hub loaders when the hub cannot be used ----------------------------------------------------
@pytest.mark.parametrize("load", [sources.load_hub_conll, sources.load_hub_squad, lambda: sources.load_hub_squad(2)])
def test_hub_loading_fails_fast_offline(monkeypatch, load):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(sources.HubUnavailableError, match="NERQA_DATA_DIR") as caught:
        load()
    assert time.monotonic() - started < 10
    assert "load_tiny" in str(caught.value)


def test_hub_loading_fails_fast_when_unreachable(monkeypatch):
    monkeypatch.setattr(sources, "_offline_mode", lambda: False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.monotonic()
    with pytest.raises(sources.HubUnavailableError, match="cannot be reached.*NERQA_DATA_DIR"):
        sources.load_hub_squad()
    assert time.monotonic() - started < 10


def test_hub_conll_split_gets_the_local_columns():
    """The conversion applied to a hub split, on a stand-in with the hub's columns and ClassLabel."""
    hub_features = Features({"id": Value("string"), "tokens": List(Value("string")),
                             "pos_tags": List(Value("int32")), "chunk_tags": List(Value("int32")),
                             "ner_tags": List(ClassLabel(names=data.NER_LABELS))})
    hub = Dataset.from_dict({"id": ["0"], "tokens": [["Porto", "wins"]], "pos_tags": [[1, 2]],
                             "chunk_tags": [[1, 2]], "ner_tags": [[5, 0]]}, features=hub_features)
    local = sources._hub_conll_split(hub)
    assert local.features == data.read_conll(data.tiny_data_dir() / "conll" / "test.txt").features
    assert local[0] == {"id": "0", "document_id": -1, "tokens": ["Porto", "wins"], "ner_tags": [5, 0]}
    renamed = hub.cast_column("ner_tags", List(ClassLabel(names=list(reversed(data.NER_LABELS)))))
    with pytest.raises(data.DataFormatError, match="differ from NER_LABELS"):
        sources._hub_conll_split(renamed)


# -- the rule ---------------------------------------------------------------------------------------
def only_line(capsys) -> str:
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("data: "), lines
    return lines[0]


def test_a_data_folder_comes_first(hub, monkeypatch, capsys):
    monkeypatch.setenv("NERQA_DATA_DIR", str(data.tiny_data_dir()))
    ner, qa, source = sources.load_task_data()
    assert hub == [] and source == only_line(capsys)
    assert f"local files in {data.tiny_data_dir()}" in source and "NERQA_DATA_DIR is set" in source
    ner2, _, source = sources.load_task_data(data_dir=data.tiny_data_dir(), tiny=False)
    assert "data_dir was given" in source and len(ner2["train"]) == len(ner["train"])


def test_the_hub_when_there_is_no_folder_and_it_answers(hub, capsys):
    ner, qa, source = sources.load_task_data(sizes={"ner": {"train": 1}, "qa": {"validation": 1}}, seed=3)
    assert [repo for repo, _ in hub] == [sources.CONLL_HUB_ID, "rajpurkar/squad"]
    assert source == only_line(capsys)
    assert "Hugging Face hub" in source and "NERQA_DATA_DIR is unset" in source and "answered" in source
    assert (len(ner["train"]), len(ner["validation"]), len(qa["train"]), len(qa["validation"])) == (1, 2, 2, 1)


def test_the_sample_when_the_hub_cannot_be_reached(no_hub, capsys):
    ner, qa, source = sources.load_task_data()
    assert no_hub == [] and source == only_line(capsys)
    assert "bundled tiny sample" in source and "cannot be reached" in source
    assert len(ner["train"]) == len(data.load_tiny("ner")["train"])


def test_offline_the_hub_counts_only_when_cached(hub, monkeypatch, capsys):
    monkeypatch.setattr(sources, "_offline_mode", lambda: True)
    monkeypatch.setattr(sources, "_hub_cached", lambda repo_id: False)
    assert sources.choose_data_source().kind == "tiny"
    assert "HF_HUB_OFFLINE is set" in sources.choose_data_source().reason
    monkeypatch.setattr(sources, "_hub_cached", lambda repo_id: True)
    assert sources.choose_data_source().kind == "hub"


def test_tiny_is_forced_by_the_variable_the_argument_and_the_tiny_preset(hub, monkeypatch, capsys):
    assert "because tiny mode was asked for" in sources.load_task_data(tiny=True).source
    assert "because the tiny preset" in sources.load_task_data(sizes=get_preset("tiny")).source
    monkeypatch.setenv("NERQA_TINY", "1")
    monkeypatch.setenv("NERQA_DATA_DIR", "/nowhere")
    assert "because NERQA_TINY=1 is set" in sources.load_task_data().source
    assert hub == []
    folder = data.tiny_data_dir()  # an argument beats the environment
    assert sources.choose_data_source(data_dir=folder) == sources.DataSource("dir", "data_dir was given", folder)


def test_a_hub_that_fails_while_loading_falls_back_to_the_sample(hub, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    ner, qa, source = sources.load_task_data(tasks=["ner"])
    assert qa is None and "bundled tiny sample" in source and "connection reset" in source
    assert source == only_line(capsys)


def test_a_missing_data_folder_is_an_error_not_a_fallback(hub):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sources.load_task_data(data_dir="/nowhere/at/all")


def test_files_named_one_by_one_win(hub, capsys):
    conll = data.tiny_data_dir() / "conll" / "validation.txt"
    ner, qa, source = sources.load_task_data(files={"ner": {"validation": conll}, "qa": {}})
    assert list(ner) == ["validation"] and qa is None and "files named" in only_line(capsys)


# -- data/ at the top level, and filling it from the hub ---------------------------------------------
def test_hub_conll_written_as_local_files_reads_back_the_same(tmp_path):
    raw = hub_conll()["train"]
    path = data.write_conll(raw, tmp_path / "train.txt")
    lines = path.read_text().splitlines()
    assert lines[:3] == ["-DOCSTART- -X- -X- O", "", "EU NNP B-NP B-ORG"]  # the hub's POS, chunk and IOB2 tags
    local = data.read_conll(path)
    from_hub = sources._hub_conll_split(raw)
    assert local["tokens"] == from_hub["tokens"] and local["ner_tags"] == from_hub["ner_tags"]
    assert local.features == from_hub.features
    assert local["document_id"] == [0, 1]  # no document boundaries on the hub: each sentence its own


@pytest.mark.parametrize("version", [1, 2])
def test_hub_squad_written_as_local_files_reads_back_the_same(tmp_path, version):
    raw = hub_squad(version)["train"]
    local = data.read_squad(data.write_squad(raw, tmp_path / "train.json", version=version))
    from_hub = raw.cast(data.SQUAD_FEATURES)
    assert local.to_list() == from_hub.to_list()


def test_download_fills_a_folder_that_the_rule_then_uses(hub, monkeypatch, tmp_path, capsys):
    folder = tmp_path / "data"
    monkeypatch.setattr(sources, "DEFAULT_DATA_DIR", folder)
    assert not data.filled_data_dir(folder) and sources.choose_data_source().kind == "hub"
    written = sources.download_data(folder)
    assert [path.relative_to(folder).as_posix() for path in written] == [
        "conll2003/train.txt", "conll2003/validation.txt", "conll2003/test.txt",
        "squad/train-v1.1.json", "squad/dev-v1.1.json"]
    chosen = sources.choose_data_source()
    assert chosen == sources.DataSource("dir", f"NERQA_DATA_DIR is unset and {folder} is filled", folder)
    hub.clear()
    ner, qa, source = sources.load_task_data()
    assert hub == [] and f"local files in {folder}" in source
    assert ner["test"]["tokens"] == hub_conll()["test"]["tokens"]
    assert qa["validation"]["answers"] == hub_squad(1)["validation"]["answers"]


def test_a_given_folder_beats_data_and_a_partly_filled_data_is_not_used(hub, monkeypatch, tmp_path):
    folder = tmp_path / "data"
    monkeypatch.setattr(sources, "DEFAULT_DATA_DIR", folder)
    sources.download_data(folder)
    monkeypatch.setenv("NERQA_DATA_DIR", str(data.tiny_data_dir()))
    assert sources.choose_data_source().folder == data.tiny_data_dir()
    monkeypatch.delenv("NERQA_DATA_DIR")
    (folder / "squad" / "dev-v1.1.json").unlink()
    chosen = sources.choose_data_source()
    assert chosen.kind == "hub" and "data/ is not filled" in chosen.reason


def test_nerqa_data_download_writes_the_layout(hub, tmp_path, capsys):
    from nerqa_helpers import cli

    assert cli.main(["data", "download", "--out", str(tmp_path), "--squad-v2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 7 and all(line.startswith("wrote ") for line in printed)
    assert data.filled_data_dir(tmp_path)
    v2 = data.load_squad(tmp_path, version=2)
    assert v2["train"][1]["answers"] == {"text": [], "answer_start": []}
