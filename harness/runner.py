"""Run a suite: resolve datasets and splits, run every cell (resuming finished ones), write results."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from harness import __version__
from harness.cell import cell_status, run_logger
from harness.errors import SuiteError, UserError, did_you_mean
from harness.executors import pick
from harness.executors.config import ExecutionSpec
from harness.executors.schedule import Scheduler
from harness import identity
from harness.identity import cell_identity, changes
from harness.manifest import build_manifest, write_manifest
from harness.names import dir_name_problem
from harness.options import FitOptions
from harness.progress import bar
from harness.results import consolidate, write_leaderboard
from harness.suite import Suite
from harness.task import CellTask
from harness.trec import write_qrels, write_run
from harness.workspace import Workspace


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


def select(suite: Suite, models: list[str] | None, seeds: list[int] | None, run_id: str = "",
           run_dir: Path = Path("."), cache_dir: Path = Path("."),
           options: FitOptions = FitOptions(), save_runs: bool = False) -> list[CellTask]:
    """The cell tasks to run, after --models / --seeds filters (unknown model labels are
    errors)."""
    labels = [m.label for m in suite.models]
    for name in models or []:
        if name not in labels:
            raise UserError(f"--models: '{name}' is not a model of suite '{suite.name}'"
                            f"{did_you_mean(name, labels)}")
    chosen = [m for m in suite.models if not models or m.label in models]
    return [CellTask(suite, d, s, c, m, seed, run_id, str(run_dir), str(cache_dir), options,
                     save_runs, cell_identity(m.name))
            for d in suite.datasets for s in suite.splits for c in suite.candidates
            for seed in (seeds or suite.seeds) for m in chosen if c.applies_to(m.label)]


def preflight(suite: Suite, datasets: dict) -> None:
    """Checks that need the loaded datasets, before anything is written: each pass's own,
    recommenders that declare `needs_timestamps` on datasets without timestamps, and models
    whose `scale_problem(n_users, n_items, n_interactions)` says the data is too large."""
    from harness import registry
    from harness.passes import tables
    from harness.dataset_checks import check_datasets
    check_datasets(suite, datasets)  # k, sampled / rerank sizes within catalogs; timestamps
    for table, p in tables().items():
        if table in suite.passes:
            p.preflight(suite.passes[table], suite, datasets, suite.file)
    for i, m in enumerate(suite.models):
        cls = registry.resolve(m.name)  # a family decides per variant (recbole:SASRec)
        if getattr(cls, "needs_timestamps", False) or getattr(
                registry.build(m.name, m.params, 0), "needs_timestamps", False):
            for label, ds in datasets.items():
                if ds.interactions.timestamp is None:
                    raise SuiteError(suite.file, f"models[{i}].name",
                                     f"'{m.name}' scores from a time-ordered history, but "
                                     f"dataset '{label}' has no timestamps")
    for i, m in enumerate(suite.models):  # models that cannot scale refuse before the run
        if hasattr(registry.resolve(m.name), "scale_problem"):
            model = registry.build(m.name, m.params, 0)
            for label, ds in datasets.items():
                problem = model.scale_problem(ds.n_users, ds.n_items, len(ds.interactions))
                if problem:
                    raise SuiteError(suite.file, f"models[{i}]",
                                     f"'{m.label}' on dataset '{label}': {problem}")


def _resumable(task: CellTask, prior: dict | None, log) -> bool:
    """A finished cell is reused when it succeeded with the same code (and has its top-k file
    when --save-runs asks for TREC files)."""
    if not prior or prior["status"] != "ok":
        return False
    if task.save_runs and not (task.cell_dir / "top.npz").exists():
        return False
    diff = changes(prior.get("code"), task.code)
    if diff:
        log.info("cell %s recomputed: code changed (%s)", task.key, "; ".join(diff))
        return False
    return True


def run_suite(suite: Suite, out: Path = Path("results"), models: list[str] | None = None,
              seeds: list[int] | None = None, save_runs: bool = False, quiet: bool = False,
              run_id: str | None = None, cache_dir: Path | None = None,
              use_cache: bool = True, executor: str = "local", workers: int = 1,
              address: str | None = None) -> RunResult:
    """Run (or resume) a suite into out/<suite>/<run-id>/ and return the consolidated result.
    `executor`/`workers`/`address`: where cells run (harness.executors.pick); the results are
    the same whichever ran them."""
    started = time.time()
    identity.clear()
    cache_dir = Path(cache_dir) if cache_dir else Path(out) / ".cache"
    if run_id is not None and dir_name_problem(run_id):
        raise UserError(f"run id: {dir_name_problem(run_id)}")
    run_dir = Path(out) / suite.name / (run_id or default_run_id(suite))
    options = FitOptions(cache_dir=cache_dir / "embeddings", use_cache=use_cache, quiet=quiet,
                         target=suite.target)
    tasks = select(suite, models, seeds, run_dir.name, run_dir, cache_dir, options, save_runs)
    # Bad input must fail before anything is written: load data and splits first, and reach
    # a named Ray cluster (an unreachable address is an error within a bounded time).
    ws = Workspace(suite, cache_dir, run_dir)
    ex, note = pick(executor, workers, address, suite, ws)
    try:
        if address is not None:
            ex.start()
        datasets = {d.label: ws.dataset(d) for d in suite.datasets}
        preflight(suite, datasets)
        splits = {(d.label, s.label): ws.split(d, s) for d in suite.datasets
                  for s in suite.splits}
        if address is None:
            ex.start()
        check = getattr(ex, "check", None)
        if check is not None:
            spec = suite.execution or ExecutionSpec()
            check([(m.label, spec.for_model(m.label)) for m in suite.models])
        (run_dir / "cells").mkdir(parents=True, exist_ok=True)
        (run_dir / "manifest.json").unlink(missing_ok=True)  # in progress: no manifest yet
        log = run_logger(run_dir)
        if note:
            log.info(note)
        statuses = _run_cells(tasks, ex, run_dir, log, suite.name, quiet)
        execution = {**ex.info(), "note": note or None,
                     "spec": (suite.execution or ExecutionSpec()).to_dict()}
    finally:
        ex.close()
    ok = [s["cell"] for s in statuses if s["status"] == "ok"]
    metrics, _ = consolidate(run_dir, ok)
    if save_runs:
        _write_trec(run_dir, suite, tasks, ws, ok)
    failed = [s for s in statuses if s["status"] != "ok"]
    board = write_leaderboard(run_dir, metrics, list(suite.metrics), failed, statuses)
    manifest = build_manifest(suite, run_dir.name, datasets, splits, statuses, started,
                              {"models": models, "seeds": seeds, "save_runs": save_runs,
                               "use_cache": use_cache, "cache_dir": str(cache_dir)})
    manifest["execution"] = execution
    write_manifest(run_dir, manifest)
    return RunResult(run_dir, manifest, board, metrics)


def _run_cells(tasks: list[CellTask], ex, run_dir: Path, log, name: str, quiet: bool
               ) -> list[dict]:
    """Every cell's status in task order: finished cells resumed from disk, the others run on
    the executor (the driver writes what the workers return)."""
    found: dict[str, dict] = {}
    todo = []
    for task in tasks:
        prior = cell_status(task.cell_dir)
        if _resumable(task, prior, log):
            found[task.key] = {**prior, "resumed": True}
        else:
            todo.append(task)
    with bar(len(tasks), f"{name}", quiet, leave=True, unit="cell") as pb:
        pb.update(len(found))

        def done(status: dict) -> None:
            found[status["cell"]] = status
            pb.update(1)
        Scheduler(ex, run_dir, log, done, pb).run(todo)
    return [found[t.key] for t in tasks]


def _write_trec(run_dir, suite, tasks, ws, ok) -> None:
    import numpy as np

    from harness.names import file_part
    runs = run_dir / "runs"
    written: set = set()
    for task in tasks:
        if task.key in ok:
            split = ws.split(task.dataset, task.split)
            cand, _ = ws.candidates(task, split)
            ds = split.dataset
            qrels = runs / file_part(f"{task.dataset.label}__{task.split.label}__"
                                     f"{task.candidates.label}__{suite.target}.qrels")
            if qrels not in written:
                write_qrels(qrels, cand.truth, cand.users, ds.user_ids, ds.item_ids)
                written.add(qrels)
            top = np.load(task.cell_dir / "top.npz")
            write_run(runs / f"{task.key}.run", top["users"], top["items"], top["scores"],
                      ds.user_ids, ds.item_ids, task.model.label)
