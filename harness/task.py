"""A cell as a self-contained task: a picklable description a fresh process can run.

One cell = (dataset, split, candidates, seed, recommender). The task names the suite (validated,
frozen), the four specs, the seed, the run directory and the cache directory; nothing else is
shared. `harness.cell.run_cell(task)` runs it anywhere (in-process, a worker process, a Ray task).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.names import file_part
from harness.options import FitOptions
from harness.suite import CandidateSpec, DatasetSpec, ModelSpec, SplitSpec, Suite


@dataclass(frozen=True)
class CellTask:
    suite: Suite
    dataset: DatasetSpec
    split: SplitSpec
    candidates: CandidateSpec
    model: ModelSpec
    seed: int
    run_id: str
    run_dir: str
    cache_dir: str
    options: FitOptions = FitOptions()
    save_runs: bool = False
    code: dict = field(default_factory=dict, compare=False)  # code identity (harness.identity)

    @property
    def key(self) -> str:
        """The cell's directory name (only [A-Za-z0-9_.@=+-], harness.names.file_part; labels
        are validated at load, and no two cells of a suite share a name)."""
        return file_part(f"{self.dataset.label}__{self.split.label}__{self.candidates.label}__"
                         f"{self.model.label}__s{self.seed}")

    @property
    def cell_dir(self) -> Path:
        return Path(self.run_dir) / "cells" / self.key
