"""The ground floor: names modules on every floor share, and nothing else (no torch, no datasets).

* ``NER_LABELS`` — the CoNLL-2003 IOB2 tag set, the default label names of data and model;
* :func:`jsonable` — any result dict made of plain JSON types, for ``json.dumps``.
"""
from __future__ import annotations

from typing import Mapping

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
"""IOB2 tags of CoNLL-2003 in the order the hub's ``ner_tags`` ClassLabel uses."""


def jsonable(value):
    """``value`` in plain JSON types: NumPy scalars become Python numbers, tuples lists, keys strings."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a NumPy (or torch) scalar
        return value.item()
    return value
