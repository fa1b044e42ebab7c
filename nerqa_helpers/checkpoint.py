"""Checkpoints: what a run needs to go on exactly where it stopped, written so that a crash while
writing never destroys the last good one.

``accelerator.save_state`` writes the training state and ``accelerator.load_state`` reads it back;
this module adds what makes the folder safe and readable (``output_dir/checkpoint``)::

    model.safetensors       the weights       } with config.json and the tokenizer files, the
    config.json, tokenizer.json, ...          } folder also loads with ``from_pretrained``
    optimizer.bin           the optimiser (``save_state``)
    custom_checkpoint_0.pkl the learning-rate scheduler (``register_for_checkpointing``)
    custom_checkpoint_1.pkl the loss balancer's state_dict, when the run has one
    random_states_<rank>.pkl Python, NumPy and torch random generators, one file per process
    trainer_state.json      step, history so far, best scores so far, the settings that fix the schedule
    manifest.json           written last: size and SHA-256 of every file (without it: incomplete)

The data needs no state of its own: the loader plans every step from the seed, so a resumed run
asks it for the batches from step k + 1 on.

Writing is crash-safe: everything goes into ``.checkpoint.tmp`` first; then ``checkpoint`` becomes
``checkpoint.previous``, the new folder becomes ``checkpoint`` and the previous one is deleted.
A run killed at any moment leaves ``checkpoint`` or ``checkpoint.previous`` complete, and
:func:`find_checkpoint` looks at both.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from .base import jsonable

CHECKPOINT_DIR = "checkpoint"
PREVIOUS_SUFFIX = ".previous"
TRAINER_FILE, MANIFEST_FILE = "trainer_state.json", "manifest.json"
OPTIMIZER_FILE = "optimizer.bin"  # the names accelerate's save_state gives its files
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
FORMAT = 2  # 1: the state written by hand (training_state.pt); 2: accelerate's save_state


class CheckpointError(OSError, ValueError):
    """A checkpoint or model folder is missing, incomplete or corrupt; the message names the folder
    and what is wrong with it."""


# -- determinism and numerical checks -----------------------------------------------------------
def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels (process-wide; it stays on after training).

    On a CPU the loop is deterministic already. On a GPU this picks deterministic cuDNN and
    cuBLAS algorithms (slower); an operation that has none gives a warning instead of an error.
    """
    if not enabled:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def nonfinite_parameters(model: torch.nn.Module, limit: int = 3) -> list[str]:
    """Names of (at most ``limit``) parameters that hold a NaN or an infinity."""
    bad = []
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter.detach()).all():
            bad.append(name)
            if len(bad) == limit:
                break
    return bad


# -- checking folders ---------------------------------------------------------------------------
def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a ``.safetensors`` file (truncated, garbled header), or None.

    The format is an 8-byte header length, a JSON header giving every tensor's byte range, then
    the data; a file shorter than its header says was cut off while being written or copied.
    """
    size = path.stat().st_size
    if size < 8:
        return f"{path.name} is truncated ({size} bytes, not even a header)"
    with open(path, "rb") as file:
        header_length = int.from_bytes(file.read(8), "little")
        if header_length > size - 8:
            return (f"{path.name} is truncated or not a safetensors file "
                    f"(header of {header_length:,} bytes in a {size:,}-byte file)")
        try:
            header = json.loads(file.read(header_length))
            end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError):
            return f"{path.name} is corrupt (its header is not a safetensors header)"
    expected = 8 + header_length + end
    if size < expected:
        return f"{path.name} is truncated ({size:,} bytes where its header describes {expected:,})"
    return None


def _read_json(path: Path) -> tuple[object, str | None]:
    """(content, None) or (None, what is wrong with the JSON file)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8 text"
    except json.JSONDecodeError as error:
        return None, f"{path.name} is not valid JSON (line {error.lineno}: {error.msg})"


def model_problem(directory: str | os.PathLike, model_type: str | None = "nerqa_multitask",
                  tokenizer: bool = True) -> str | None:
    """What keeps ``directory`` from being a loadable saved model, or None when it looks whole.

    Checks without loading anything big: the folder exists, config.json is JSON of the right
    ``model_type``, the weights are there and not truncated, the tokenizer files are there.
    """
    directory = Path(directory)
    if directory.is_file():
        return "is a file, not a folder"
    if not directory.is_dir():
        return "does not exist"
    if not (directory / "config.json").is_file():
        return "has no config.json"
    config, problem = _read_json(directory / "config.json")
    if problem:
        return f"has a broken config: {problem}"
    if not isinstance(config, dict):
        return "has a broken config: config.json is not a JSON object"
    if model_type and config.get("model_type") != model_type:
        return f"holds a {config.get('model_type')!r} model, not a {model_type!r} model"
    weights = next((directory / name for name in WEIGHT_FILES if (directory / name).is_file()), None)
    if weights is None:
        return f"has no weights ({' or '.join(WEIGHT_FILES)})"
    if weights.suffix == ".safetensors":
        problem = safetensors_problem(weights)
        if problem:
            return f"has broken weights: {problem}"
    if tokenizer and not any((directory / name).is_file() for name in TOKENIZER_FILES):
        return f"has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])})"
    return None


def check_model_dir(directory: str | os.PathLike, model_type: str | None = "nerqa_multitask",
                    tokenizer: bool = True) -> Path:
    """``directory`` as a Path, or :class:`CheckpointError` saying what is wrong with it."""
    problem = model_problem(directory, model_type, tokenizer)
    if problem:
        raise CheckpointError(f"{directory} {problem}; a saved model folder holds config.json, "
                              "model.safetensors and the tokenizer files.")
    return Path(directory)


def checkpoint_problem(directory: str | os.PathLike) -> str | None:
    """What keeps ``directory`` from being a complete training checkpoint, or None."""
    directory = Path(directory)
    problem = model_problem(directory, model_type=None, tokenizer=False)
    if problem:
        return problem
    if not (directory / MANIFEST_FILE).is_file():
        return f"is not a complete training checkpoint (no {MANIFEST_FILE}; a run killed while writing leaves this)"
    manifest, problem = _read_json(directory / MANIFEST_FILE)
    if problem or not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return f"has a broken {MANIFEST_FILE}"
    for name, written in manifest["files"].items():
        size = written["bytes"] if isinstance(written, dict) else written  # format 1 kept sizes only
        path = directory / name
        if not path.is_file():
            return f"is missing {name}"
        if path.stat().st_size != size:
            return f"has a damaged {name} ({path.stat().st_size:,} bytes, {size:,} when written)"
    state, problem = _read_json(directory / TRAINER_FILE)
    if problem:
        return f"has a broken {TRAINER_FILE}: {problem}"
    if not isinstance(state, dict) or "step" not in state:
        return f"has a {TRAINER_FILE} without a step"
    return None


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder to resume from: ``path`` itself when it is a checkpoint, else
    ``path/checkpoint``, else ``path/checkpoint.previous`` (left by a run killed while saving).

    Raises :class:`CheckpointError` naming each folder looked at and what is wrong with it.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint to resume: {path} does not exist.")
    markers = (TRAINER_FILE, MANIFEST_FILE, "config.json", WEIGHT_FILES[0])
    itself = path.name.startswith(CHECKPOINT_DIR) or any((path / name).exists() for name in markers)
    candidates = ([path] if itself else []) + [path / CHECKPOINT_DIR, path / (CHECKPOINT_DIR + PREVIOUS_SUFFIX)]
    problems = []
    for candidate in (candidate for candidate in candidates if candidate.exists()):
        problem = checkpoint_problem(candidate)
        if problem is None:
            if problems:
                warnings.warn(f"Resuming from {candidate}, because {'; '.join(problems)}.", stacklevel=2)
            return candidate
        problems.append(f"{candidate} {problem}")
    if not problems:
        raise CheckpointError(f"No checkpoint to resume in {path}: there is no {CHECKPOINT_DIR}/ folder "
                              "(a run writes one every checkpoint_every steps).")
    raise CheckpointError("No usable checkpoint to resume: " + "; ".join(problems) + ".")


# -- writing ------------------------------------------------------------------------------------
def _fsync(path: Path) -> None:
    """Push a file (or a folder's entries) to the disk, where the system allows it."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # folders cannot be opened on Windows
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def replace_directory(source: Path, target: Path) -> None:
    """Move the folder ``source`` to ``target``, keeping the old ``target`` as
    ``target.previous`` until the move is done, so one of the two is always complete."""
    previous = target.with_name(target.name + PREVIOUS_SUFFIX)
    if target.exists():
        if previous.exists():
            shutil.rmtree(previous)
        os.replace(target, previous)
    os.replace(source, target)
    _fsync(target.parent)
    if previous.exists():
        shutil.rmtree(previous)


def _digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(accelerator, output_dir: str | os.PathLike, model, tokenizer, trainer_state: dict) -> Path:
    """Write a checkpoint to ``output_dir/checkpoint`` crash-safely (see the module docstring).

    ``accelerator.save_state`` writes the weights, optimiser, registered objects (scheduler,
    balancer) and every process's random state; the main process then adds the model config, the
    tokenizer, ``trainer_state`` (JSON-able, with at least ``step``) and the manifest, and swaps
    the folder in. ``model`` is the unwrapped model. Every process calls this.
    """
    output_dir = Path(output_dir)
    temporary, target = output_dir / f".{CHECKPOINT_DIR}.tmp", output_dir / CHECKPOINT_DIR
    if accelerator.is_main_process and temporary.exists():
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model.config.save_pretrained(temporary)
        if tokenizer is not None:
            tokenizer.save_pretrained(temporary)
        state = {"format": FORMAT, **trainer_state}
        (temporary / TRAINER_FILE).write_text(json.dumps(jsonable(state), indent=1))
        files = sorted(path for path in temporary.iterdir() if path.is_file())
        for path in files:
            _fsync(path)
        manifest = {"format": FORMAT, "step": trainer_state["step"],
                    "files": {path.name: {"bytes": path.stat().st_size, "sha256": _digest(path)} for path in files}}
        (temporary / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        _fsync(temporary / MANIFEST_FILE)
        _fsync(temporary)
        replace_directory(temporary, target)
    accelerator.wait_for_everyone()
    return target


def save_unwrapped_weights(accelerator) -> None:
    """Make ``save_state`` / ``load_state`` use the unwrapped model's parameter names (no DDP
    ``module.`` prefix), so a checkpoint's ``model.safetensors`` loads with ``from_pretrained``
    however many processes wrote it."""
    def before_save(models, weights, output_dir):
        weights[:] = [accelerator.unwrap_model(model).state_dict() for model in models]

    def before_load(models, input_dir):
        models[:] = [accelerator.unwrap_model(model) for model in models]

    accelerator.register_save_state_pre_hook(before_save)
    accelerator.register_load_state_pre_hook(before_load)


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A checkpoint found and checked: its folder and ``trainer_state.json``."""

    directory: Path
    trainer_state: dict

    @property
    def step(self) -> int:
        return int(self.trainer_state["step"])


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Find (:func:`find_checkpoint`) a checkpoint, check that every file still has the bytes it
    was written with, and read its trainer state. Raises :class:`CheckpointError` on any problem."""
    directory = find_checkpoint(path)
    manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    trainer_state = json.loads((directory / TRAINER_FILE).read_text(encoding="utf-8"))
    if trainer_state.get("format") != FORMAT or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{directory} was written in checkpoint format {trainer_state.get('format')!r}; "
                              f"this version reads format {FORMAT}.")
    for name, written in manifest["files"].items():
        if _digest(directory / name) != written["sha256"]:
            raise CheckpointError(f"{directory} has a damaged {name} (its bytes changed after it was written).")
    return Checkpoint(directory, trainer_state)


def load_checkpoint(accelerator, checkpoint: Checkpoint) -> None:
    """``accelerator.load_state``: weights, optimiser, registered objects and this process's
    random generators as the checkpoint holds them. Raises :class:`CheckpointError` when the
    state does not fit the objects of this run."""
    try:
        accelerator.load_state(str(checkpoint.directory))
    except (KeyError, ValueError, RuntimeError, OSError) as error:
        raise CheckpointError(f"{checkpoint.directory}: the saved state does not fit this run "
                              f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}).") from error


def check_weights(model: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` unless every tensor in ``directory/model.safetensors`` matches
    one of ``model``'s by name and shape (read from the file's header; no tensor is loaded): a
    checkpoint of another architecture (other encoder, label set or sharing) is refused."""
    from safetensors import safe_open

    directory = Path(directory)
    path = directory / WEIGHT_FILES[0]
    try:
        with safe_open(str(path), framework="pt") as file:
            saved = {name: tuple(file.get_slice(name).get_shape()) for name in file.keys()}
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"{directory}: {path.name} cannot be read ({error}).") from error
    own = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    found = {"other shape": [name for name in saved if name in own and own[name] != saved[name]],
             "missing": sorted(set(own) - set(saved)), "unexpected": sorted(set(saved) - set(own))}
    details = [f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
               for label, names in found.items() if names]
    if details:
        raise CheckpointError(f"{directory} holds weights of another model ({'; '.join(details)}); "
                              "resume with the same encoder, labels and sharing settings.")


def check_settings(checkpoint: Checkpoint, settings: Mapping) -> None:
    """Raise :class:`CheckpointError` when the settings that fix the schedule of steps (seed,
    batch size, steps, data sizes...) differ from those the checkpoint was written with."""
    saved = checkpoint.trainer_state.get("settings", {})
    ours = jsonable(dict(settings))
    differ = [key for key in sorted(set(saved) | set(ours)) if saved.get(key) != ours.get(key)]
    if differ:
        described = ", ".join(f"{key}={saved.get(key)!r} there, {ours.get(key)!r} now" for key in differ)
        raise CheckpointError(f"{checkpoint.directory} was written by a run with other settings ({described}); "
                              "resume with the same settings, or start afresh in another output folder.")


def rescale_learning_rate(optimizer, scheduler, factor: float) -> None:
    """Multiply every learning rate of a resumed run by ``factor`` (e.g. to resume a diverged
    run with a lower rate): the optimiser's groups now, the scheduler's base rates for the steps
    to come."""
    if factor == 1.0 or not math.isfinite(factor) or factor <= 0:
        return
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    scheduler.base_lrs = [rate * factor for rate in scheduler.base_lrs]


def describe(path: str | os.PathLike) -> str | None:
    """"step N in FOLDER" for the checkpoint :func:`find_checkpoint` would resume, or None."""
    try:
        directory = find_checkpoint(path)
    except CheckpointError:
        return None
    state = json.loads((directory / TRAINER_FILE).read_text(encoding="utf-8"))
    return f"step {state['step']} in {directory}"
