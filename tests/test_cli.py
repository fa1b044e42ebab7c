"""Hostile input through the command line: every case gives a correct result, or one line that
starts with ``error:`` and a non-zero exit code, never a traceback.

``nerqa_helpers.cli.main`` runs in this process with the output captured; one case runs as a
real subprocess to check the exit code the shell sees. The models are tiny random BERTs, so
predicting over a 20,000-word document takes a second or two.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import BertModel

from nerqa_helpers.cli import EXAMPLE_CONTEXT, main
from nerqa_helpers.data import NER_LABELS, read_conll, tiny_data_dir
from nerqa_helpers.training import save_model

WORDS = ("Marisol Quenby flew from Vantorsk to the Glimmerfold Cooperative on Tuesday , and "
         "Tobiah Pellamy met engineers of Brackenquay Syndicate near Quillithorpe .").split()


def save_tiny_model(tiny_model, tokenizer, folder: Path, label_names=NER_LABELS) -> Path:
    model = tiny_model(seed=0, ner_label_names=label_names)
    with torch.no_grad():  # decisive random heads, so predictions contain entities
        model.ner_head.weight.normal_(0, 2.0)
    return save_model(model, tokenizer, folder)


def write(path: Path, content) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


@pytest.fixture(scope="module")
def files(tiny_model, tiny_bert, tokenizer, tmp_path_factory):
    """Models, encoders and data files, good and spoiled, shared by the cases below."""
    root = tmp_path_factory.mktemp("cli")
    conll = (tiny_data_dir() / "conll" / "validation.txt").read_text(encoding="utf-8")
    squad_text = (tiny_data_dir() / "squad" / "validation.json").read_text(encoding="utf-8")
    squad = json.loads(squad_text)
    squad["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 3
    first_tag = conll.index(" I-ORG\n")
    org_line = next(line for line in conll.splitlines() if line.endswith(" I-ORG"))  # e.g. "Veltrix NNP I-NP I-ORG"
    model = save_tiny_model(tiny_model, tokenizer, root / "run" / "best")
    torch.manual_seed(0)
    encoder = root / "encoder"
    BertModel(tiny_bert, add_pooling_layer=False).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    spoiled = {}
    for name, spoil in {"garbage_config": lambda d: (d / "config.json").write_text("{oops"),
                        "truncated_weights": lambda d: (d / "model.safetensors").write_bytes(
                            (d / "model.safetensors").read_bytes()[:5000]),
                        "no_weights": lambda d: (d / "model.safetensors").unlink()}.items():
        spoiled[name] = save_tiny_model(tiny_model, tokenizer, root / name)
        spoil(spoiled[name])
    long_words = [WORDS[index % len(WORDS)] for index in range(20_000)]
    (root / "empty_dir").mkdir()
    return SimpleNamespace(
        root=root, model=str(model), run=str(model.parent), encoder=str(encoder),
        per_model=str(save_tiny_model(tiny_model, tokenizer, root / "per_model", ["O", "B-PER", "I-PER"])),
        **{name: str(folder) for name, folder in spoiled.items()},
        empty_dir=str(root / "empty_dir"), missing=str(root / "missing.txt"), a_file=write(root / "a_file.txt", "x"),
        conll=write(root / "conll.txt", conll),
        conll_crlf=write(root / "crlf.txt", conll.replace("\n", "\r\n")),
        conll_bom=write(root / "bom.txt", "\ufeff" + conll),
        conll_bom_crlf=write(root / "bom_crlf.txt", "\ufeff" + conll.replace("\n", "\r\n")),
        conll_cr=write(root / "cr.txt", conll.replace("\n", "\r")),
        conll_latin1=write(root / "latin1.txt", conll.replace(org_line, "Ä" + org_line, 1).encode("latin-1")),
        conll_utf16=write(root / "utf16.txt", conll.encode("utf-16")),
        conll_empty=write(root / "empty.txt", ""),
        conll_bad_label=write(root / "bad_label.txt", conll[:first_tag] + " B-FOO\n" + conll[first_tag + 7:]),
        conll_bad_columns=write(root / "bad_columns.txt", conll.replace(org_line, f"{org_line.split()[0]} I-ORG", 1)),
        squad=write(root / "squad.json", squad_text),
        squad_truncated=write(root / "truncated.json", squad_text[: len(squad_text) // 2]),
        squad_list=write(root / "list.json", "[]"),
        squad_empty=write(root / "empty.json", ""),
        squad_misaligned=write(root / "misaligned.json", json.dumps(squad)),
        long_text=write(root / "long.txt", " ".join(long_words)),
        long_question=" ".join(long_words[:600]) + "?",
    )


def nerqa(capsys, *argv) -> SimpleNamespace:
    """Run ``nerqa ARGV`` in this process: exit code, standard output and error."""
    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return SimpleNamespace(code=code, out=captured.out, err=captured.err)


def assert_one_error_line(result, pattern: str, code: int = 2) -> None:
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert result.code == code, (result.code, result.err[-2000:])
    assert len(errors) == 1 and "Traceback" not in result.err + result.out, result.err[-2000:]
    assert pattern in errors[0], errors[0]


def predict(files, *extra):
    return ("predict", "--model", files.model, *extra)


def stats(*extra):
    return ("stats", *extra)


def train(files, output_dir, *extra):
    return ("train", "--encoder", files.encoder, "--output-dir", output_dir, "--max-steps", 6, "--quiet", *extra)


# -- cases that must end in one error line ----------------------------------------------------
ERRORS = {
    "missing data file": (lambda f: stats("--ner-validation", f.missing), "Data file not found"),
    "folder in place of a data file": (lambda f: stats("--ner-validation", f.empty_dir), "is a folder; expected a data file"),
    "truncated SQuAD JSON": (lambda f: stats("--qa-validation", f.squad_truncated), "not valid JSON"),
    "empty SQuAD file": (lambda f: stats("--qa-validation", f.squad_empty), "not valid JSON"),
    "SQuAD JSON of the wrong shape": (lambda f: stats("--qa-validation", f.squad_list), "expected SQuAD JSON"),
    "answer_start that misses its answer": (lambda f: stats("--qa-validation", f.squad_misaligned),
                                            "does not point at"),
    "CoNLL file in Latin-1": (lambda f: stats("--ner-validation", f.conll_latin1), "not UTF-8 text"),
    "CoNLL file in UTF-16": (lambda f: stats("--ner-validation", f.conll_utf16), "not UTF-8 text"),
    "empty CoNLL file": (lambda f: stats("--ner-validation", f.conll_empty), "no sentences found"),
    "CoNLL tag outside the label set": (lambda f: stats("--ner-validation", f.conll_bad_label), "unknown NER tag 'B-FOO'"),
    "CoNLL line with too few columns": (lambda f: stats("--ner-validation", f.conll_bad_columns), "2 columns where"),
    "data folder that does not exist": (lambda f: stats("--preset", "small", "--data-dir", f.missing), "does not exist"),
    "model's labels differ from the data's": (
        lambda f: ("evaluate", "--model", f.per_model, "--ner-validation", f.conll), "differ from the data's"),
    "data tag outside the model's label set": (
        lambda f: ("evaluate", "--model", f.model, "--ner-validation", f.conll_bad_label), "unknown NER tag"),
    "split the data lacks": (
        lambda f: ("evaluate", "--model", f.model, "--ner-validation", f.conll, "--split", "test"), "'test' split"),
    "model folder that does not exist": (lambda f: ("predict", "--model", f.missing, "--text", "Hi"), "does not exist"),
    "file in place of a model folder": (lambda f: ("predict", "--model", f.a_file, "--text", "Hi"), "is a file, not a folder"),
    "empty model folder": (lambda f: ("predict", "--model", f.empty_dir, "--text", "Hi"), "has no config.json"),
    "plain BERT encoder as the model": (lambda f: ("predict", "--model", f.encoder, "--text", "Hi"),
                                        "holds a 'bert' model"),
    "garbage config.json": (lambda f: ("predict", "--model", f.garbage_config, "--text", "Hi"),
                            "config.json is not valid JSON"),
    "truncated model.safetensors": (lambda f: ("predict", "--model", f.truncated_weights, "--text", "Hi"),
                                    "model.safetensors is truncated"),
    "model folder without weights": (lambda f: ("predict", "--model", f.no_weights, "--text", "Hi"), "has no weights"),
    "empty question": (lambda f: predict(f, "--question", "", "--context", EXAMPLE_CONTEXT), "question is empty"),
    "blank context": (lambda f: predict(f, "--question", "Who?", "--context", " \t\n "), "context is empty"),
    "question without a context": (lambda f: predict(f, "--question", "Who?"), "--question needs --context"),
    "top-k of 0": (lambda f: predict(f, "--question", "Who?", "--context", EXAMPLE_CONTEXT, "--top-k", 0),
                   "must be positive"),
    "text file that does not exist": (lambda f: predict(f, "--text-file", f.missing), "does not exist"),
    "folder as the text file": (lambda f: predict(f, "--text-file", f.empty_dir), "is a folder"),
    "text file in Latin-1": (lambda f: predict(f, "--text-file", f.conll_latin1), "not UTF-8 text"),
    "--text and --text-file together": (lambda f: predict(f, "--text", "Hi", "--text-file", f.long_text), "not both"),
    "unknown option": (lambda f: predict(f, "--txt", "Hi"), "unrecognized arguments"),
    "unknown task": (lambda f: train(f, f.root / "t", "--tasks", "pos"), "--tasks must be"),
    "negative worker count": (lambda f: train(f, f.root / "t", "--num-workers", -1), "must be 0 or more"),
    "output folder that is a file": (lambda f: train(f, f.a_file), "is a file; give a folder"),
    "encoder that does not exist": (lambda f: ("train", "--encoder", f.root / "nope", "--output-dir", f.root / "t"),
                                    "does not exist"),
    "--resume with no checkpoint": (lambda f: train(f, f.root / "never", "--resume"), "No checkpoint to resume"),
    "NER training file missing": (lambda f: train(f, f.root / "t", "--ner-train", f.missing), "Data file not found"),
    "QA data missing for a multi-task run": (
        lambda f: train(f, f.root / "t", "--ner-train", f.conll), "No QA training data"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_bad_input_gives_one_error_line(files, capsys, case):
    argv, pattern = ERRORS[case]
    assert_one_error_line(nerqa(capsys, *argv(files)), pattern)


@pytest.mark.slow
def test_the_shell_sees_the_exit_code_and_one_line(files):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "nerqa_helpers", "predict", "--model", files.missing, "--text", "Hi"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"error: {files.missing} does not exist; a saved model folder holds "
                                                "config.json, model.safetensors and the tokenizer files."]


# -- cases that must work ---------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["conll_crlf", "conll_bom", "conll_bom_crlf", "conll_cr"])
def test_windows_line_ends_and_a_byte_order_mark_load_like_the_plain_file(files, capsys, variant):
    plain, odd = read_conll(files.conll), read_conll(getattr(files, variant))
    assert odd["tokens"] == plain["tokens"] and odd["ner_tags"] == plain["ner_tags"]
    result = nerqa(capsys, "stats", "--ner-validation", getattr(files, variant))
    assert result.code == 0 and f"NER validation {len(plain)}" in result.out


def entities_of(result, text):
    assert result.code == 0, result.err[-2000:]
    entities = json.loads(result.out)["entities"]
    assert all(entity["text"] == text[entity["start"]:entity["end"]] for entity in entities)
    return entities


@pytest.mark.slow
def test_a_20000_word_document_gets_its_entities(files, capsys):
    text = Path(files.long_text).read_text()
    by_file = entities_of(nerqa(capsys, *predict(files, "--text-file", files.long_text, "--json")), text)
    assert by_file and by_file[-1]["end"] > 0.95 * len(text)  # the end of the document is reached
    assert entities_of(nerqa(capsys, *predict(files, "--text", text, "--json")), text) == by_file


def answers_of(result, context):
    assert result.code == 0, result.err[-2000:]
    answers = json.loads(result.out)["answers"]
    assert answers and all(answer["answer"] == context[answer["start"]:answer["end"]] for answer in answers)
    return answers


@pytest.mark.parametrize("question", ["Zebra quantum marmalade?", "long"])
def test_any_question_gets_an_answer_from_the_context(files, capsys, question):
    question = files.long_question if question == "long" else question
    answers_of(nerqa(capsys, *predict(files, "--question", question, "--context", EXAMPLE_CONTEXT, "--json")),
               EXAMPLE_CONTEXT)


def test_a_20000_word_context_gets_an_answer(files, capsys):
    context = Path(files.long_text).read_text()
    answers_of(nerqa(capsys, *predict(files, "--question", "Who met engineers?", "--context-file", files.long_text,
                                      "--json", "--top-k", 3)), context)


@pytest.mark.parametrize("text", ["", "   \t\n  "])
def test_empty_or_blank_text_has_no_entities(files, capsys, text):
    result = nerqa(capsys, *predict(files, "--text", text))
    assert result.code == 0 and result.out.strip() == "(no entities)"


def test_other_scripts_and_emoji_work(files, capsys):
    text = "東京 🙂👨‍👩‍👧 e\u0301cole Zoë نمونه"
    entities_of(nerqa(capsys, *predict(files, "--text", text, "--json")), text)


def test_a_run_folder_means_its_best_model(files, capsys):
    result = nerqa(capsys, "predict", "--model", files.run, "--text", " ".join(WORDS))
    assert result.code == 0 and "using its best model" in result.err


@pytest.mark.slow
def test_ner_files_alone_train_ner_alone(files, capsys, tmp_path):
    result = nerqa(capsys, *train(files, tmp_path, "--tasks", "ner", "--ner-train", files.conll,
                                  "--ner-validation", files.conll_crlf, "--checkpoint-every", 0))
    assert result.code == 0, result.err[-2000:]
    assert "NER validation F1" in result.out and "QA F1" not in result.out
    assert "data: files named on the command line" in result.out
    from nerqa_helpers.presets import get_preset

    saved = json.loads((tmp_path / "best" / "config.json").read_text())  # the windows the pipeline will use
    assert {name: saved[name] for name in get_preset("tiny").windows()} == get_preset("tiny").windows()


# -- training runs: same seed, resume, divergence ---------------------------------------------
def metrics_without_time(folder) -> dict:
    metrics = json.loads((Path(folder) / "metrics.json").read_text())
    return {key: value for key, value in metrics.items() if key != "train_seconds"}


@pytest.mark.slow
def test_same_seed_twice_and_resume_give_the_same_metrics(files, capsys, tmp_path):
    from nerqa_helpers.presets import get_preset

    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        result = nerqa(capsys, *train(files, folder, "--checkpoint-every", 4))
        assert result.code == 0, result.err[-2000:]
    assert metrics_without_time(first) == metrics_without_time(second)
    resumed = nerqa(capsys, *train(files, first, "--checkpoint-every", 4, "--resume"))
    assert resumed.code == 0 and "resuming from step 4 in" in resumed.out
    assert metrics_without_time(first) == metrics_without_time(second)
    fresh = nerqa(capsys, *train(files, second, "--checkpoint-every", 4))
    assert "holds a checkpoint (step 4" in fresh.out  # a fresh run says what it replaces
    assert_one_error_line(nerqa(capsys, *train(files, first, "--checkpoint-every", 4, "--resume", "--batch-size", 4)),
                          f"other settings (batch_size={get_preset('tiny').batch_size} there, 4 now)")
    (first / "checkpoint" / "optimizer.bin").write_bytes(b"\0" * 100)
    assert_one_error_line(nerqa(capsys, *train(files, first, "--checkpoint-every", 4, "--resume")),
                          "damaged optimizer.bin")


def test_a_diverging_run_is_one_line_naming_the_checkpoint(files, capsys, tmp_path):
    result = nerqa(capsys, *train(files, tmp_path, "--learning-rate", 1e30, "--checkpoint-every", 1))
    assert_one_error_line(result, "Loss became nan at step", code=1)
    assert "Last checkpoint: step" in result.err and "--resume" in result.err


def test_mixed_precision_is_passed_to_the_accelerator(files, capsys, tmp_path, monkeypatch):
    from nerqa_helpers import training

    asked, real = [], training.Accelerator

    def recording(**kwargs):  # note what the loop asked for, then train in float32 (this is a CPU)
        asked.append(kwargs["mixed_precision"])
        return real(**{**kwargs, "mixed_precision": "no"})

    monkeypatch.setattr(training, "Accelerator", recording)
    for choice in ("fp16", "auto"):
        result = nerqa(capsys, *train(files, tmp_path / choice, "--mixed-precision", choice, "--checkpoint-every", 0))
        assert result.code == 0, result.err[-2000:]
    assert asked == ["fp16", "no"]  # auto on a CPU: float32
    assert nerqa(capsys, *train(files, tmp_path / "bad", "--mixed-precision", "fp8")).code == 2


# -- make run: the preset follows the data rule -------------------------------------------------
@pytest.mark.parametrize("hub, tiny, give_folder, preset", [
    (True, False, False, "small"),  # no folder, the hub answers: real data
    (False, False, False, "tiny"),  # no folder, no hub: the bundled sample
    (True, True, False, "tiny"),    # NERQA_TINY=1 forces the sample
    (False, True, True, "small"),   # a folder given on the command line wins
])
def test_make_run_picks_its_preset_by_the_data_rule(monkeypatch, capsys, tmp_path, hub, tiny, give_folder, preset):
    from nerqa_helpers import cli, sources

    monkeypatch.setattr(sources, "_offline_mode", lambda: False)
    monkeypatch.setattr(sources, "_hub_reachable", lambda: hub)
    monkeypatch.delenv("NERQA_DATA_DIR", raising=False)
    monkeypatch.setenv("NERQA_TINY", "1" if tiny else "0")
    chosen = {}
    monkeypatch.setattr(cli, "command_train", lambda args: chosen.update(preset=args.preset, data_dir=args.data_dir)
                        or {"train_seconds": 0.0})
    monkeypatch.setattr(cli, "command_predict", lambda args: None)
    folder = str(tmp_path) if give_folder else None
    assert nerqa(capsys, "run", *(["--data-dir", folder] if folder else [])).code == 0
    assert (chosen["preset"], chosen["data_dir"]) == (preset, folder)


def test_make_run_trains_on_a_filled_data_folder(monkeypatch, capsys, tmp_path):
    """``data/`` filled and NERQA_DATA_DIR unset: ``make run`` trains the small preset on its files."""
    import shutil

    from nerqa_helpers import cli, data, sources

    folder = tmp_path / "data"
    shutil.copytree(data.tiny_data_dir() / "conll", folder / "conll2003")
    shutil.copytree(data.tiny_data_dir() / "squad", folder / "squad")
    monkeypatch.setattr(sources, "DEFAULT_DATA_DIR", folder)
    monkeypatch.setattr(sources, "_hub_reachable", lambda: pytest.fail("the hub must not be asked"))
    monkeypatch.delenv("NERQA_DATA_DIR", raising=False)
    monkeypatch.setenv("NERQA_TINY", "0")
    chosen = {}
    monkeypatch.setattr(cli, "command_train", lambda args: chosen.update(preset=args.preset, data_dir=args.data_dir)
                        or {"train_seconds": 0.0})
    monkeypatch.setattr(cli, "command_predict", lambda args: None)
    assert nerqa(capsys, "run").code == 0
    assert chosen == {"preset": "small", "data_dir": str(folder)}
