"""The floors of ARCHITECTURE.md hold: no module imports upwards or a private name of another module."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nerqa_helpers"


def floors() -> dict[str, int]:
    """Unit (top-level module or sub-package of nerqa_helpers) → floor, from ARCHITECTURE.md's table."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = text[text.index("| Floor |"):].split("\n\n")[0].splitlines()
    table = {}
    for row in (re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line) for line in rows):
        if row:
            table.update({name: int(row.group(1)) for name in re.findall(r"`(\w+)`", row.group(2))})
    return table


def modules() -> dict[str, Path]:
    """Dotted name inside the package (``extensions.lora``) → file, for every module but the root ``__init__``."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and "__pycache__" not in parts:
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> list[tuple[str, str, int, str]]:
    """(imported module inside the package, imported name or "", line, the name it is bound to) for
    every import of the package in a module; ``from . import data`` imports the module ``data``."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".", 1)[1], "", node.lineno, alias.asname or "") for alias in node.names
                      if alias.name.startswith("nerqa_helpers.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "nerqa_helpers":
                target = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}" if target else alias.name
                bound = alias.asname or alias.name
                if submodule in MODULES:
                    found.append((submodule, "", node.lineno, bound))
                else:
                    found.append((target, alias.name, node.lineno, bound))
    return found


MODULES = modules()
FLOORS = floors()


def unit(module: str) -> str:
    return module.split(".")[0]


def test_every_module_has_a_floor():
    missing = sorted({unit(name) for name in MODULES} - set(FLOORS))
    assert not missing, f"add these modules to the floor table of ARCHITECTURE.md: {missing}"
    stale = sorted(name for name in FLOORS if not (PACKAGE / name).exists() and not (PACKAGE / f"{name}.py").exists())
    assert not stale, f"ARCHITECTURE.md names modules that do not exist: {stale}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_the_floors_and_take_no_private_names(name):
    problems = []
    for target, imported, line, _ in imports(name, MODULES[name]):
        if not target or unit(target) == unit(name):
            pass  # the package root, or a module of the same package
        elif FLOORS[unit(target)] >= FLOORS[unit(name)]:
            problems.append(f"line {line}: {name} (floor {FLOORS[unit(name)]}) imports {target} "
                            f"(floor {FLOORS[unit(target)]})")
        if imported.startswith("_") and not imported.startswith("__"):
            problems.append(f"line {line}: {name} imports the private name {target}.{imported}")
    problems += private_attributes(name)
    assert not problems, "\n".join(problems)


def private_attributes(name: str) -> list[str]:
    """``data._helper`` where ``data`` is a package module this module imported."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    bound = {alias for target, imported, _, alias in imports(name, MODULES[name]) if target and not imported and alias}
    return [f"line {node.lineno}: {name} uses the private name {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
            and node.attr.startswith("_") and not node.attr.startswith("__")]


def test_the_checker_sees_an_upward_import_and_a_private_name(tmp_path, monkeypatch):
    bad = tmp_path / "model.py"
    bad.write_text("from .training import train\nfrom .data import _require_data_dir\nfrom . import data\ndata._flag('x')\n")
    monkeypatch.setitem(MODULES, "model", bad)
    found = imports("model", bad)
    assert {("training", "train", 1, "train"), ("data", "_require_data_dir", 2, "_require_data_dir"),
            ("data", "", 3, "data")} <= set(found)
    with pytest.raises(AssertionError) as failure:
        test_imports_go_down_the_floors_and_take_no_private_names("model")
    message = str(failure.value)
    assert "imports training (floor 6)" in message and "data._require_data_dir" in message and "data._flag" in message


def test_lora_reaches_the_model_only_through_the_extension_seam():
    code = (
        "import sys\n"
        "from transformers import BertConfig\n"
        "from nerqa_helpers.model import MultiTaskConfig, MultiTaskModel\n"
        "bert = BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,\n"
        "                  intermediate_size=16).to_dict()\n"
        "config = MultiTaskConfig(encoder_config=bert, ner_label_names=['O', 'B-PER'], lora={'r': 2})\n"
        "try:\n"
        "    MultiTaskModel(config)\n"
        "except ValueError as error:\n"
        "    print('refused', 'nerqa_helpers.extensions' in str(error), 'peft' in sys.modules)\n"
        "import nerqa_helpers.extensions.lora\n"
        "print('built', MultiTaskModel(config).lora_tasks)\n"
    )
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert lines[:2] == ["refused True False", "built ('ner', 'qa')"]
