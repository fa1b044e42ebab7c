"""The command line: ``python -m nerqa_helpers.experiments run|run-one|report ...``."""
from __future__ import annotations

import argparse
import os
import sys

from . import __doc__ as PACKAGE_DOC
from .config import CACHE_ROOT, load_config
from .report import write_report
from .runner import run_one, run_sweep


def build_parser() -> argparse.ArgumentParser:
    """The parser of the three commands: run, run-one (one run in a fresh process) and report."""
    parser = argparse.ArgumentParser(prog="python -m nerqa_helpers.experiments", description=PACKAGE_DOC.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every pending (method, seed) of a config, then write the report")
    run.add_argument("config")
    run.add_argument("--out", required=True, help="output folder (runs/*.json, README.md, figures)")
    run.add_argument("--methods", default=None, help="comma-separated subset of the config's methods")
    run.add_argument("--seeds", default=None, help="comma-separated subset of seeds")
    run.add_argument("--in-process", action="store_true",
                     help="run in this process (faster start; on a CPU the peak memory is then shared)")
    run.add_argument("--cache", default=str(CACHE_ROOT), help="folder for the tokenized data ('' for none)")
    run.add_argument("--rerun-busy", action="store_true",
                     help="also rerun finished runs whose timings other programs disturbed (see the report)")
    run.add_argument("--no-report", action="store_true")
    run.add_argument("--allow-mixed-code", action="store_true",
                     help="add runs to a folder whose finished runs ran another commit (the report lists the commits)")
    one = commands.add_parser("run-one", help="one (method, seed); what `run` starts in a fresh process")
    one.add_argument("config")
    one.add_argument("--method", required=True)
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--out", required=True)
    one.add_argument("--cache", default=str(CACHE_ROOT))
    report = commands.add_parser("report", help="write OUT/README.md, summary.csv and figures from the run JSON")
    report.add_argument("out")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m nerqa_helpers.experiments``; returns the exit code (1: runs failed)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cache = (args.cache or None) if args.command != "report" else None
    if args.command == "report":
        print(f"wrote {write_report(args.out)}")
        return 0
    from transformers.utils import logging

    logging.set_verbosity_error()  # no encoder load report per run
    if args.command == "run-one":
        record = run_one(load_config(args.config), args.method, args.seed, args.out, cache, own_process=True)
        print(f"{args.method} seed {args.seed}: NER F1 {record.get('ner_f1')}, QA F1 {record.get('qa_f1')}, "
              f"{record['train_seconds']:.0f} s training")
        return 0
    split = lambda text, kind: [kind(part) for part in text.split(",")] if text else None  # noqa: E731
    failed = run_sweep(args.config, args.out, split(args.methods, str), split(args.seeds, int),
                       isolate=not args.in_process, cache_root=cache, rerun_busy=args.rerun_busy,
                       allow_mixed_code=args.allow_mixed_code)
    if not args.no_report:
        print(f"wrote {write_report(args.out)}")
    if failed:
        print(f"{len(failed)} runs failed: {failed}; run the same command again to retry them", file=sys.stderr)
        return 1
    return 0
