"""Command line: ``nerqa train | evaluate | predict | run | stats | data download`` (also ``python -m nerqa_helpers``).

Every command prints one clear line starting with ``error:`` and exits non-zero on bad input
(missing files, a folder that holds no model, malformed data) instead of a traceback; ``--debug``
shows the traceback. Exit codes: 0 done, 1 training diverged or an unexpected error, 2 a problem
with the input, 130 interrupted (``train --resume`` goes on from the last checkpoint).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .base import jsonable
from .presets import PRESETS, STRATEGIES, TASKS

EXAMPLE_SENTENCE = "Maria Santos flew from Lisbon to Berlin to meet engineers from Siemens."
EXAMPLE_CONTEXT = (
    "The Harbour Bridge in Port Elin was completed in 1932 after eight years of work. "
    "It was designed by the engineer Lena Brandt and carries a railway and four lanes of traffic."
)
EXAMPLE_QUESTION = "Who designed the Harbour Bridge?"


class CommandError(Exception):
    """A problem the user can fix; printed as one line."""


class TrainingFailed(Exception):
    """Training stopped (the loss diverged); printed as one line with where to resume from."""


# -- data -------------------------------------------------------------------------------------
def data_files(args) -> dict[str, dict]:
    """Per-split files given on the command line: ``{"ner": {split: path}, "qa": {split: path}}``."""
    ner = {split: getattr(args, f"ner_{split}") for split in ("train", "validation", "test")}
    qa = {split: getattr(args, f"qa_{split}") for split in ("train", "validation")}
    return {"ner": {k: v for k, v in ner.items() if v}, "qa": {k: v for k, v in qa.items() if v}}


def load_data(args, preset, squad_v2: bool = False, ner_context: bool = False):
    """(ner, qa, source) for a command: files named on the command line, else the data rule
    (``sources.load_task_data``: --data-dir / NERQA_DATA_DIR, the hub, the bundled sample; the tiny
    preset means the sample), cut to the preset's sizes; ``ner_context``: with document context."""
    from .sources import load_task_data

    return load_task_data(("ner", "qa"), preset, args.seed, data_dir=args.data_dir,
                          squad_version=2 if squad_v2 else 1, files=data_files(args), ner_context=ner_context)


# -- commands ---------------------------------------------------------------------------------
def command_train(args) -> dict:
    """Train the multi-task model (or one task), evaluate it, print and save the metrics."""
    from .encoders import load_tokenizer
    from .model import MultiTaskModel
    from .presets import get_preset
    from accelerate.utils import set_seed

    from .evaluation import evaluate
    from .tasks import build_tasks
    from .training import TrainingConfig, train

    preset = get_preset(args.preset)
    tasks_wanted = _wanted_tasks(args.tasks)
    resume_note = _check_output_dir(args.output_dir, args.resume)
    windows = {**preset.windows(), **({} if args.ner_context is None else {"ner_context_tokens": args.ner_context})}
    ner, qa, source = load_data(args, preset, squad_v2=args.squad_v2, ner_context=windows["ner_context_tokens"] > 0)
    for task, dataset in (("ner", ner), ("qa", qa)):
        if task in tasks_wanted and (dataset is None or "train" not in dataset):
            raise CommandError(f"No {task.upper()} training data: give --{task}-train (and --{task}-validation) "
                               f"or --data-dir, or leave {task} out of --tasks.")
    print(f"sizes: NER {_sizes(ner)}; QA {_sizes(qa)}")
    tokenizer = load_tokenizer(args.encoder)
    set_seed(args.seed)  # the heads' random start is part of the run: same seed, same metrics
    weights = {"ner": args.lambda_ner if "ner" in tasks_wanted else 0.0,
               "qa": args.lambda_qa if "qa" in tasks_wanted else 0.0}
    label_names = ner["train"].features["ner_tags"].feature.names if "ner" in tasks_wanted else None
    model = MultiTaskModel.from_encoder(args.encoder, label_names, task_weights=weights,
                                        shared_layers=args.shared_layers, version_2_with_negative=args.squad_v2,
                                        **windows)  # the windows the pipeline will serve it with
    tasks = build_tasks(tokenizer, ner if "ner" in tasks_wanted else None, qa if "qa" in tasks_wanted else None,
                        **model.config.windows(), version_2=args.squad_v2)
    chosen = {"learning_rate": args.learning_rate, "batch_size": args.batch_size, "eval_every": args.eval_every,
              "strategy": args.strategy, "task_epochs": {task: args.epochs for task in TASKS} if args.epochs else None}
    config = TrainingConfig.from_preset(
        preset, **{name: value for name, value in chosen.items() if value is not None},
        output_dir=args.output_dir, max_steps=args.max_steps, temperature=args.temperature,
        seed=args.seed, progress=not args.quiet,
        early_stopping_patience=args.early_stopping, checkpoint_every=args.checkpoint_every or None,
        deterministic=args.deterministic, num_workers=args.num_workers, torch_compile=args.compile,
        mixed_precision=args.mixed_precision,
    )
    if resume_note:
        print(resume_note)
    result = _train_or_explain(train, model, tokenizer, tasks, config, args.resume)
    metrics = dict(result.metrics)
    if ner is not None and "test" in ner and "ner" in tasks_wanted:
        test_tasks = build_tasks(tokenizer, {"validation": ner["test"]}, None, **model.config.windows())
        best = MultiTaskModel.from_pretrained(Path(args.output_dir) / "best") if config.save_best else model
        best.to(next(model.parameters()).device)  # where training left the model (the GPU if there is one)
        test = evaluate(best, tokenizer, test_tasks, config)
        metrics.update({f"test_{key}": value for key, value in test.items() if key.startswith("ner_") and key != "ner_per_type"})
    metrics.update(preset=preset.name, data=source, encoder=str(args.encoder))
    Path(args.output_dir, "metrics.json").write_text(json.dumps(jsonable(metrics), indent=1))
    print_metrics(metrics)
    return metrics


def command_evaluate(args) -> dict:
    """Evaluate a saved model on a preset's validation (and NER test) data."""
    from .inference import MultiTaskPipeline
    from .presets import get_preset
    from .evaluation import evaluate
    from .tasks import build_tasks
    from .training import TrainingConfig

    pipeline = MultiTaskPipeline.from_pretrained(_model_dir(args.model), device="auto")  # scoring: the GPU if any
    preset = get_preset(args.preset)
    ner, qa, source = load_data(args, preset, ner_context=pipeline.ner_context_tokens > 0)
    ner = ner if ner is not None and args.split in ner else None
    qa = qa if qa is not None and args.split in qa else None
    if ner is None and qa is None:
        raise CommandError(f"No NER or QA data has a {args.split!r} split to evaluate.")
    if ner is not None:
        _check_labels(pipeline.model, ner)
    tasks = build_tasks(pipeline.tokenizer, {"validation": ner[args.split]} if ner is not None else None,
                        {"validation": qa[args.split]} if qa is not None else None,
                        **pipeline.model.config.windows(), version_2=pipeline.version_2)
    metrics = evaluate(pipeline.model, pipeline.tokenizer, tasks, TrainingConfig())
    metrics.update(split=args.split, data=source)
    if args.json:
        print(json.dumps(jsonable(metrics), indent=1))
    else:
        print_metrics(metrics)
    return metrics


def command_predict(args):
    """Entities of ``--text``, or the answer to ``--question`` over ``--context``."""
    args.text = _text_option(args, "text")
    args.context = _text_option(args, "context")
    if args.text is None and args.question is None:
        raise CommandError("predict needs --text (NER) or --question with --context (QA).")
    if args.question is not None and args.context is None:
        raise CommandError("--question needs --context (or --context-file).")
    model_dir = _model_dir(args.model)  # before the slow import: a bad folder fails at once
    from .inference import MultiTaskPipeline

    pipeline = MultiTaskPipeline.from_pretrained(model_dir)
    result = {}
    if args.text is not None:
        result["entities"] = pipeline.ner(args.text)
    if args.question is not None:
        answers = pipeline.qa(args.question, args.context, top_k=args.top_k)
        result["answers"] = answers if isinstance(answers, list) else [answers]
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return result
    for entity in result.get("entities", []):
        print(f"{entity['entity']:<5} {entity['text']!r:<30} [{entity['start']}:{entity['end']}]  {entity['score']:.2f}")
    if "entities" in result and not result["entities"]:
        print("(no entities)")
    for answer in result.get("answers", []):
        shown = answer["answer"] or "(no answer)"
        print(f"answer: {shown!r}  [{answer['start']}:{answer['end']}]  score {answer['score']:.2f}")
    return result


def command_run(args) -> dict:
    """``make run``: train and evaluate on real data when found (``small``), else on ``tiny``."""
    from .sources import choose_data_source

    started = time.perf_counter()
    source = choose_data_source(args.data_dir)  # the data rule: folder, hub, else the bundled sample
    if source.kind == "tiny":
        print(f"notice: training the tiny preset on the bundled sample, because {source.reason}.")
    args.preset = "tiny" if source.kind == "tiny" else "small"
    args.data_dir = str(source.folder) if source.kind == "dir" else None
    metrics = command_train(args)
    precision = {"no": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(metrics.get("mixed_precision"), "float32")
    print(f"\ntotal time: {time.perf_counter() - started:.0f} s (training {metrics['train_seconds']:.0f} s, {precision})")
    best = Path(args.output_dir) / "best"
    predict = argparse.Namespace(model=str(best), text=EXAMPLE_SENTENCE, question=EXAMPLE_QUESTION,
                                 context=EXAMPLE_CONTEXT, text_file=None, context_file=None, top_k=1, json=False)
    print(f"\nNER  {EXAMPLE_SENTENCE!r}")
    print(f"QA   {EXAMPLE_QUESTION!r}")
    command_predict(predict)
    return metrics


def command_stats(args) -> None:
    """Sizes of the datasets a preset would use."""
    from .presets import get_preset

    ner, qa, _ = load_data(args, get_preset(args.preset))
    print(f"NER {_sizes(ner)}\nQA  {_sizes(qa)}")


def command_data(args) -> list:
    """``nerqa data download``: write the hub's CoNLL-2003 and SQuAD into ``--out`` (default ``data/``)
    in the local-file layout, so that later runs use local files (the data rule's ``data/`` step)."""
    from .sources import DEFAULT_DATA_DIR, download_data

    written = download_data(args.out or DEFAULT_DATA_DIR, squad_v2=args.squad_v2)
    for path in written:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return written


# -- output -----------------------------------------------------------------------------------
def print_metrics(metrics: dict) -> None:
    """A small table of the headline numbers."""
    rows = [("NER validation F1", "ner_f1"), ("NER validation precision", "ner_precision"),
            ("NER validation recall", "ner_recall"), ("NER test F1", "test_ner_f1"),
            ("QA exact match", "qa_exact_match"), ("QA F1", "qa_f1"), ("training seconds", "train_seconds")]
    print()
    for label, key in rows:
        if key in metrics and metrics[key] is not None:
            print(f"{label:<26}{metrics[key]:>8.2f}")


def _sizes(dataset_dict) -> str:
    if dataset_dict is None:
        return "none"
    return ", ".join(f"{split} {len(split_data):,}" for split, split_data in dataset_dict.items())


def _check_labels(model, ner) -> None:
    names = ner[next(iter(ner))].features["ner_tags"].feature.names
    if list(names) != list(model.config.ner_label_names):
        raise CommandError(f"The model's NER labels {model.config.ner_label_names} differ from the data's {names}.")


def _wanted_tasks(tasks: str) -> set[str]:
    wanted = {task.strip() for task in tasks.split(",") if task.strip()}
    if not wanted or wanted - {"ner", "qa"}:
        raise CommandError(f"--tasks must be ner, qa or ner,qa; got {tasks!r}.")
    return wanted


def _check_output_dir(output_dir: str, resume: bool) -> str | None:
    """Fail early on an output folder that cannot be one; say what --resume will go on from, or
    warn that a fresh run will replace a checkpoint that is there."""
    from .checkpoint import describe, find_checkpoint

    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"--output-dir {folder} is a file; give a folder.")
    if resume:
        find_checkpoint(folder)  # a clear error now, before data and model are loaded
        return f"resuming from {describe(folder)}"
    found = describe(folder) if folder.is_dir() else None
    if found:
        return f"notice: {folder} holds a checkpoint ({found}); this run starts afresh and replaces it (--resume goes on from it)."
    return None


def _train_or_explain(train, model, tokenizer, tasks, config, resume: bool):
    """``train``; a diverged run becomes :class:`TrainingFailed` naming the checkpoint to resume."""
    from .checkpoint import describe
    from .training import TrainingDiverged

    try:
        return train(model, tokenizer, tasks, config, resume_from=True if resume else None)
    except TrainingDiverged as error:
        kept = describe(config.output_dir)
        where = (f" Last checkpoint: {kept}; go on with --resume and a lower --learning-rate." if kept
                 else " No checkpoint was written before it (--checkpoint-every).")
        raise TrainingFailed(f"{error}{where}") from error


def _model_dir(path: str) -> str:
    """The model folder to load: ``path``, or ``path/best`` for a run folder; checked first so a
    broken folder gives one line naming what is wrong (:class:`CheckpointError`)."""
    from .checkpoint import check_model_dir, model_problem

    folder = Path(path).expanduser()
    if model_problem(folder) and (folder / "best").is_dir() and not model_problem(folder / "best"):
        print(f"notice: {folder} is a run folder; using its best model, {folder / 'best'}", file=sys.stderr)
        folder = folder / "best"
    return str(check_model_dir(folder))


def _text_option(args, name: str) -> str | None:
    """``--NAME`` or the contents of ``--NAME-file`` (``-`` reads standard input)."""
    value, path = getattr(args, name), getattr(args, f"{name}_file", None)
    if path is None:
        return value
    if value is not None:
        raise CommandError(f"Give --{name} or --{name}-file, not both.")
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).expanduser().read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise CommandError(f"--{name}-file {path} is not UTF-8 text (byte {error.start}); save it as UTF-8.") from error
    except IsADirectoryError as error:
        raise CommandError(f"--{name}-file {path} is a folder, not a text file.") from error
    except FileNotFoundError as error:
        raise CommandError(f"--{name}-file {path} does not exist.") from error


# -- parser -----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one ``error:`` line like every other problem."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nerqa", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    def data_options(sub):
        sub.add_argument("--preset", default="tiny", choices=list(PRESETS))
        sub.add_argument("--data-dir", default=None, help="folder with conll2003/ and squad/ (default: $NERQA_DATA_DIR)")
        for split in ("train", "validation", "test"):
            sub.add_argument(f"--ner-{split}", default=None, metavar="FILE", help=f"CoNLL file for the NER {split} split")
        for split in ("train", "validation"):
            sub.add_argument(f"--qa-{split}", default=None, metavar="FILE", help=f"SQuAD JSON for the QA {split} split")
        sub.add_argument("--seed", type=int, default=0)

    def train_options(sub):
        data_options(sub)
        sub.add_argument("--encoder", default="default", help="'default' (bundled MiniLM), a folder or a hub id")
        sub.add_argument("--output-dir", default="runs/multitask")
        sub.add_argument("--tasks", default="ner,qa", help="ner,qa (multi-task) or one task alone")
        sub.add_argument("--lambda-ner", type=float, default=1.0)
        sub.add_argument("--lambda-qa", type=float, default=1.0)
        sub.add_argument("--strategy", default=None, choices=STRATEGIES, help="task sampling (default: the preset's)")
        sub.add_argument("--temperature", type=float, default=2.0)
        sub.add_argument("--epochs", type=float, default=None, help="passes over each task's data (default: the preset's)")
        sub.add_argument("--max-steps", type=int, default=None)
        sub.add_argument("--batch-size", type=int, default=None)
        sub.add_argument("--learning-rate", type=float, default=None)
        sub.add_argument("--eval-every", type=int, default=None)
        sub.add_argument("--early-stopping", type=int, default=None, metavar="EVALS")
        sub.add_argument("--shared-layers", type=int, default=None, help="share only the bottom N encoder layers")
        sub.add_argument("--ner-context", type=_count, default=None, metavar="TOKENS",
                         help="sub-words per side of neighbouring sentences in each NER window (default: the preset's, 0)")
        sub.add_argument("--squad-v2", action="store_true", help="train and score with unanswerable questions")
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
        sub.add_argument("--checkpoint-every", type=int, default=200, metavar="STEPS",
                         help="write a resumable checkpoint to OUTPUT_DIR/checkpoint every STEPS steps (0: never)")
        sub.add_argument("--resume", action="store_true",
                         help="go on from OUTPUT_DIR's checkpoint (same settings; --learning-rate may differ)")
        sub.add_argument("--deterministic", action="store_true", help="deterministic GPU kernels (slower)")
        sub.add_argument("--mixed-precision", default="auto", choices=("auto", "bf16", "fp16", "no"),
                         help="auto: bf16 from compute capability 8.0, fp16 on 7.x (T4), bf16 on a CPU with "
                              "bfloat16 instructions (AVX512-BF16, AMX), else fp32")
        sub.add_argument("--num-workers", type=_count, default=0, metavar="N",
                         help="data loader worker processes (0: collate in the training process)")
        sub.add_argument("--compile", action="store_true",
                         help="torch.compile the model (pays off on a GPU for long runs)")

    train_options(commands.add_parser("train", help="train and evaluate"))
    run = commands.add_parser("run", help="the main job: small preset on real data if found, else tiny")
    train_options(run)
    evaluate = commands.add_parser("evaluate", help="score a saved model")
    data_options(evaluate)
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--split", default="validation")
    evaluate.add_argument("--json", action="store_true")
    predict = commands.add_parser("predict", help="entities of a text or the answer to a question")
    predict.add_argument("--model", required=True)
    predict.add_argument("--text")
    predict.add_argument("--question")
    predict.add_argument("--context")
    predict.add_argument("--text-file", metavar="FILE", help="read --text from a UTF-8 file ('-': standard input)")
    predict.add_argument("--context-file", metavar="FILE", help="read --context from a UTF-8 file")
    predict.add_argument("--top-k", type=int, default=1)
    predict.add_argument("--json", action="store_true")
    stats = commands.add_parser("stats", help="dataset sizes")
    data_options(stats)
    data = commands.add_parser("data", help="fill data/ from the Hugging Face hub (on a machine that reaches it)")
    data_actions = data.add_subparsers(dest="action", required=True)
    download = data_actions.add_parser("download", help="write CoNLL-2003 and SQuAD from the hub as local files")
    download.add_argument("--out", default=None, help="folder to fill (default: data/ of the repository)")
    download.add_argument("--squad-v2", action="store_true", help="also write SQuAD v2.0 (squad_v2/)")
    return parser


COMMANDS = {"train": command_train, "evaluate": command_evaluate, "predict": command_predict,
            "run": command_run, "stats": command_stats, "data": command_data}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 for a problem with the input)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130
    except Exception as error:  # one line for the user; --debug for the traceback
        if args.debug:
            raise
        if isinstance(error, TrainingFailed):
            print(f"error: {_one_line(error)}", file=sys.stderr)
            return 1
        if _is_user_error(error):
            print(f"error: {_one_line(error)}", file=sys.stderr)
            return 2
        print(f"error: unexpected {type(error).__name__}: {_one_line(error)} (rerun with --debug to see where)",
              file=sys.stderr)
        return 1
    return 0


def _count(text: str) -> int:
    """argparse type: a whole number ≥ 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _is_user_error(error: Exception) -> bool:
    return isinstance(error, (CommandError, OSError, ValueError, KeyError, json.JSONDecodeError))


def _one_line(error: Exception) -> str:
    """The error's message on one line (a KeyError's bare key gets its type in front)."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if isinstance(error, KeyError) or not message else message


def _resume_hint(args) -> str:
    """After an interrupted training run: where its last checkpoint is."""
    if getattr(args, "command", None) not in ("train", "run"):
        return ""
    from .checkpoint import describe

    kept = describe(args.output_dir) if Path(args.output_dir).is_dir() else None
    return f"; last checkpoint: {kept} (run the same command with --resume to go on)" if kept else ""


if __name__ == "__main__":
    sys.exit(main())
