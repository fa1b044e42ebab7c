"""Shared fixtures: the bundled tokenizer, a small model, and a tiny random BERT for fast runs."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
# float32 on every CPU, so that the tests' thresholds and equalities hold alike on machines with and
# without bfloat16 instructions; tests/test_precision.py checks the bfloat16 path by itself.
os.environ["NERQA_CPU_BF16"] = "0"

TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
"""A random BERT small enough that a training step takes milliseconds on one CPU thread."""


@pytest.fixture(autouse=True)
def no_filled_data_folder(monkeypatch, tmp_path_factory):
    """The data rule sees an empty ``data/``, so a filled one in this checkout changes no test."""
    from nerqa_helpers import sources

    monkeypatch.setattr(sources, "DEFAULT_DATA_DIR", tmp_path_factory.getbasetemp() / "no-data-folder")


@pytest.fixture(scope="session")
def load_script():
    """``load_script(path, name)`` imports the script at ``path`` (e.g. ``benchmarks/bench.py``, not a
    package module) as the module ``name``."""
    def load(path: Path, name: str):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return load


def tiny_bert_config(vocab_size: int):
    """The :data:`TINY_BERT` encoder as a ``BertConfig`` (also for scripts outside pytest)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, **TINY_BERT)


def make_tiny_model(vocab_size: int, seed: int = 0, **config):
    """A ``MultiTaskModel`` on the tiny BERT with the CoNLL labels; ``seed`` fixes its random
    weights, ``config`` holds other ``MultiTaskConfig`` fields (``shared_layers``, ``lora``...)."""
    import torch

    from nerqa_helpers.data import NER_LABELS
    from nerqa_helpers.model import MultiTaskConfig, MultiTaskModel

    torch.manual_seed(seed)  # the weights a run starts from are part of what the seed fixes
    config.setdefault("ner_label_names", NER_LABELS)
    return MultiTaskModel(MultiTaskConfig(encoder_config=tiny_bert_config(vocab_size).to_dict(), **config))


@pytest.fixture(scope="session")
def tokenizer():
    from nerqa_helpers.encoders import load_tokenizer

    return load_tokenizer()


@pytest.fixture()
def model():
    from nerqa_helpers.model import MultiTaskModel

    return MultiTaskModel.from_encoder("default")


@pytest.fixture(scope="session")
def tiny_bert(tokenizer):
    """The tiny BERT's ``BertConfig`` with the bundled tokenizer's vocabulary."""
    return tiny_bert_config(tokenizer.vocab_size)


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    """A factory: ``tiny_model(seed=0, **config_fields)`` gives a fresh tiny ``MultiTaskModel``."""
    return lambda seed=0, **config: make_tiny_model(tokenizer.vocab_size, seed, **config)


@pytest.fixture(scope="session")
def run_ddp_worker():
    """``run(out, *arguments, port=29517)``: tests/ddp_worker.py under ``torchrun`` on two CPU
    processes (one thread each); returns the finished process (check its ``returncode``)."""
    def run(out, *arguments, port: int = 29517):
        worker = Path(__file__).with_name("ddp_worker.py")
        torchrun = Path(sys.executable).with_name("torchrun")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
        command = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), str(worker), str(out),
                   *arguments]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    return run
