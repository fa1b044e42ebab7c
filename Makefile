# Two commands set everything up: `make run` (train + evaluate the multi-task model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install data run test test-fast test-unit test-notebooks test-browser test-widgets-77 bench allocations bundle report clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first and alone: any other torch spec pulls a multi-GB CUDA build on CPU machines.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Fill data/ with CoNLL-2003 and SQuAD from the Hugging Face hub, as local files (needs the hub).
data: $(STAMP)
	$(VENV)/bin/nerqa data download

run: $(STAMP)
	$(VENV)/bin/nerqa run --output-dir runs/main

test: $(STAMP)
	HF_HUB_OFFLINE=1 NERQA_TINY=1 TQDM_DISABLE=1 $(PY) -m pytest -q tests
	HF_HUB_OFFLINE=1 NERQA_TINY=1 TQDM_DISABLE=1 $(PY) -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

# The unit tests without the slow ones (real training runs, DDP, subprocesses): about a minute.
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 NERQA_TINY=1 TQDM_DISABLE=1 $(PY) -m pytest -q -m "not slow" tests

test-unit: $(STAMP)
	HF_HUB_OFFLINE=1 NERQA_TINY=1 TQDM_DISABLE=1 $(PY) -m pytest -q tests

test-notebooks: $(STAMP)
	HF_HUB_OFFLINE=1 NERQA_TINY=1 TQDM_DISABLE=1 $(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks

# Training and inference speed against a pad-to-max loop and the bare encoder (see benchmarks/README.md).
BENCH_PRESET ?= cpu
bench: $(STAMP)
	HF_HUB_OFFLINE=1 TQDM_DISABLE=1 NERQA_DATA_DIR=$(NERQA_DATA_DIR) $(PY) benchmarks/bench.py --preset $(BENCH_PRESET) --out reports/benchmark-$(BENCH_PRESET).json

# Offline bundle (<= 64 MiB, not committed) for the full-data GPU run: scripts/gpu/run_full.sh.
bundle: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) scripts/gpu/build_bundle.py --out bundle --tar dist/nerqa-gpu-bundle.tar.gz

clean:
	rm -rf runs outputs .pytest_cache

# Colab's ipywidgets 7.7: a second venv with ipywidgets 7.7 runs the widget tests (5-9 min, not in CI).
test-widgets-77: $(STAMP)
	scripts/check_ipywidgets77.sh $(PYTHON)

# The allocation table of the default CPU run (reports/allocations; 10-17 min per allocation on 2 idle
# cores, a rerun skips finished ones): see benchmarks/allocations.py.
allocations: $(STAMP)
	HF_HUB_OFFLINE=1 TQDM_DISABLE=1 $(PY) benchmarks/allocations.py --data-dir $(NERQA_DATA_DIR) --out reports/allocations

# Every method x seed of experiments/$(EXPERIMENT).json, then its report in
# reports/experiments-$(EXPERIMENT)/ (a rerun skips finished runs). `make report` only rewrites the
# report (README.md, summary.csv, figures) from the runs' JSON files.
EXPERIMENT ?= cpu
NERQA_DATA_DIR ?= ../shared/data
.PHONY: experiments
experiments: $(STAMP)
	HF_HUB_OFFLINE=1 TQDM_DISABLE=1 NERQA_DATA_DIR=$(NERQA_DATA_DIR) $(PY) -m nerqa_helpers.experiments run experiments/$(EXPERIMENT).json --out reports/experiments-$(EXPERIMENT)

report: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m nerqa_helpers.experiments report reports/experiments-$(EXPERIMENT)

test-browser: $(STAMP)
	HF_HUB_OFFLINE=1 NERQA_TINY=1 TQDM_DISABLE=1 $(PY) -m pytest -q tests/browser
