"""CoNLL-2003 and SQuAD as ``datasets.DatasetDict`` objects, from local files, the hub or the tiny sample."""
from __future__ import annotations

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
"""IOB2 tags of CoNLL-2003 in the order the hub's ``ner_tags`` ClassLabel uses."""
