"""Run by tests/test_training.py under `torchrun --nproc_per_node 2`: a few multi-task steps on
two CPU processes (gloo), then each process writes a checksum of its weights."""
import json
import sys

import torch

from nerqa_helpers.data import load_tiny
from nerqa_helpers.encoders import load_tokenizer
from nerqa_helpers.tasks import build_tasks
from nerqa_helpers.training import TrainingConfig, train

from conftest import make_tiny_model  # the tests' tiny BERT, in the conftest.py beside this file

out = sys.argv[1]
tokenizer = load_tokenizer()
model = make_tiny_model(tokenizer.vocab_size, seed=0)
tasks = build_tasks(tokenizer, load_tiny("ner"), load_tiny("qa"), qa_max_length=128, doc_stride=48)
config = TrainingConfig(output_dir=f"{out}/run", max_steps=6, batch_size=4, cpu=True, progress=False,
                        learning_rate=1e-3, save_best=False)
result = train(model, tokenizer, tasks, config)
import torch.distributed as dist

rank = dist.get_rank() if dist.is_initialized() else 0
world = dist.get_world_size() if dist.is_initialized() else 1
checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
with open(f"{out}/rank{rank}.json", "w") as handle:
    json.dump({"rank": rank, "world": world, "checksum": checksum, "steps": result.metrics["steps"]}, handle)
