#!/usr/bin/env bash
# The widget unit tests (tests/test_widgets.py) under ipywidgets 7.7, the version Colab ships, in a
# throwaway virtual environment under /tmp that is deleted afterwards. The project's own .venv is
# not touched. torch is installed first and alone, as the Makefile does; everything else follows
# constraints.txt except ipywidgets (and the notebook/browser tools the widget tests do not need).
# Usage: scripts/check_ipywidgets77.sh [python]        (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-${PYTHON:-python3}}"
WORK="$(mktemp -d /tmp/nerqa-ipywidgets77-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
started=$(date +%s)

"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install -q torch==2.13.0
grep -v -E '^(ipywidgets|jupyterlab|nbval|nbstripout|playwright)==' constraints.txt > "$WORK/constraints.txt"
"$PY" -m pip install -q -c "$WORK/constraints.txt" -e . pytest hypothesis "ipywidgets==7.7.*"
installed=$(date +%s)
"$PY" -c 'import ipywidgets; assert ipywidgets.__version__.startswith("7.7."), ipywidgets.__version__; print("ipywidgets", ipywidgets.__version__)'

HF_HUB_OFFLINE=1 NERQA_TINY=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false \
  "$PY" -m pytest -q -p no:cacheprovider tests/test_widgets.py
finished=$(date +%s)
echo "ipywidgets 7.7 check: set-up $((installed - started)) s, tests $((finished - installed)) s, total $((finished - started)) s"
