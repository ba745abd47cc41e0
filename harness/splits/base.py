"""The `Split` type: train/valid/test row indices of one dataset, with a fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from harness.types import Dataset, Interactions


def split_fingerprint(dataset_fp: str, protocol: str, params: dict, seed: int) -> str:
    """hash(dataset fingerprint, protocol, parameters, seed), 16 hex chars."""
    blob = json.dumps({"dataset": dataset_fp, "protocol": protocol, "params": params,
                       "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """Row indices into `dataset.interactions` for train/valid/test, plus protocol metadata.

    `eval_items[part]` optionally restricts the items ranked for that part (cold_items: the
    held-out items); `None` means every item.
    """

    dataset: Dataset
    protocol: str
    params: dict
    seed: int
    rows: dict[str, np.ndarray]
    eval_items: dict[str, np.ndarray | None] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return split_fingerprint(self.dataset.fingerprint, self.protocol, self.params, self.seed)

    def part(self, name: str) -> Interactions:
        """The `train`, `valid` or `test` interactions."""
        return self.dataset.interactions.subset(self.rows[name])

    @property
    def train(self) -> Interactions:
        return self.part("train")

    @property
    def valid(self) -> Interactions:
        return self.part("valid")

    @property
    def test(self) -> Interactions:
        return self.part("test")

    def content_hash(self) -> str:
        """sha256 over the row-index arrays and eval-item restrictions."""
        h = hashlib.sha256()
        for key in ("train", "valid", "test"):
            h.update(key.encode() + np.ascontiguousarray(self.rows[key], np.int64).tobytes())
            items = self.eval_items.get(key)
            h.update(b"all" if items is None else np.ascontiguousarray(items, np.int64).tobytes())
        return h.hexdigest()

    def sizes(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.rows.items()}
