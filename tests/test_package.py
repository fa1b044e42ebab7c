"""The package's front door: the main classes import from the top, lazily (the CLI stays fast)."""
import subprocess
import sys

import pytest


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_main_classes_import_from_the_package_top():
    import nerqa_helpers
    from nerqa_helpers import MultiTaskConfig, MultiTaskModel, MultiTaskPipeline
    from nerqa_helpers.inference import MultiTaskPipeline as pipeline_class
    from nerqa_helpers.model import MultiTaskConfig as config_class, MultiTaskModel as model_class

    assert (MultiTaskConfig, MultiTaskModel, MultiTaskPipeline) == (config_class, model_class, pipeline_class)
    assert {"MultiTaskConfig", "MultiTaskModel", "MultiTaskPipeline"} <= set(dir(nerqa_helpers))
    with pytest.raises(AttributeError, match="no attribute 'MultiTaskTrainer'"):
        nerqa_helpers.MultiTaskTrainer
    with pytest.raises(ImportError):
        from nerqa_helpers import MultiTaskTrainer  # noqa: F401


def test_importing_the_package_and_its_cli_loads_no_torch():
    loaded = run_python("import sys, nerqa_helpers, nerqa_helpers.cli; "
                        "print(sorted(name for name in ('torch', 'transformers', 'datasets') if name in sys.modules))")
    assert loaded == "[]"
    assert run_python("import sys; from nerqa_helpers import MultiTaskModel; print('torch' in sys.modules)") == "True"
