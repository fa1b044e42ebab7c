"""Run by the tests under `torchrun --nproc_per_node 2` (the `run_ddp_worker` fixture): multi-task
steps on two CPU processes (gloo), then each process writes a checksum of its weights.

    ddp_worker.py OUT            6 steps; writes OUT/rank<r>.json
    ddp_worker.py OUT cut        the same run with a checkpoint every 2 steps, stopped during step 5
    ddp_worker.py OUT resume     goes on from that checkpoint; writes OUT/resume<r>.json
"""
import json
import sys

from nerqa_helpers.data import load_tiny
from nerqa_helpers.encoders import load_tokenizer
from nerqa_helpers.tasks import build_tasks
from nerqa_helpers.training import TrainingConfig, train

from conftest import make_tiny_model  # the tests' tiny BERT, in the conftest.py beside this file


class Stopped(Exception):
    """Stands for the job being killed in the middle of a step."""


def stop_in_step_5(step, task_losses, model):
    if step == 5:
        raise Stopped


out, mode = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
tokenizer = load_tokenizer()
model = make_tiny_model(tokenizer.vocab_size, seed=0)
tasks = build_tasks(tokenizer, load_tiny("ner"), load_tiny("qa"), qa_max_length=128, doc_stride=48)
config = TrainingConfig(output_dir=f"{out}/{'cut' if mode else 'run'}", max_steps=6, batch_size=4, cpu=True,
                        progress=False, learning_rate=1e-3, save_best=False, checkpoint_every=2 if mode else None)
try:
    result = train(model, tokenizer, tasks, config, step_hook=stop_in_step_5 if mode == "cut" else None,
                   resume_from=mode == "resume" or None)
except Stopped:
    sys.exit(0)
import torch.distributed as dist

rank = dist.get_rank() if dist.is_initialized() else 0
world = dist.get_world_size() if dist.is_initialized() else 1
checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
with open(f"{out}/{mode or 'rank'}{rank}.json", "w") as handle:
    json.dump({"rank": rank, "world": world, "checksum": checksum, "steps": result.metrics["steps"]}, handle)
