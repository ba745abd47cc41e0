"""The files a cell task names, loaded and memoized: datasets, splits (verified split cache),
candidate sets (verified candidate cache, rerank first stages in the run directory).

A fresh process builds its own `Workspace` from the task; the in-process runner shares one
across cells so that each dataset and split is loaded once.
"""

from __future__ import annotations

from pathlib import Path

from harness.candidate_store import CandidateStore
from harness.data import load_dataset
from harness.options import FitOptions
from harness.splits import get_split
from harness.suite import DatasetSpec, SplitSpec, Suite


class Workspace:
    def __init__(self, suite: Suite, cache_dir: str | Path, run_dir: str | Path):
        self.suite = suite
        self.cache_dir = Path(cache_dir)
        self.run_dir = Path(run_dir)
        self.datasets: dict = {}
        self.splits: dict = {}
        self.store = CandidateStore(suite, self.cache_dir / "candidates", self.run_dir)

    def dataset(self, spec: DatasetSpec):
        if spec.label not in self.datasets:
            self.datasets[spec.label] = load_dataset(spec.name, spec.path, **spec.options)
        return self.datasets[spec.label]

    def split(self, dspec: DatasetSpec, sspec: SplitSpec):
        key = (dspec.label, sspec.label)
        if key not in self.splits:
            self.splits[key] = get_split(self.dataset(dspec), sspec.protocol, sspec.params,
                                         sspec.seed, self.cache_dir / "splits")
        return self.splits[key]

    def candidates(self, task, split, options: FitOptions | None = None):
        """The task's candidates and their manifest record ({key: record})."""
        cand = self.store.get(task.dataset.label, task.split.label, split, task.candidates,
                              task.seed, options or task.options)
        return cand, self.store.record_of(task.dataset.label, task.split.label,
                                          task.candidates, task.seed)
