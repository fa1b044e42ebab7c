"""How fast the project's training loop runs, next to two references on the same batches.

    python benchmarks/bench.py --preset cpu --out reports/benchmark-cpu.json     (or: make bench)
    python benchmarks/bench.py --preset gpu --out reports/benchmark-gpu.json
    python benchmarks/bench.py --preset tiny                                      (a smoke test)

Three loops train copies of one model, from the same weights, on the same scheduled batches:

    project       ``nerqa_helpers.training.train``: length-grouped batches padded per batch, no
                  host-device sync per step, fused AdamW and the precision of
                  ``precision.precision_for`` (bf16 on an A100/H100, fp16 on a T4/V100).
    pad-to-max    what a first tutorial does: every batch padded to 128 (NER) / 384 (QA) tokens,
                  batches in a fixed order, ``loss.item()`` every step.
    bare encoder  the encoder's forward + backward alone on the project's padded batches, with
                  the batches already on the device: no heads, no optimiser, no data loading.
                  No loop over these batches can be faster; it is the upper bound.

Absolute times on a shared machine are noisy, so the summary is two ratios on real (non-pad)
tokens per second: project ÷ pad-to-max and project ÷ bare encoder. A step is timed from the end
of one backward pass to the end of the next, so it holds one optimiser step, one batch's data
loading, one forward and one backward; the first ``warmup`` steps of every loop are not counted.

Then: evaluation throughput (``evaluation.evaluate`` per task, post-processing included) and the
latency of ``inference.MultiTaskPipeline`` for one 30-word NER sentence and one 384-token QA
window. Data: by the project's data rule (``sources.load_task_data``): ``--data-dir`` or
``$NERQA_DATA_DIR``, else the Hugging Face hub when it answers (or is cached), else the bundled tiny
sample; the ``tiny`` preset always uses the sample (the JSON says which data was used and why).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
try:
    import nerqa_helpers  # noqa: F401  (installed, or a wheel on PYTHONPATH as in the GPU bundle)
except ImportError:  # a checkout that was not installed
    sys.path.insert(0, str(REPO))

from nerqa_helpers import sources  # noqa: E402
from nerqa_helpers.encoders import load_tokenizer  # noqa: E402
from nerqa_helpers.model import MultiTaskModel  # noqa: E402
from nerqa_helpers.precision import autocast_for, precision_for  # noqa: E402
from nerqa_helpers.presets import DEFAULTS  # noqa: E402
from nerqa_helpers.sampling import MultiTaskDataLoader, make_collators  # noqa: E402
from nerqa_helpers.evaluation import evaluate  # noqa: E402
from nerqa_helpers.tasks import TaskData, build_tasks  # noqa: E402
from nerqa_helpers.training import TrainingConfig, train  # noqa: E402

MAX_LENGTH = {"ner": DEFAULTS.ner_max_length, "qa": DEFAULTS.qa_max_length}  # the windows every loop uses

NER_SENTENCE = (
    "On Tuesday Clara Whitfield of the Northbridge Rowing Club told reporters in Glasgow "
    "that the club would race against Oxford Brookes and Heidelberg in the Danube Cup next spring ."
)
"""30 words, written for this benchmark."""

QA_QUESTION = "Which engineer designed the first lighthouse on the northern cape?"
QA_PARAGRAPH = (
    "The first lighthouse on the northern cape was designed by the engineer Tomas Ravel in 1871. "
    "Its lamp burned whale oil until 1903, when a paraffin burner replaced it, and in 1936 the tower "
    "was wired for electricity. Keepers lived in a stone cottage at the foot of the tower and rowed "
    "to the harbour town twice a week for supplies, weather permitting. The tower is now a museum "
    "that opens from May to September. "
)
"""Repeated and cut so that question + context fill exactly one 384-token window."""


@dataclass(frozen=True)
class BenchPreset:
    """Sizes of one benchmark run. Pools are the tokenized training examples the loader plans
    over (None = all); ``steps`` timed per loop after ``warmup`` untimed ones."""

    name: str
    ner_pool: int | None
    qa_pool: int | None
    ner_eval: int | None
    qa_eval: int | None
    batch_size: int
    steps: int
    warmup: int
    latency_repeats: int
    tiny_data: bool = False


PRESETS = {
    "tiny": BenchPreset("tiny", None, None, 16, 6, batch_size=8, steps=4, warmup=1, latency_repeats=3,
                        tiny_data=True),
    # About the task mix of the full data (CoNLL 439 batches : SQuAD split ~280), ~3 minutes on 2 cores.
    "cpu": BenchPreset("cpu", 1600, 1000, 400, 100, batch_size=32, steps=24, warmup=3, latency_repeats=20),
    "gpu": BenchPreset("gpu", None, None, None, None, batch_size=32, steps=600, warmup=40, latency_repeats=50),
}


# -- measuring ------------------------------------------------------------------------------------
class StepClock:
    """Marks the end of each step's backward pass; usable as ``train``'s ``step_hook``.

    CPU: ``time.perf_counter``. CUDA: an event recorded on the stream, read after one
    synchronisation at the end, so timing adds no host-device sync to the loop.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []
        self.tasks: list[str] = []

    def mark(self, task: str) -> None:
        if not self.marks:
            self.host_first = time.perf_counter()  # host time: includes compilation, if any
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())
        self.tasks.append(task)

    def __call__(self, step, task_losses, model) -> None:
        self.mark(next(iter(task_losses)))

    def durations(self) -> list[float]:
        """Seconds between consecutive marks: entry i is step i + 2 (1-based)."""
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1000 for a, b in zip(self.marks, self.marks[1:])]
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


class PeakMemory:
    """Peak memory of a block: CUDA ``max_memory_allocated``, else the process RSS sampled every 5 ms."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.peak_bytes = 0

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil

        process = psutil.Process()
        self.peak_bytes = process.memory_info().rss
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.005):
                self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
        return False

    def report(self) -> dict:
        kind = "cuda_max_memory_allocated" if self.cuda else "process_rss_peak"
        return {"peak_memory_mib": round(self.peak_bytes / 2**20, 1), "memory_kind": kind}


def throughput(clock: StepClock, sizes: list[tuple[str, int, int]], warmup: int) -> dict:
    """Per task and overall: steps, seconds, real / padded tokens per second, median step time.

    sizes: per step (task, real tokens, padded tokens). Steps 1..warmup are not counted.
    """
    timed = list(zip(sizes[warmup:], clock.durations()[warmup - 1:]))
    result = {}
    for task in sorted({task for task, *_ in sizes}) + ["all"]:
        rows = [(real, padded, seconds) for (name, real, padded), seconds in timed if task in (name, "all")]
        if not rows:
            continue
        seconds = sum(row[2] for row in rows)
        result[task] = {
            "steps": len(rows), "seconds": round(seconds, 4),
            "real_tokens": sum(row[0] for row in rows), "padded_tokens": sum(row[1] for row in rows),
            "real_tokens_per_s": round(sum(row[0] for row in rows) / seconds, 1),
            "padded_tokens_per_s": round(sum(row[1] for row in rows) / seconds, 1),
            "padding_share": round(1 - sum(row[0] for row in rows) / sum(row[1] for row in rows), 4),
            "median_step_ms": round(1000 * statistics.median(row[2] for row in rows), 2),
        }
    first = clock.durations()[: warmup - 1]
    result["warmup_seconds"] = round(sum(first), 3)
    return result


# -- data -----------------------------------------------------------------------------------------
def load_benchmark_tasks(preset: BenchPreset, tokenizer, data_dir: str | None, seed: int = 0):
    """Tokenized tasks (train pools + evaluation sets) and a line saying which data was used and why.

    The data rule of ``sources.load_task_data``; the tiny preset uses the bundled sample unless
    ``data_dir`` is given."""
    sizes = {"ner": {"train": preset.ner_pool, "validation": preset.ner_eval},
             "qa": {"train": preset.qa_pool, "validation": preset.qa_eval}}
    tiny = True if preset.tiny_data and data_dir is None else None
    ner, qa, source = sources.load_task_data(("ner", "qa"), sizes, seed, data_dir=data_dir, tiny=tiny)
    tasks = build_tasks(tokenizer, {k: ner[k] for k in ("train", "validation")}, qa, **DEFAULTS.windows())
    return tasks, source


def warmup_for_compile(schedule) -> int:
    """Steps until every task of ``schedule`` has run twice (its graphs are compiled by then)."""
    seen: dict[str, int] = {}
    for step, (task, _) in enumerate(schedule, start=1):
        seen[task] = seen.get(task, 0) + 1
        if len(seen) == len({task for task, _ in schedule}) and min(seen.values()) >= 2:
            return step
    return len(schedule)


def project_config(preset: BenchPreset, output_dir: str, **overrides) -> TrainingConfig:
    settings = dict(output_dir=output_dir, batch_size=preset.batch_size, max_steps=preset.warmup + preset.steps,
                    task_epochs={"ner": 1.0, "qa": 1.0}, save_best=False, progress=False)
    return TrainingConfig(**{**settings, **overrides})


def planned_batches(tasks, tokenizer, config: TrainingConfig) -> tuple[MultiTaskDataLoader, list]:
    """The loader ``train`` builds for ``config`` on one process, and its ``(task, indices)`` steps."""
    loader = MultiTaskDataLoader(
        {task: data.train_features for task, data in tasks.items()}, make_collators(tokenizer),
        batch_size=config.batch_size, task_epochs=config.task_epochs, strategy=config.strategy,
        temperature=config.temperature, total_steps=config.max_steps, group_by_length=config.group_by_length,
        seed=config.seed,
    )
    return loader, loader.schedule[: config.max_steps]


# -- the three loops -----------------------------------------------------------------------------
def run_project(model, tokenizer, tasks, config: TrainingConfig, device) -> tuple[StepClock, list, dict]:
    """``training.train`` itself; returns its clock, the per-step sizes it logged, and memory."""
    clock = StepClock(device)
    train_only = {task: TaskData(train_features=task_data.train_features) for task, task_data in tasks.items()}
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        result = train(model, tokenizer, train_only, config, step_hook=clock)
    logged = [record for record in result.history.records if record.get("kind") == "train"]
    sizes = [(record["task"], record["real_tokens"], record["tokens"]) for record in logged]
    extra = {**memory.report(), "train_seconds": round(result.train_seconds, 3),
             "first_step_seconds": round(clock.host_first - started, 3)}  # setup + step 1 (+ compilation)
    return clock, sizes, extra


def pad_to_max(features, indices: list[int], length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Rows ``indices`` padded to ``length`` (NER labels with -100), as ``padding="max_length"`` gives."""
    rows = features[indices]
    fill = {"input_ids": pad_id, "labels": -100}
    batch = {}
    for key in ("input_ids", "attention_mask", "token_type_ids", "labels"):
        if key in rows:
            batch[key] = torch.tensor([row + [fill.get(key, 0)] * (length - len(row)) for row in rows[key]])
    for key in ("start_positions", "end_positions"):
        if key in rows:
            batch[key] = torch.tensor(rows[key])
    return batch


def run_pad_to_max(model, tokenizer, tasks, schedule, config: TrainingConfig, device) -> tuple[StepClock, list, dict]:
    """A first tutorial's loop: max-length padding, plain AdamW, ``loss.item()`` every step."""
    from transformers import get_linear_schedule_with_warmup

    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * len(schedule)), len(schedule))
    clock, sizes, losses = StepClock(device), [], []
    with PeakMemory(device) as memory:
        for task, indices in schedule:
            batch = pad_to_max(tasks[task].train_features, indices, MAX_LENGTH[task], tokenizer.pad_token_id)
            sizes.append((task, int(batch["attention_mask"].sum()), batch["input_ids"].numel()))
            batch = {key: value.to(device) for key, value in batch.items()}
            with autocast_for(device):
                loss = model(**batch, task=task).loss
            loss.backward()
            clock.mark(task)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    return clock, sizes, memory.report()


def run_bare_encoder(model, loader: MultiTaskDataLoader, schedule, device) -> tuple[StepClock, list, dict]:
    """Encoder forward + backward on the project's batches, already on the device."""
    encoder = model.encoder.to(device).train()
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    batches = []
    for task, indices in schedule:
        batch = loader.collate(task, indices)
        batches.append((task, {key: batch[key].to(device) for key in inputs if key in batch}))
    sizes = [(task, int(batch["attention_mask"].sum()), batch["input_ids"].numel()) for task, batch in batches]
    clock = StepClock(device)
    with PeakMemory(device) as memory:
        for task, batch in batches:
            with autocast_for(device):
                hidden = encoder(**batch).last_hidden_state  # (B, T, H)
            hidden.float().mean().backward()
            clock.mark(task)
            encoder.zero_grad(set_to_none=True)
    return clock, sizes, memory.report()


# -- evaluation and the pipeline -----------------------------------------------------------------
def token_counts(features) -> tuple[int, int]:
    """(real tokens, features) of tokenized evaluation features."""
    lengths = [len(ids) for ids in features["input_ids"]]
    return sum(lengths), len(lengths)


def measure_evaluation(model, tokenizer, tasks, config: TrainingConfig, device) -> dict:
    """``evaluation.evaluate`` per task: seconds, examples/s, real tokens/s (forward + post-processing)."""
    model.to(device)
    result = {}
    for task, task_data in tasks.items():
        if task_data.eval_features is None:
            continue
        real, features = token_counts(task_data.eval_features)
        examples = len(task_data.references) if task == "ner" else len(task_data.eval_examples)
        started = time.perf_counter()
        metrics = evaluate(model, tokenizer, {task: task_data}, config)
        seconds = time.perf_counter() - started
        result[task] = {"examples": examples, "features": features, "real_tokens": real, "seconds": round(seconds, 3),
                        "examples_per_s": round(examples / seconds, 1), "real_tokens_per_s": round(real / seconds, 1),
                        "batch_size": config.eval_batch_size, "score": round(metrics["score"], 2)}
    return result


def qa_window_context(tokenizer, question: str, length: int) -> str:
    """A context that, after ``question``, fills one window of exactly ``length`` tokens."""
    room = length - len(tokenizer(question)["input_ids"]) - 1  # [CLS] q [SEP] context [SEP]
    text = QA_PARAGRAPH * 8
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    return text[: offsets[room - 1][1]]


def measure_latency(model, tokenizer, device, repeats: int) -> dict:
    """Median and 90th-percentile latency (ms) of ``MultiTaskPipeline.ner`` / ``.qa``, one input each."""
    from nerqa_helpers.inference import MultiTaskPipeline, split_words

    pipeline = MultiTaskPipeline(model, tokenizer, device=device)
    context = qa_window_context(tokenizer, QA_QUESTION, MAX_LENGTH["qa"])
    _, features = pipeline.qa_features([QA_QUESTION], [context])
    window = [len(ids) for ids in features["input_ids"]]
    calls = {"ner": lambda: pipeline.ner(NER_SENTENCE), "qa": lambda: pipeline.qa(QA_QUESTION, context)}
    result = {"ner_words": len(split_words(NER_SENTENCE)[0]), "qa_windows": window}
    for task, call in calls.items():
        for _ in range(3):
            call()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            call()
            times.append(1000 * (time.perf_counter() - started))
        times.sort()
        result[task] = {"median_ms": round(statistics.median(times), 2),
                        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 2), "repeats": repeats}
    return result


# -- the run ---------------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except OSError:
        commit = None
    info = {"device": device.type, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(), "git_commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        info["precision"] = precision_for(device)
    return info


def ratios(loops: dict) -> dict:
    """project ÷ pad-to-max and project ÷ bare encoder, real tokens/s, per task and overall."""
    result = {}
    for task in loops["project"]:
        if not isinstance(loops["project"][task], dict) or "real_tokens_per_s" not in loops["project"][task]:
            continue
        project = loops["project"][task]["real_tokens_per_s"]
        result[task] = {f"project_over_{name}": round(project / loops[name][task]["real_tokens_per_s"], 3)
                        for name in ("pad_to_max", "bare_encoder") if task in loops[name]}
    return result


def run_benchmark(preset: BenchPreset, device: torch.device, data_dir: str | None = None, seed: int = 0,
                  compile_model: bool = False, encoder: str = "default", log=print) -> dict:
    """Everything in this file's docstring; returns the report as a dict."""
    torch.manual_seed(seed)
    load_before = os.getloadavg()
    started = time.perf_counter()
    tokenizer = load_tokenizer(encoder)
    tasks, source = load_benchmark_tasks(preset, tokenizer, data_dir, seed)
    log(f"data: {source}; preparing took {time.perf_counter() - started:.1f} s")
    initial = MultiTaskModel.from_encoder(encoder, **DEFAULTS.windows())
    with tempfile.TemporaryDirectory() as output_dir:
        overrides = {"cpu": device.type == "cpu"}
        if compile_model:
            overrides["torch_compile"] = True
        config = project_config(preset, output_dir, seed=seed, **overrides)
        loader, schedule = planned_batches(tasks, tokenizer, config)
        if compile_model:  # keep compilation out of the timed steps: warm up until each task ran twice
            preset = replace(preset, warmup=max(preset.warmup, warmup_for_compile(schedule)))
            config = project_config(preset, output_dir, seed=seed, **overrides)
            loader, schedule = planned_batches(tasks, tokenizer, config)
        loops, memory, sizes_of = {}, {}, {}

        log(f"project loop: {len(schedule)} steps ({preset.warmup} warm-up) ...")
        project_model = copy.deepcopy(initial)
        clock, sizes, extra = run_project(project_model, tokenizer, tasks, config, device)
        loops["project"], memory["project"], sizes_of["project"] = throughput(clock, sizes, preset.warmup), extra, sizes

        log("pad-to-max loop ...")
        clock, sizes, extra = run_pad_to_max(copy.deepcopy(initial), tokenizer, tasks, schedule, config, device)
        loops["pad_to_max"], memory["pad_to_max"] = throughput(clock, sizes, preset.warmup), extra

        log("bare encoder ...")
        clock, sizes, extra = run_bare_encoder(copy.deepcopy(initial), loader, schedule, device)
        loops["bare_encoder"], memory["bare_encoder"], sizes_of["bare_encoder"] = (
            throughput(clock, sizes, preset.warmup), extra, sizes)

        same = sizes_of["project"] == sizes_of["bare_encoder"]
        log("evaluation and pipeline latency ...")
        evaluation = measure_evaluation(project_model, tokenizer, tasks, config, device)
        latency = measure_latency(project_model, tokenizer, device, preset.latency_repeats)
    for name in loops:
        loops[name].update(memory[name])
    project = loops["project"]
    # Time the untimed steps took beyond steady state: setup, first-call costs and, with --compile, compilation.
    project["startup_overhead_seconds"] = round(
        project["first_step_seconds"] + project["warmup_seconds"]
        - preset.warmup * project["all"]["median_step_ms"] / 1000, 2)
    report = {
        "preset": asdict(preset), "data": source, "encoder": str(encoder), "environment": environment(device),
        "same_batches": same, "settings": {"batch_size": config.batch_size, "seed": seed, "compile": compile_model,
                                           "eval_batch_size": config.eval_batch_size,
                                           "mixed_precision": precision_for(device)},
        "training": loops, "ratios": ratios(loops), "evaluation": evaluation, "pipeline_latency": latency,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    report["targets"] = targets(report)
    return report


def targets(report: dict) -> dict:
    """The CPU targets of the performance issue, met or not (GPU runs report the numbers only)."""
    overall = report["ratios"].get("all", {})
    latency = report["pipeline_latency"]
    checks = {
        "project_over_pad_to_max >= 2.0": overall.get("project_over_pad_to_max", 0) >= 2.0,
        "project_over_bare_encoder >= 0.85": overall.get("project_over_bare_encoder", 0) >= 0.85,
        "ner_latency_median_ms <= 30": latency["ner"]["median_ms"] <= 30,
        "qa_latency_median_ms <= 150": latency["qa"]["median_ms"] <= 150,
    }
    return {name: bool(value) for name, value in checks.items()}


def summary(report: dict) -> str:
    """The printed table."""
    lines = [f"benchmark {report['preset']['name']} on {report['environment'].get('gpu', report['environment']['processor'])}"
             f" ({report['environment']['torch_threads']} threads), data: {report['data']}",
             f"load average before {report['load_average']['before']}, after {report['load_average']['after']}",
             "", f"{'training loop':<14}{'task':<5}{'steps':>6}{'real tok/s':>12}{'padded tok/s':>14}"
             f"{'pad %':>7}{'step ms':>9}{'peak MiB':>10}"]
    for name, loop in report["training"].items():
        for task in ("ner", "qa", "all"):
            if task in loop:
                row = loop[task]
                lines.append(f"{name:<14}{task:<5}{row['steps']:>6}{row['real_tokens_per_s']:>12,.0f}"
                             f"{row['padded_tokens_per_s']:>14,.0f}{100 * row['padding_share']:>7.1f}"
                             f"{row['median_step_ms']:>9.1f}{loop['peak_memory_mib'] if task == 'all' else '':>10}")
    lines.append("")
    for task, values in report["ratios"].items():
        lines.append(f"ratio {task:<4} " + ", ".join(f"{key} {value:.2f}" for key, value in values.items()))
    lines.append(f"same batches in project and bare encoder: {report['same_batches']}")
    lines.append("")
    for task, row in report["evaluation"].items():
        lines.append(f"evaluation {task:<3} {row['examples']} examples in {row['seconds']:.2f} s: "
                     f"{row['examples_per_s']:,.1f} examples/s, {row['real_tokens_per_s']:,.0f} real tok/s "
                     f"(batch {row['batch_size']})")
    latency = report["pipeline_latency"]
    lines.append(f"pipeline latency: NER {latency['ner_words']} words {latency['ner']['median_ms']:.1f} ms "
                 f"(p90 {latency['ner']['p90_ms']:.1f}); QA window {latency['qa_windows']} tokens "
                 f"{latency['qa']['median_ms']:.1f} ms (p90 {latency['qa']['p90_ms']:.1f})")
    lines.append("targets: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in report["targets"].items()))
    lines.append(f"wall time {report['wall_seconds']:.0f} s")
    return "\n".join(lines)


def markdown(report: dict, command: str) -> str:
    """The report as Markdown (written next to the JSON): nothing in it is typed by hand."""
    env, load = report["environment"], report["load_average"]
    machine = env.get("gpu") or f"{env['cpu_count']} CPU cores ({env['processor']})"
    # The benchmark's own threads add about their number to the load; more than one beyond that is others.
    busy = env["device"] == "cpu" and load["after"][0] > env["torch_threads"] + 1
    lines = [f"# Benchmark `{report['preset']['name']}` on {machine}", "",
             f"Generated by `{command}` on {env['date']} (commit {env['git_commit']}, torch {env['torch']}, "
             f"transformers {env['transformers']}, {env['torch_threads']} threads). Data: {report['data']}.", ""]
    if busy:
        lines += [f"**Other programs shared the machine** (1-minute load average {load['before'][0]} before, "
                  f"{load['after'][0]} after, on {env['cpu_count']} cores): absolute figures are low; read the ratios.", ""]
    else:
        lines += [f"1-minute load average {load['before'][0]} before and {load['after'][0]} after the run; the "
                  f"benchmark's own {env['torch_threads']} threads account for about {env['torch_threads']}.", ""]
    lines += ["| target | met |", "| --- | --- |"]
    lines += [f"| `{name}` | {'yes' if ok else '**no**'} |" for name, ok in report["targets"].items()]
    lines += ["", "```text", summary(report), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", default=None, help="JSON report path (default: print only)")
    parser.add_argument("--data-dir", default=None, help="folder with conll2003/ and squad/")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="default", help="'default' (bundled MiniLM) or a saved encoder folder")
    parser.add_argument("--compile", action="store_true", help="torch.compile the project's model")
    parser.add_argument("--report", metavar="JSON", help="only rewrite the Markdown next to an existing JSON report")
    args = parser.parse_args(argv)
    if args.report:
        report = json.loads(Path(args.report).read_text())
        command = report.get("command") or f"python benchmarks/bench.py --preset {report['preset']['name']} --out {args.report}"
        Path(args.report).with_suffix(".md").write_text(markdown(report, command))
        print(f"wrote {Path(args.report).with_suffix('.md')}")
        return 0
    os.environ.setdefault("TQDM_DISABLE", "1")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    report = run_benchmark(PRESETS[args.preset], device, args.data_dir, args.seed, args.compile, args.encoder)
    print()
    print(summary(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        report["command"] = " ".join(["python benchmarks/bench.py", *(argv if argv is not None else sys.argv[1:])])
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        command = report["command"]
        Path(args.out).with_suffix(".md").write_text(markdown(report, command))
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
