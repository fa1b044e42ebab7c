"""Extensions of the multi-task model: loss balancing, soft sharing, LoRA adapters."""
