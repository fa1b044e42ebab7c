"""Checkpoints: what a run needs to go on exactly where it stopped, written so that a crash while
writing never destroys the last good one.

A checkpoint is a folder (``output_dir/checkpoint``)::

    config.json, model.safetensors      the model (``save_pretrained``): ``from_pretrained`` loads it
    tokenizer.json, tokenizer_config.json   so the folder also works with ``nerqa predict --model``
    training_state.pt    optimiser, learning-rate scheduler and loss balancer (tensors only)
    rng_state_<rank>.pt  random generators of Python, NumPy and torch (CPU, CUDA), one per process
    trainer_state.json   step, history so far, best scores so far, the settings that fix the schedule
    manifest.json        written last: the size of every file (without it the folder is incomplete)

This is what the Hugging Face ``Trainer`` keeps in its ``checkpoint-*`` folders, written out so it
can be read. The data needs no state of its own: the loader plans every step from the seed, so a
resumed run asks it for the batches from step k + 1 on.

Writing is crash-safe: everything goes into ``.checkpoint.tmp`` first; then ``checkpoint`` becomes
``checkpoint.previous``, the new folder becomes ``checkpoint`` and the previous one is deleted.
A run killed at any moment leaves ``checkpoint`` or ``checkpoint.previous`` complete, and
:func:`find_checkpoint` looks at both.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoint"
PREVIOUS_SUFFIX = ".previous"
STATE_FILE, TRAINER_FILE, MANIFEST_FILE = "training_state.pt", "trainer_state.json", "manifest.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
FORMAT = 1


class CheckpointError(OSError, ValueError):
    """A checkpoint or model folder is missing, incomplete or corrupt; the message names the folder
    and what is wrong with it."""


# -- random generators and determinism ----------------------------------------------------------
def capture_rng_state() -> dict:
    """The state of every random generator a training step may draw from (dropout, shuffles)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, keys.tolist(), position, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping) -> None:
    """Put every generator back to a state from :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    for name, size in manifest["files"].items():
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


def balancer_state(balancer) -> dict | None:
    """The learnable state of a loss balancer: its ``state_dict`` (an ``nn.Module``), or its
    tensors, optimiser and random generator (GradNorm, PCGrad)."""
    if balancer is None:
        return None
    if isinstance(balancer, torch.nn.Module):
        return {"module": balancer.state_dict()}
    state = {}
    for name, value in vars(balancer).items():
        if isinstance(value, torch.Tensor):
            state[name] = value.detach().clone()
        elif isinstance(value, torch.optim.Optimizer):
            state[name] = value.state_dict()
        elif isinstance(value, torch.Generator):
            state[name] = value.get_state()
    return state


def restore_balancer(balancer, state: Mapping | None) -> None:
    """Load :func:`balancer_state` back, in place (optimisers keep pointing at the same tensors)."""
    if balancer is None or state is None:
        return
    if isinstance(balancer, torch.nn.Module):
        balancer.load_state_dict(state["module"])
        return
    for name, value in state.items():
        current = getattr(balancer, name, None)
        if isinstance(current, torch.optim.Optimizer):
            current.load_state_dict(value)
        elif isinstance(current, torch.Generator):
            current.set_state(value)
        elif isinstance(current, torch.Tensor) and current.shape == value.shape:
            current.data.copy_(value)
        else:
            setattr(balancer, name, value)


def write_checkpoint(output_dir: str | os.PathLike, model, tokenizer, optimizer, scheduler, trainer_state: dict,
                     balancer=None, rank: int = 0, is_main: bool = True,
                     wait: Callable[[], None] = lambda: None) -> Path:
    """Write a checkpoint to ``output_dir/checkpoint`` crash-safely (see the module docstring).

    ``trainer_state``: JSON-able dict with at least ``step``. ``model`` is the unwrapped model.
    Every process calls this (each writes its own random state); ``wait`` is the barrier
    (``accelerator.wait_for_everyone``), and only ``is_main`` writes the rest.
    """
    output_dir = Path(output_dir)
    temporary, target = output_dir / f".{CHECKPOINT_DIR}.tmp", output_dir / CHECKPOINT_DIR
    if is_main:
        if temporary.exists():
            shutil.rmtree(temporary)
        temporary.mkdir(parents=True)
    wait()
    torch.save(capture_rng_state(), temporary / f"rng_state_{rank}.pt")
    wait()
    if is_main:
        model.save_pretrained(temporary)
        if tokenizer is not None:
            tokenizer.save_pretrained(temporary)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "balancer": balancer_state(balancer)}, temporary / STATE_FILE)
        state = {"format": FORMAT, **trainer_state}
        (temporary / TRAINER_FILE).write_text(json.dumps(_jsonable(state), indent=1))
        files = sorted(p for p in temporary.iterdir() if p.is_file())
        for path in files:
            _fsync(path)
        manifest = {"format": FORMAT, "step": trainer_state["step"], "files": {p.name: p.stat().st_size for p in files}}
        (temporary / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        _fsync(temporary / MANIFEST_FILE)
        _fsync(temporary)
        replace_directory(temporary, target)
    wait()
    return target


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A checkpoint read back: its folder, ``trainer_state.json``, the tensors of
    ``training_state.pt`` and this process's random state."""

    directory: Path
    trainer_state: dict
    training_state: dict
    rng_state: dict

    @property
    def step(self) -> int:
        return int(self.trainer_state["step"])


def _torch_load(path: Path, directory: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, pickle and zip errors alike
        raise CheckpointError(f"{directory}: {path.name} cannot be read ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}).") from error


def read_checkpoint(path: str | os.PathLike, rank: int = 0) -> Checkpoint:
    """Find (:func:`find_checkpoint`) and read a checkpoint; the model weights are read by
    :func:`load_model_weights`. Raises :class:`CheckpointError` on any problem."""
    directory = find_checkpoint(path)
    trainer_state = json.loads((directory / TRAINER_FILE).read_text(encoding="utf-8"))
    if trainer_state.get("format") != FORMAT:
        raise CheckpointError(f"{directory} was written in checkpoint format {trainer_state.get('format')!r}; "
                              f"this version reads format {FORMAT}.")
    rng_path = directory / f"rng_state_{rank}.pt"
    rng_path = rng_path if rng_path.is_file() else directory / "rng_state_0.pt"
    return Checkpoint(directory, trainer_state, _torch_load(directory / STATE_FILE, directory),
                      _torch_load(rng_path, directory))


def load_model_weights(model: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Copy the weights saved in ``directory/model.safetensors`` into ``model``, in place.

    Every saved tensor must match one of the model's by name and shape: a checkpoint of another
    architecture (other encoder, other label set) gives :class:`CheckpointError`.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    path = directory / WEIGHT_FILES[0]
    try:
        saved = load_file(path)
    except Exception as error:
        raise CheckpointError(f"{directory}: {path.name} cannot be read ({error}).") from error
    own = model.state_dict()
    wrong = [name for name, tensor in saved.items() if name in own and own[name].shape != tensor.shape]
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    if wrong or missing or unexpected:
        found = {"other shape": wrong, "missing": missing, "unexpected": unexpected}
        details = [f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                   for label, names in found.items() if names]
        raise CheckpointError(f"{directory} holds weights of another model ({'; '.join(details)}); "
                              "resume with the same encoder, labels and sharing settings.")
    model.load_state_dict(saved)


def check_settings(checkpoint: Checkpoint, settings: Mapping) -> None:
    """Raise :class:`CheckpointError` when the settings that fix the schedule of steps (seed,
    batch size, steps, data sizes...) differ from those the checkpoint was written with."""
    saved = checkpoint.trainer_state.get("settings", {})
    ours = _jsonable(dict(settings))
    differ = [key for key in sorted(set(saved) | set(ours)) if saved.get(key) != ours.get(key)]
    if differ:
        described = ", ".join(f"{key}={saved.get(key)!r} there, {ours.get(key)!r} now" for key in differ)
        raise CheckpointError(f"{checkpoint.directory} was written by a run with other settings ({described}); "
                              "resume with the same settings, or start afresh in another output folder.")


def rescale_learning_rate(optimizer, scheduler, factor: float) -> None:
    """Multiply every learning rate of a resumed run by ``factor`` (e.g. to resume a diverged
    run with a lower rate): the optimiser's groups and the scheduler's base rates alike."""
    if factor == 1.0 or not math.isfinite(factor) or factor <= 0:
        return
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    scheduler.base_lrs = [rate * factor for rate in scheduler.base_lrs]
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def describe(path: str | os.PathLike) -> str | None:
    """"step N in FOLDER" for the checkpoint :func:`find_checkpoint` would resume, or None."""
    try:
        directory = find_checkpoint(path)
    except CheckpointError:
        return None
    state = json.loads((directory / TRAINER_FILE).read_text(encoding="utf-8"))
    return f"step {state['step']} in {directory}"


def _jsonable(value):
    """Plain JSON types: NumPy scalars become Python numbers, tuples lists, keys strings."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value
