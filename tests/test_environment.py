"""The set-up files agree with each other and with what is installed."""
import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(text: str) -> dict[str, str]:
    found = re.findall(r"^[\s-]*([A-Za-z0-9_.\-]+)==([^\s#]+)", text, flags=re.M)
    return {name.lower().replace("_", "-"): pinned for name, pinned in found}


def test_environment_yml_pins_the_same_versions_as_constraints():
    constraints = pins((ROOT / "constraints.txt").read_text())
    conda = pins((ROOT / "environment.yml").read_text())
    assert constraints, "constraints.txt pins nothing"
    assert conda == constraints


def test_every_dependency_is_pinned_and_installed_at_its_pin():
    constraints = pins((ROOT / "constraints.txt").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    names = {re.split(r"[<>=!~\[ ]", spec)[0].lower() for spec in wanted}
    assert names <= set(constraints), f"unpinned: {names - set(constraints)}"
    # The "browser" extra (playwright) is installed by .ci/run for the browser check only.
    optional = {re.split(r"[<>=!~\[ ]", spec)[0].lower() for spec in project["optional-dependencies"].get("browser", [])}
    for name, pinned in constraints.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            assert name in optional, f"{name} is pinned but not installed"
            continue
        assert installed.split("+")[0] == pinned, f"{name}: installed {installed}, pinned {pinned}"


def test_makefile_installs_torch_alone_before_the_package():
    makefile = (ROOT / "Makefile").read_text()
    torch_line = makefile.index("pip install -q torch==2.13.0")
    package_line = makefile.index('-e ".[dev]"')
    assert torch_line < package_line
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
