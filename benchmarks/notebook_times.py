"""How long each notebook takes, run alone under nbval as CI runs it.

    python benchmarks/notebook_times.py --mode tiny --out reports/notebook-times
    python benchmarks/notebook_times.py --mode small --data-dir /path/to/data --out reports/notebook-times

Every notebook runs in order (``pytest --nbval-lax --nbval-current-env notebooks/NN_*.ipynb``) in one
fresh runs folder, so 05, 09 and 10 load the model that 04 trained, as a student's session would.
Writes ``<out>/<mode>.json`` (one record per notebook: seconds, exit code, and the machine's load
average before and after, since a busy machine stretches every time) and ``<out>/<mode>.md``, the
table. A rerun with the same ``--runs-dir`` keeps the notebooks already measured with exit code 0
(``--again`` measures them anew).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nerqa_helpers.machine import cpu_description  # noqa: E402


def measure(notebook: Path, env: dict, timeout: int) -> dict:
    """One notebook under nbval: {"notebook", "seconds", "returncode", "load_before", "load_after"}."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
               "--nbval-current-env", str(notebook)]
    try:
        returncode = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        returncode = "timeout"
    return {"notebook": notebook.name, "seconds": round(time.perf_counter() - start, 1), "returncode": returncode,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


def table(mode: str, machine: dict, records: list[dict], note: str = "") -> str:
    """The Markdown report of one mode; ``note``: a sentence about the circumstances, printed under the machine."""
    lines = [f"# Notebook run times: {mode} mode", "",
             f"Made by `python benchmarks/notebook_times.py --mode {mode} --out reports/notebook-times`"
             f"{' --data-dir DATA' if mode != 'tiny' else ''}: each notebook alone under nbval, in order, in one "
             "fresh runs folder (04 trains the model that 05, 09 and 10 load).", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores; load average (1 min) before and after each "
             "notebook is given, because other processes on the machine stretch every time.", "",
             *([note, ""] if note else []),
             "| notebook | seconds | exit code | load before | load after |", "| :-- | --: | --: | --: | --: |"]
    lines += [f"| {r['notebook']} | {r['seconds']:.0f} | {r['returncode']} | {r['load_before']:.1f} | {r['load_after']:.1f} |"
              for r in records]
    total = sum(r["seconds"] for r in records)
    return "\n".join(lines + ["", f"Total: {total / 60:.1f} min.", ""])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["tiny", "small"], default="tiny")
    parser.add_argument("--data-dir", help="real data (small mode)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "notebook-times"))
    parser.add_argument("--notebooks", nargs="*", help="file names; default: all, in order")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per notebook")
    parser.add_argument("--again", action="store_true", help="measure notebooks already measured")
    parser.add_argument("--note", default="", help="a sentence for the report, e.g. what else ran on the machine")
    parser.add_argument("--runs-dir", help="where the notebooks keep their models (default: a fresh temporary folder; "
                                           "give the same one to a rerun that should go on)")
    args = parser.parse_args(argv)
    if args.mode == "small" and not args.data_dir:
        parser.error("--mode small needs --data-dir")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result_file = out / f"{args.mode}.json"
    previous = json.loads(result_file.read_text()) if result_file.is_file() else {}
    done = {r["notebook"]: r for r in previous.get("notebooks", []) if r["returncode"] == 0 and not args.again}
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix=f"notebook-times-{args.mode}-")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "NERQA_RUNS_DIR": runs_dir}
    env.pop("NERQA_TINY" if args.mode == "small" else "NERQA_DATA_DIR", None)
    env.update({"NERQA_TINY": "1"} if args.mode == "tiny" else {"NERQA_DATA_DIR": str(args.data_dir)})
    machine = {"cpu": cpu_description(), "cores": os.cpu_count()}
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        notebooks = [path for path in notebooks if path.name in args.notebooks]
    records = []
    for notebook in notebooks:
        record = done.get(notebook.name) or measure(notebook, env, args.timeout)
        records.append(record)
        print(f"{record['notebook']:<40} {record['seconds']:>7.0f} s  exit {record['returncode']}", flush=True)
        result_file.write_text(json.dumps({"mode": args.mode, "machine": machine, "note": args.note,
                                           "notebooks": records}, indent=1) + "\n")
    (out / f"{args.mode}.md").write_text(table(args.mode, machine, records, args.note))


if __name__ == "__main__":
    main()
