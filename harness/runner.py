"""Run a suite: resolve datasets and splits, run every cell (resuming finished ones), write results."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from harness import __version__
from harness.candidate_store import CandidateStore
from harness.cell import Cell, cell_status, run_cell
from harness.data import load_dataset
from harness.errors import UserError, did_you_mean
from harness.manifest import build_manifest, write_manifest
from harness.progress import bar
from harness.results import consolidate, write_leaderboard
from harness.splits import get_split
from harness.suite import Suite
from harness.trec import write_qrels, write_run


@dataclass
class RunResult:
    run_dir: Path
    manifest: dict
    leaderboard: str
    metrics: object

    @property
    def failed(self) -> list[dict]:
        return [c for c in self.manifest["cells"] if c["status"] != "ok"]


def default_run_id(suite: Suite) -> str:
    """Deterministic per suite content and harness version, so re-running resumes."""
    return hashlib.sha256(f"{suite.sha256}:{__version__}".encode()).hexdigest()[:12]


def select(suite: Suite, models: list[str] | None, seeds: list[int] | None) -> list[Cell]:
    """The cells to run, after --models / --seeds filters (unknown model labels are errors)."""
    labels = [m.label for m in suite.models]
    for name in models or []:
        if name not in labels:
            raise UserError(f"--models: '{name}' is not a model of suite '{suite.name}'"
                            f"{did_you_mean(name, labels)}")
    chosen = [m for m in suite.models if not models or m.label in models]
    return [Cell(d.label, s.label, c.label, m, seed) for d in suite.datasets
            for s in suite.splits for c in suite.candidates
            for seed in (seeds or suite.seeds) for m in chosen if c.applies_to(m.label)]


def _logger(run_dir: Path) -> logging.Logger:
    log = logging.getLogger(f"harness.run.{run_dir}")
    log.propagate = False
    if not log.handlers:
        h = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
    return log


def run_suite(suite: Suite, out: Path = Path("results"), models: list[str] | None = None,
              seeds: list[int] | None = None, save_runs: bool = False, quiet: bool = False,
              run_id: str | None = None, cache_dir: Path | None = None,
              use_cache: bool = True) -> RunResult:
    """Run (or resume) a suite into out/<suite>/<run-id>/ and return the consolidated result."""
    started = time.time()
    cells = select(suite, models, seeds)
    # Bad input must fail before anything is written: load data and splits first.
    datasets = {d.label: load_dataset(d.name, d.path, **d.options) for d in suite.datasets}
    cache_dir = Path(cache_dir) if cache_dir else Path(out) / ".cache"
    splits = {(d, s.label): get_split(datasets[d], s.protocol, s.params, s.seed,
                                      cache_dir / "splits")
              for d in datasets for s in suite.splits}
    run_dir = Path(out) / suite.name / (run_id or default_run_id(suite))
    (run_dir / "cells").mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").unlink(missing_ok=True)  # in progress: no complete manifest
    log = _logger(run_dir)
    store = CandidateStore(suite, cache_dir / "candidates", run_dir)
    specs = {c.label: c for c in suite.candidates}
    statuses = []
    with bar(len(cells), f"{suite.name}", quiet, leave=True, unit="cell") as pb:
        for cell in cells:
            cell_dir = run_dir / "cells" / cell.key
            prior = cell_status(cell_dir)
            if prior and prior["status"] == "ok" and (not save_runs
                                                       or (cell_dir / "top.npz").exists()):
                statuses.append({**prior, "resumed": True})
                pb.update(1)
                continue
            cell_dir.mkdir(parents=True, exist_ok=True)
            pb.set_postfix_str(cell.key)
            key = (cell.dataset, cell.split)
            get = (lambda c=cell, k=key: store.get(c.dataset, c.split, splits[k],
                                                   specs[c.candidates], c.seed))
            st = run_cell(cell, suite, run_dir.name, splits[key], get, cell_dir, quiet,
                          save_runs, log, {"cache_dir": cache_dir / "embeddings",
                                           "use_cache": use_cache, "quiet": quiet})
            log.info("cell %s %s in %.2fs", cell.key, st["status"], st["duration_s"])
            statuses.append(st)
            pb.update(1)
    ok = [s["cell"] for s in statuses if s["status"] == "ok"]
    metrics, _ = consolidate(run_dir, ok)
    if save_runs:
        _write_trec(run_dir, suite, cells, splits, store, specs, ok)
    failed = [s for s in statuses if s["status"] != "ok"]
    board = write_leaderboard(run_dir, metrics, list(suite.metrics), failed, statuses)
    manifest = build_manifest(suite, run_dir.name, datasets, splits, statuses, started,
                              {"models": models, "seeds": seeds, "save_runs": save_runs,
                               "use_cache": use_cache,
                               "cache_dir": str(cache_dir)}, store.records)
    write_manifest(run_dir, manifest)
    return RunResult(run_dir, manifest, board, metrics)


def _write_trec(run_dir, suite, cells, splits, store, specs, ok) -> None:
    import numpy as np
    runs = run_dir / "runs"
    written: set = set()
    for cell in cells:
        if cell.key in ok:
            key = (cell.dataset, cell.split)
            cand = store.get(cell.dataset, cell.split, splits[key], specs[cell.candidates],
                             cell.seed)
            ds = splits[key].dataset
            qrels = runs / f"{cell.dataset}__{cell.split}__{cell.candidates}__{suite.target}.qrels"
            if qrels not in written:
                write_qrels(qrels, cand.truth, cand.users, ds.user_ids, ds.item_ids)
                written.add(qrels)
            top = np.load(run_dir / "cells" / cell.key / "top.npz")
            ds = splits[(cell.dataset, cell.split)].dataset
            write_run(runs / f"{cell.key}.run", top["users"], top["items"], top["scores"],
                      ds.user_ids, ds.item_ids, cell.model.label)
