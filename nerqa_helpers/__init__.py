"""nerqa_helpers: the tested helper package behind the multi-task NER + QA workbook.

``from nerqa_helpers import MultiTaskConfig, MultiTaskModel, MultiTaskPipeline`` works, but the
modules behind them (and torch) load only when one of these names is first used, so the command
line (``nerqa --help``) starts without importing torch. The module floors: ARCHITECTURE.md.
"""
from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {"MultiTaskConfig": "model", "MultiTaskModel": "model", "MultiTaskPipeline": "inference"}
"""Name → the module that defines it, imported on first use (PEP 562 module ``__getattr__``)."""

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
