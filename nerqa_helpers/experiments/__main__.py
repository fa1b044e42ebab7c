"""``python -m nerqa_helpers.experiments``: see :mod:`nerqa_helpers.experiments.cli`."""
import sys

from .cli import main

sys.exit(main())
