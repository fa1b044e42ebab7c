"""The notebooks as files: numbered, stripped, importing the package, Colab-ready, with exercises.

Running them is nbval's job (``make test-notebooks``); these checks are fast and say exactly which
notebook breaks which rule.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell):
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def ids(paths):
    return [path.name for path in paths]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb files"


def test_notebooks_are_numbered_from_00_without_gaps():
    bad = [path.name for path in NOTEBOOKS if not NAME.match(path.name)]
    assert not bad, f"not named NN_lower_case_name.ipynb: {bad}"
    numbers = [int(NAME.match(path.name).group(1)) for path in NOTEBOOKS]
    assert numbers == list(range(len(numbers))), f"numbers must be 00, 01, ... without gaps or repeats: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_is_stripped(path):
    dirty = [index for index, cell in enumerate(cells(path))
             if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} keep outputs or execution counts (run nbstripout)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_imports_the_package(path):
    code = "\n".join(source(cell) for cell in cells(path) if cell["cell_type"] == "code")
    assert re.search(r"^\s*(from|import) nerqa_helpers\b", code, re.MULTILINE), f"{path.name} never imports nerqa_helpers"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_first_cells_are_badge_then_guarded_install(path):
    notebook = cells(path)
    assert notebook[0]["cell_type"] == "markdown" and "colab.research.google.com" in source(notebook[0]), \
        f"{path.name}: the first cell should be the Colab badge"
    first_code = next(source(cell) for cell in notebook if cell["cell_type"] == "code")
    assert '"google.colab" in sys.modules' in first_code, f"{path.name}: first code cell lacks the Colab guard"
    assert "NBVAL_IGNORE_OUTPUT" in first_code, f"{path.name}: the version print must be marked NBVAL_IGNORE_OUTPUT"
    for line in first_code.splitlines():
        if "pip install" in line:
            assert "ipywidgets" not in line, f"{path.name}: never install ipywidgets on Colab"
            assert not re.search(r"\s[\w\-\[\]]+[<>=]=?[\w.]+", line.split("#")[0]), \
                f"{path.name}: quote version specs in %pip (an unquoted > is a redirect): {line.strip()}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_ends_with_exercises(path):
    markdown = [source(cell) for cell in cells(path) if cell["cell_type"] == "markdown"]
    assert markdown and re.search(r"^#+\s*Exercises", markdown[-1], re.MULTILINE), \
        f"{path.name}: the last markdown cell should be an 'Exercises' section"
    assert cells(path)[-1]["cell_type"] == "markdown", f"{path.name}: nothing should follow the exercises"


def test_readme_lists_exactly_the_notebooks():
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    section = re.search(r"^## Notebooks\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if section is None:
        pytest.skip("README.md has no '## Notebooks' section yet, so there is no list to compare")
    mentioned = set(re.findall(r"\b(\d\d_[a-z0-9_]+\.ipynb)", section.group(1)))
    if not mentioned and "PLACEHOLDER" in section.group(1):
        pytest.skip("README.md's '## Notebooks' section still holds a placeholder instead of the list")
    assert mentioned == set(ids(NOTEBOOKS)), (
        f"README lists {sorted(mentioned - set(ids(NOTEBOOKS)))} that are not in notebooks/ and misses "
        f"{sorted(set(ids(NOTEBOOKS)) - mentioned)}"
    )
