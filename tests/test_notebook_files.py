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
    assert section is not None, "README.md needs a '## Notebooks' section listing every notebook"
    assert "PLACEHOLDER" not in section.group(1), "README.md's '## Notebooks' section still holds a placeholder"
    mentioned = set(re.findall(r"\b(\d\d_[a-z0-9_]+\.ipynb)", section.group(1)))
    assert mentioned == set(ids(NOTEBOOKS)), (
        f"README lists {sorted(mentioned - set(ids(NOTEBOOKS)))} that are not in notebooks/ and misses "
        f"{sorted(set(ids(NOTEBOOKS)) - mentioned)}"
    )


# -- what every notebook tells its reader first --------------------------------------------------
RUN_TIME_LINE = re.compile(r"^\*\*Run time:\*\*\s+(?P<text>.+)$", re.MULTILINE)
NEEDS_LINE = re.compile(r"^\*\*Needs:\*\*\s+\S", re.MULTILINE)


def first_markdown(path):
    return next(source(cell) for cell in cells(path) if cell["cell_type"] == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_opens_with_its_run_time_and_needs(path):
    opening = first_markdown(path)
    time_line = RUN_TIME_LINE.search(opening)
    assert time_line, f"{path.name}: the first markdown cell needs a line starting '**Run time:**'"
    missing = [word for word in ("tiny", "small", "GPU") if word not in time_line.group("text")]
    assert not missing, f"{path.name}: the run-time line should give tiny, small and GPU times; lacks {missing}"
    assert "TBD" not in time_line.group("text"), f"{path.name}: the run-time line still has a placeholder"
    assert NEEDS_LINE.search(opening), \
        f"{path.name}: the first markdown cell needs a line starting '**Needs:**' (what it needs from earlier notebooks)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_no_placeholder_is_left_in_the_text(path):
    texts = [source(cell) for cell in cells(path) if cell["cell_type"] == "markdown"]
    assert not [text for text in texts if "TBD" in text], f"{path.name}: a markdown cell still says TBD"


# -- exercises and their solutions -------------------------------------------------------------
EXERCISE_ITEM = re.compile(r"^(\d+)\.\s", re.MULTILINE)
SECTION = re.compile(r"^##\s+(?:(\d\d)\s+·|.*)", re.MULTILINE)
ANSWER = re.compile(r"^\*\*(\d+)(?:\s+and\s+(\d+))?\.", re.MULTILINE)
SOLUTIONS = ROOT / "notebooks" / "10_solutions.ipynb"


def exercise_numbers(path) -> list[int]:
    """The numbers of the exercises in the notebook's last markdown cell (its Exercises section)."""
    markdown = [source(cell) for cell in cells(path) if cell["cell_type"] == "markdown"]
    section = re.split(r"^#+\s*Exercises.*$", markdown[-1], flags=re.MULTILINE)[-1] if markdown else ""
    return [int(number) for number in EXERCISE_ITEM.findall(section)]


def answered_exercises(solution_cells) -> dict[str, set[int]]:
    """Notebook number -> exercise numbers answered under its '## NN · ...' heading (bold '**3.'
    or '**2 and 3.' at the start of a line)."""
    answered: dict[str, set[int]] = {}
    current = None
    for cell in solution_cells:
        if cell["cell_type"] != "markdown":
            continue
        text = source(cell)
        pieces = [(match.start(), match.group(1)) for match in SECTION.finditer(text)]
        starts = [0] + [start for start, _ in pieces]
        owners = [current] + [number for _, number in pieces]
        for begin, end, owner in zip(starts, starts[1:] + [len(text)], owners):
            if owner is not None:
                for first, second in ANSWER.findall(text[begin:end]):
                    answered.setdefault(owner, set()).update(int(n) for n in (first, second) if n)
        current = owners[-1]
    return answered


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_exercises_are_numbered_from_one(path):
    numbers = exercise_numbers(path)
    assert numbers, f"{path.name}: the Exercises section holds no numbered exercise ('1. ...')"
    assert numbers == list(range(1, len(numbers) + 1)), f"{path.name}: exercises numbered {numbers}"


@pytest.mark.skipif(not SOLUTIONS.is_file(), reason="no 10_solutions.ipynb")
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p != SOLUTIONS], ids=ids([p for p in NOTEBOOKS if p != SOLUTIONS]))
def test_solutions_answer_every_exercise(path):
    number = path.name[:2]
    asked = set(exercise_numbers(path))
    answered = answered_exercises(cells(SOLUTIONS)).get(number, set())
    missing = sorted(asked - answered)
    extra = sorted(answered - asked)
    assert not missing, f"10_solutions lacks an answer for {', '.join(f'{number} ex. {k}' for k in missing)}"
    assert not extra, f"10_solutions answers {', '.join(f'{number} ex. {k}' for k in extra)}, which {path.name} does not ask"


def unchecked_answers(solution_cells) -> list[str]:
    """'NN ex. K' for every answer in the solutions whose code cells (those after its markdown
    cell, up to the next cell that answers something) hold no ``assert``. An open-ended question
    still gets a checkable claim in its answer, and the check. Answers in one markdown cell share
    their code cells."""
    groups: list[tuple[list[str], list[str]]] = []  # (answers of a markdown cell, the code after it)
    current = None
    for cell in solution_cells:
        text = source(cell)
        if cell["cell_type"] == "code":
            if groups:
                groups[-1][1].append(text)
            continue
        found = []
        pieces = [(match.start(), match.group(1)) for match in SECTION.finditer(text)]
        starts = [0] + [start for start, _ in pieces]
        owners = [current] + [number for _, number in pieces]
        for begin, end, owner in zip(starts, starts[1:] + [len(text)], owners):
            if owner is not None:
                found += [f"{owner} ex. {n}" for pair in ANSWER.findall(text[begin:end]) for n in pair if n]
        current = owners[-1]
        if found:
            groups.append((found, []))
    asserts = re.compile(r"^\s*assert\b", re.MULTILINE)
    return [name for names, code in groups for name in names if not any(asserts.search(text) for text in code)]


@pytest.mark.skipif(not SOLUTIONS.is_file(), reason="no 10_solutions.ipynb")
def test_every_solution_checks_its_answer():
    unchecked = unchecked_answers(cells(SOLUTIONS))
    assert not unchecked, f"these solutions assert nothing: {', '.join(unchecked)}"


def test_unchecked_answers_finds_a_solution_without_assert():
    notebook = [{"cell_type": "markdown", "source": "## 05 · Evaluation\n\n**1. Strict.** text"},
                {"cell_type": "code", "source": "x = 1\nassert x == 1"},
                {"cell_type": "markdown", "source": "**2. Boundary.** text"},
                {"cell_type": "code", "source": "print('# assert nothing')"},
                {"cell_type": "markdown", "source": "**3 and 4.** text\n\n## 06 · Loss\n\n**1. λ.**"},
                {"cell_type": "code", "source": "for x in y:\n    assert x"}]
    assert unchecked_answers(notebook) == ["05 ex. 2"]


def test_answered_exercises_reads_sections_and_joint_answers():
    notebook = [{"cell_type": "markdown", "source": "## 05 · Evaluation\n\n**1. Strict.** text\n"},
                {"cell_type": "code", "source": "**2. not markdown**"},
                {"cell_type": "markdown", "source": "**2 and 3. Both.** text\n\n## 06 · Loss\n\n**1. λ.**"},
                {"cell_type": "markdown", "source": "## Closing note\n\n**4. not an answer**"}]
    assert answered_exercises(notebook) == {"05": {1, 2, 3}, "06": {1}}


# -- device correctness --------------------------------------------------------------------------
COMPARISON = re.compile(r"\btorch\.(?:allclose|equal|isclose|testing\.assert_close)\(")
FRESH_CPU_TENSOR = re.compile(
    r"^torch\.(?:zeros|ones|full|empty|tensor|as_tensor|from_numpy|arange|linspace|rand|randn|randint|eye)\(")
ON_CPU = re.compile(r"\.(?:cpu|numpy)\(\)")


def call_arguments(code: str, open_paren: int) -> list[str]:
    """The top-level arguments of the call whose '(' is at ``open_paren``, as source text."""
    arguments, depth, start, quote = [], 0, open_paren + 1, None
    for position in range(open_paren, len(code)):
        character = code[position]
        if quote:
            quote = None if character == quote and code[position - 1] != "\\" else quote
        elif character in "'\"":
            quote = character
        elif character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
            if depth == 0:
                arguments.append(code[start:position])
                break
        elif character == "," and depth == 1:
            arguments.append(code[start:position])
            start = position + 1
    return [argument.strip() for argument in arguments if argument.strip()]


def built_on_cpu(argument: str) -> bool:
    """A tensor built right here with no device: it lives on the CPU whatever the model uses."""
    return bool(FRESH_CPU_TENSOR.match(argument)) and "device=" not in argument and ".to(" not in argument \
        and ".cuda(" not in argument


def cross_device_comparisons(code: str) -> list[str]:
    """Comparisons of a freshly built CPU tensor with a tensor that may live on another device
    (a model output, a parameter, a balancer's state): they fail or crash on a GPU runtime."""
    found = []
    for match in COMPARISON.finditer(code):
        positional = [argument for argument in call_arguments(code, match.end() - 1)
                      if not re.match(r"^\w+\s*=[^=]", argument)][:2]
        if len(positional) < 2:
            continue
        fresh = [built_on_cpu(argument) for argument in positional]
        elsewhere = [not (built_on_cpu(argument) or ON_CPU.search(argument)) for argument in positional]
        if (fresh[0] and elsewhere[1]) or (fresh[1] and elsewhere[0]):
            found.append(f"{match.group(0)}{', '.join(positional)})")
    return found


@pytest.mark.parametrize("code, expected", [
    ('assert not torch.allclose(log_variances, torch.zeros(2)), "learned"', 1),
    ("torch.equal(torch.tensor([1.0, 2.0]), model.weights())", 1),
    ("torch.allclose(output.start_logits, torch.full((2, 3), 0.5), atol=1e-5)", 1),
    ("torch.allclose(log_variances, torch.zeros_like(log_variances))", 0),
    ("torch.allclose(log_variances, torch.zeros(2, device=log_variances.device))", 0),
    ("torch.allclose(weights, torch.tensor([1.0, 1.0]).to(weights.device))", 0),
    ("torch.allclose(torch.tensor(ours.to_numpy()), torch.tensor(theirs.to_numpy()), rtol=1e-4)", 0),
    ("torch.allclose(history.cpu(), torch.tensor([2.0, 2.0]))", 0),
    ("torch.allclose(ours, theirs.to(ours.device), atol=1e-5)", 0),
])
def test_cross_device_detector(code, expected):
    assert len(cross_device_comparisons(code)) == expected, cross_device_comparisons(code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_no_cross_device_comparison(path):
    found = [hit for cell in cells(path) if cell["cell_type"] == "code" for hit in cross_device_comparisons(source(cell))]
    assert not found, (f"{path.name}: a tensor built on the CPU is compared with one that may be on the GPU after "
                       f"accelerate.prepare; build it with device=... or *_like(...): {found}")


# -- one repository address ----------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_install_cell_and_badge_use_the_repository_url(path):
    from nerqa_helpers import workbook

    url = getattr(workbook, "REPOSITORY_URL", None)
    if url is None:
        pytest.skip("workbook.REPOSITORY_URL is not defined")
    first_code = next(source(cell) for cell in cells(path) if cell["cell_type"] == "code")
    assert url in first_code, f"{path.name}: the install cell should clone workbook.REPOSITORY_URL ({url})"
    repository = url.removeprefix("https://github.com/").rstrip("/")
    badge = f"https://colab.research.google.com/github/{repository}/blob/main/notebooks/{path.name}"
    assert badge in source(cells(path)[0]), f"{path.name}: the Colab badge should open {badge}"
