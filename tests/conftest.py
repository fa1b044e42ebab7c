"""Shared fixtures: the bundled tokenizer and a small model, loaded once per session."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def tokenizer():
    from nerqa_helpers.encoders import load_tokenizer

    return load_tokenizer()


@pytest.fixture()
def model():
    from nerqa_helpers.model import MultiTaskModel

    return MultiTaskModel.from_encoder("default")
