"""The notebooks' face: settings from the environment, reuse of a saved model, the version print."""
import dataclasses
import json

import pytest

from nerqa_helpers import workbook

VARIABLES = ("NERQA_TINY", "NERQA_DATA_DIR", "NERQA_PRESET", "NERQA_ENCODER", "NERQA_NER_TRAIN", "NERQA_QA_TRAIN",
             "NERQA_NER_EVAL", "NERQA_QA_EVAL", "NERQA_MAX_LENGTH", "NERQA_NER_MAX_LENGTH", "NERQA_DOC_STRIDE",
             "NERQA_EPOCHS", "NERQA_MAX_STEPS", "NERQA_BATCH_SIZE", "NERQA_STRATEGY", "NERQA_SEED",
             "NERQA_RUNS_DIR", "TQDM_DISABLE")


@pytest.fixture()
def environment(monkeypatch, tmp_path):
    """A clean environment: none of the workbook's variables set, runs under tmp_path."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NERQA_RUNS_DIR", str(tmp_path / "runs"))
    return monkeypatch


def real_looking_data(tmp_path):
    (tmp_path / "data" / "conll2003").mkdir(parents=True)
    (tmp_path / "data" / "squad").mkdir()
    return tmp_path / "data"


def test_without_data_the_workbook_runs_tiny(environment, tmp_path):
    s = workbook.settings()
    assert s.tiny and s.preset == "tiny" and s.data_dir is None
    assert s.run_dir == tmp_path / "runs" / "workbook-tiny"
    assert s.model_dir == s.run_dir / "best"
    assert (s.ner_epochs, s.qa_epochs) == (workbook.TINY_EPOCHS["ner"], workbook.TINY_EPOCHS["qa"])


def test_a_data_folder_selects_the_small_preset_unless_tiny_is_asked_for(environment, tmp_path):
    environment.setenv("NERQA_DATA_DIR", str(real_looking_data(tmp_path)))
    s = workbook.settings()
    assert (s.tiny, s.preset, s.ner_train, s.qa_eval) == (False, "small", None, 500)
    assert s.data_dir == str((tmp_path / "data").resolve())
    environment.setenv("NERQA_TINY", "1")
    assert workbook.settings().preset == "tiny"
    assert workbook.settings().data_dir is None


def test_where_the_hub_answers_notebooks_default_to_real_data(environment):
    from nerqa_helpers import sources

    environment.setattr(sources, "_offline_mode", lambda: False)
    environment.setattr(sources, "_hub_reachable", lambda: True)
    s = workbook.settings()
    assert (s.data_source, s.preset, s.tiny, s.data_dir) == ("hub", "small", False, None)
    environment.setenv("NERQA_TINY", "1")
    assert workbook.settings().data_source == "tiny" and workbook.settings().preset == "tiny"
    environment.delenv("NERQA_TINY")
    environment.setattr(sources, "_hub_reachable", lambda: False)
    assert workbook.settings().data_source == "tiny"


def test_variables_override_the_preset(environment):
    environment.setenv("NERQA_MAX_LENGTH", "256")
    environment.setenv("NERQA_DOC_STRIDE", "64")
    environment.setenv("NERQA_NER_TRAIN", "all")
    environment.setenv("NERQA_SEED", "7")
    environment.setenv("NERQA_ENCODER", "/models/bert-base-uncased")
    environment.setenv("TQDM_DISABLE", "1")
    s = workbook.settings(qa_train=5)
    assert (s.qa_max_length, s.doc_stride, s.ner_train, s.qa_train, s.seed) == (256, 64, None, 5, 7)
    assert s.progress is False
    assert s.run_dir.name == "workbook-tiny-bert-base-uncased"


def test_a_bad_number_names_the_variable(environment):
    environment.setenv("NERQA_MAX_LENGTH", "long")
    with pytest.raises(ValueError, match="NERQA_MAX_LENGTH"):
        workbook.settings()


def test_settings_are_frozen(environment):
    with pytest.raises(dataclasses.FrozenInstanceError, match="seed"):
        workbook.settings().seed = 3


def test_versions_lists_the_stack():
    found = workbook.versions()
    assert {"python", "torch", "transformers", "datasets", "device"} <= set(found)
    assert found["nerqa-helpers"] != "not installed"


def test_load_datasets_cuts_to_the_sample_sizes(environment):
    ner, qa = workbook.load_datasets(workbook.settings(ner_train=5, qa_train=4, ner_eval=3, qa_eval=2))
    assert (len(ner["train"]), len(ner["validation"])) == (5, 3)
    assert len(ner["test"]) == 48  # the whole test split: test F1 is always on all of it
    assert (len(qa["train"]), len(qa["validation"])) == (4, 2)


def fake_run(s, settings_key):
    s.model_dir.mkdir(parents=True)
    (s.model_dir / "config.json").write_text("{}")
    record = {"settings": settings_key, "metrics": {"ner_f1": 1.0}, "trained_at": "now"}
    (s.run_dir / workbook.WORKBOOK_FILE).write_text(json.dumps(record))


def test_a_saved_run_is_reused_only_with_the_same_settings(environment):
    s = workbook.settings()
    assert workbook.saved_run(s) is None
    fake_run(s, s.training_key())
    assert workbook.saved_run(s)["metrics"] == {"ner_f1": 1.0}
    assert workbook.saved_run(workbook.settings(progress=False)) is not None  # progress is not a training setting
    assert workbook.saved_run(workbook.settings(seed=1)) is None
    assert workbook.saved_run(workbook.settings(qa_max_length=256)) is None


@pytest.mark.slow
def test_load_or_train_trains_once_then_loads(environment, capsys):
    s = workbook.settings(ner_train=8, qa_train=8, ner_eval=4, qa_eval=4, max_steps=2, batch_size=4,
                          qa_max_length=128, doc_stride=32, progress=False)
    model, tokenizer, metrics = workbook.load_or_train(s)
    assert "Training" in capsys.readouterr().out
    assert {"ner_f1", "qa_exact_match", "qa_f1", "train_seconds"} <= set(metrics)
    assert not model.training
    history = workbook.load_history(s)
    assert set(history["task"].dropna()) <= {"ner", "qa"}
    again, _, metrics_again = workbook.load_or_train(s)
    assert "Loaded" in capsys.readouterr().out
    assert metrics_again == metrics
    for (name, first), (_, second) in zip(model.state_dict().items(), again.state_dict().items()):
        assert (first == second).all(), name


def test_a_model_trained_in_the_notebooks_is_served_with_its_windows(environment):
    """NERQA_MAX_LENGTH=256 in a notebook: the saved model's pipeline cuts QA contexts into 256-token windows."""
    from nerqa_helpers.inference import MultiTaskPipeline

    environment.setenv("NERQA_MAX_LENGTH", "256")
    environment.setenv("NERQA_DOC_STRIDE", "64")
    environment.setenv("NERQA_NER_MAX_LENGTH", "96")
    s = workbook.settings(ner_train=4, qa_train=4, ner_eval=2, qa_eval=2, max_steps=1, batch_size=2, progress=False)
    workbook.train_and_save(s)
    pipeline = MultiTaskPipeline.from_pretrained(s.model_dir)
    assert (pipeline.ner_max_length, pipeline.qa_max_length, pipeline.doc_stride) == (96, 256, 64)
    _, features = pipeline.qa_features(["Who?"], ["word " * 600])
    assert max(len(ids) for ids in features["input_ids"]) == 256


class Interrupted(Exception):
    """Stands for a runtime reset in the middle of training."""


@pytest.mark.slow
def test_an_interrupted_load_or_train_goes_on_from_its_checkpoint(environment, capsys):
    s = workbook.settings(ner_train=8, qa_train=8, ner_eval=2, qa_eval=2, max_steps=6, batch_size=4,
                          checkpoint_every=2, progress=False)
    seen = []

    def crash_at_step_4(step, task_losses, model):
        seen.append(step)
        if step == 4:
            raise Interrupted()

    with pytest.raises(Interrupted):
        workbook.load_or_train(s, step_hook=crash_at_step_4)
    assert seen == [1, 2, 3, 4] and workbook.saved_run(s) is None
    assert workbook.interrupted_run(s) is not None
    assert workbook.interrupted_run(workbook.settings(seed=5)) is None  # other settings: nothing to go on from
    capsys.readouterr()
    resumed = []
    _, _, metrics = workbook.load_or_train(s, step_hook=lambda step, losses, model: resumed.append(step))
    assert "Going on with the interrupted run" in capsys.readouterr().out
    assert resumed == [3, 4, 5, 6] and metrics["steps"] == 6  # steps 1-2 came from the checkpoint
    steps = [row for row in workbook.load_history(s)["step"] if row == row]
    assert steps[0] == 1 and max(steps) == 6  # the history holds the whole run
    assert workbook.interrupted_run(s) is None and workbook.saved_run(s) is not None


def test_the_run_lock_lets_one_notebook_train_at_a_time(tmp_path):
    import threading
    import time

    order = []

    def hold(name, seconds):
        with workbook.run_lock(tmp_path / "workbook-tiny"):
            order.append(f"{name} in")
            time.sleep(seconds)
            order.append(f"{name} out")

    first = threading.Thread(target=hold, args=("first", 0.5))
    first.start()
    time.sleep(0.1)
    hold("second", 0)
    first.join()
    assert order == ["first in", "first out", "second in", "second out"]


def test_tagged_tokens_html_boxes_only_entities():
    html = workbook.tagged_tokens_html(["Ada", "met", "<Bob>"], ["B-PER", "O", "B-PER"])
    assert html.count("<sub") == 2
    assert "&lt;Bob&gt;" in html and workbook.ENTITY_COLOURS["PER"] in html
