"""Study results quoted in the notebooks and the README are the generated reports' numbers.

A sentence that states a result of the study quotes a paired difference with its 95 % interval,
written ``−2.05 [−7.22, +3.12]``. Every such triple must appear in one of the generated reports
(``reports/experiments-*/**/README.md``), so a rerun study that changes a number makes this test
name the sentence to re-quote.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"[−+-]?\d+\.\d\d"
QUOTED = re.compile(rf"({NUMBER}) \[({NUMBER}), ({NUMBER})\]")
REPORTED = re.compile(rf"difference ({NUMBER}); 95% CI ({NUMBER}) to ({NUMBER})")


def triple(*numbers):
    """(difference, low, high) as floats; the typographic minus counts as a minus."""
    return tuple(round(float(number.replace("−", "-")), 2) for number in numbers)


def reported():
    found = set()
    for path in (ROOT / "reports").glob("experiments-*/**/README.md"):
        text = path.read_text(encoding="utf-8")
        found |= {triple(*match) for match in REPORTED.findall(text)}
        found |= {triple(*match) for match in QUOTED.findall(text)}
    return found


SOURCES = [ROOT / "README.md", *sorted((ROOT / "notebooks").glob("*.ipynb"))]


def markdown(path):
    """(where, text) of the README, or of every Markdown cell of a notebook."""
    if path.suffix != ".ipynb":
        return [(path.name, path.read_text(encoding="utf-8"))]
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(f"{path.name} cell {index}", "".join(cell["source"]))
            for index, cell in enumerate(cells) if cell["cell_type"] == "markdown"]


def test_the_reports_hold_intervals():
    assert len(reported()) > 20


def test_a_quoted_interval_is_read_in_any_spelling():
    assert QUOTED.findall("NER −17.69 [−22.30, −13.08] and +0.27 [-2.03, +2.58]") == [
        ("−17.69", "−22.30", "−13.08"), ("+0.27", "-2.03", "+2.58")]
    assert triple("−17.69", "−22.30", "−13.08") == (-17.69, -22.30, -13.08)


@pytest.mark.parametrize("path", SOURCES, ids=[path.name for path in SOURCES])
def test_every_quoted_interval_is_in_a_generated_report(path):
    known = reported()
    missing = [f"{where}: {d} [{low}, {high}]" for where, text in markdown(path)
               for d, low, high in QUOTED.findall(text) if triple(d, low, high) not in known]
    assert not missing, "quoted, but in no generated report under reports/: " + "; ".join(missing)
