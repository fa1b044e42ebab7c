"""Experiments: every method on the same data, the same budget and several seeds, then a report.

    python -m nerqa_helpers.experiments run experiments/cpu.json --out reports/experiments-cpu
    python -m nerqa_helpers.experiments report reports/experiments-cpu

``run`` trains each (method, seed) of a config in its own Python process (so its peak memory is
its own), writes one JSON per run into ``OUT/runs/`` and skips runs whose JSON is already there
with the same settings, so an interrupted sweep resumes where it stopped. ``report`` reads only
those JSON files and writes ``OUT/README.md`` (tables), ``OUT/summary.csv`` and the figures.

The modules, in the order a sweep uses them:

- :mod:`.config`: the sweep config (defaults, checks, the step budget) and its tokenized data;
- :mod:`.runner`: one (method, seed) trained and measured (scores, seconds, memory, latency), and
  the sweep that runs every pending one;
- :mod:`.records`: what a run record holds (measurements, code, machine) and where it lives;
- :mod:`.outcomes`: the finished runs' comparisons, their outcomes and Holm's adjustment;
- :mod:`.stats`: means, standard deviations and confidence intervals over seeds (``scipy.stats``);
- :mod:`.report`: the Markdown report and the notebook table (:func:`results_frame`);
- :mod:`.questions`: the study's questions, one report each with a conclusion drawn from its
  intervals, and what a notebook shows of one (:func:`show_question`);
- :mod:`.replication`: whether the verdicts hold in another run of the same study (another
  precision or machine), the section a report adds when its config names a ``reference``;
- :mod:`.cli`: the command line above. The report's figures are drawn by :mod:`nerqa_helpers.plots`.
"""
from .config import DEFAULTS, load_config
from .questions import question_results, show_question
from .report import results_frame, write_report
from .runner import run_one, run_sweep

__all__ = ["DEFAULTS", "load_config", "question_results", "results_frame", "run_one", "run_sweep", "show_question",
           "write_report"]
