"""Executors benchmark: cells/s of a suite in-process, in 1 and 2 local worker processes and as
Ray tasks on a locally started Ray, and the per-cell overhead of each executor.

    python benchmarks/executors.py                        # suites/ml100k-classic.toml
    python benchmarks/executors.py --suite suites/quick.toml --skip-ray

Every run uses a fresh run directory (nothing resumed) and one shared split cache (warmed before
the timed runs). Wall times include starting the workers (and Ray); the Ray start itself is
timed on its own as well. The per-cell overhead is the marginal cost of a cell of the `null`
model on a tiny synthetic dataset, run one at a time (in-process, 1 worker process, Ray with 1
CPU): (wall of 2N cells - wall of N cells) / N, minus the in-process figure. Ratios are against
the in-process run of the same invocation; timings on a shared machine are noisy, and the
metrics of every run are checked to be identical to the in-process run's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.runner import run_suite  # noqa: E402
from harness.suite import load_suite, parse_suite  # noqa: E402

CONFIGS = [("in-process", {}), ("1 worker process", {"workers": 1, "force_process": True}),
           ("2 worker processes", {"workers": 2}), ("ray, 2 CPUs", {"executor": "ray",
                                                                      "workers": 2})]


def _run(suite, root: Path, cache: Path, name: str, kwargs: dict) -> tuple[float, object]:
    kwargs = dict(kwargs)
    force = kwargs.pop("force_process", False)
    if force:  # one worker process: what the default executor does when time limits are set
        import dataclasses

        from harness.executors.config import CellResources, ExecutionSpec
        huge = CellResources(timeout_s=1e9)
        suite = dataclasses.replace(suite, execution=ExecutionSpec(huge))
    t0 = time.perf_counter()
    res = run_suite(suite, root / name.replace(" ", "-").replace(",", ""), quiet=True,
                    cache_dir=cache, run_id="bench", **kwargs)
    return time.perf_counter() - t0, res


def _ray_start_s() -> float | None:
    try:
        from harness.executors.ray_executor import RayExecutor
    except ImportError:
        return None
    ex = RayExecutor(None, 2)
    t0 = time.perf_counter()
    ex.start()
    started = time.perf_counter() - t0
    ex.close()
    return started


def _null_suite(cells: int):
    """`cells` cells (seeds) of the null model on a tiny synthetic dataset: the cell's own work
    is a few milliseconds, so what a cell costs beyond that is the executor's overhead."""
    from harness.suite import parse_suite
    return parse_suite({"suite": {"name": "overhead", "seeds": list(range(cells))},
                        "datasets": [{"name": "synthetic", "n_users": 50, "n_items": 30,
                                      "n_interactions": 400}],
                        "splits": [{"protocol": "random_holdout"}],
                        "models": [{"name": "null"}]}, "<overhead>")


OVERHEAD = [("in-process", {}), ("1 worker process", {"workers": 1, "force_process": True}),
            ("ray, 1 CPU", {"executor": "ray", "workers": 1})]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="suites/ml100k-classic.toml")
    ap.add_argument("--overhead-cells", type=int, default=20)
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    suite = load_suite(args.suite)
    configs = [c for c in CONFIGS if not (args.skip_ray and "ray" in c[0])]
    print(f"machine: {os.cpu_count()} cores (shared with other jobs: timings are noisy); "
          f"torch threads in-process {torch.get_num_threads()}, in each of N worker processes "
          f"cores // N, in a Ray task its num_cpus (1)")
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp:
        root, cache = Path(tmp), Path(tmp) / "cache"
        run_suite(suite, root / "warm", quiet=True, cache_dir=cache, models=[suite.models[0].label])
        rows, ref = [], None
        for name, kwargs in configs:
            wall, res = _run(suite, root, cache, name, kwargs)
            n = res.manifest["n_cells"]
            metrics = res.metrics.drop(columns=["run_id"]).reset_index(drop=True)
            same = True if ref is None else metrics.equals(ref[1])
            ref = ref or (wall, metrics)
            rows.append({"executor": name, "cells": n, "failed": res.manifest["n_failed"],
                         "wall_s": round(wall, 1), "cells_per_s": round(n / wall, 3),
                         "speed_vs_in_process": round(ref[0] / wall, 2),
                         "metrics_identical": same})
        print(f"\n{suite.name}: {rows[0]['cells']} cells")
        print(pd.DataFrame(rows).to_string(index=False))
        ray_start = None if args.skip_ray else _ray_start_s()
        n, over, base = args.overhead_cells, [], None
        for name, kwargs in [c for c in OVERHEAD if not (args.skip_ray and "ray" in c[0])]:
            w1, _ = _run(_null_suite(n), root / "null1", cache, name, kwargs)
            w2, _ = _run(_null_suite(2 * n), root / "null2", cache, name, kwargs)
            per_cell = (w2 - w1) / n  # the startups cancel out
            base = per_cell if base is None else base
            over.append({"executor": name, f"wall_{n}_cells_s": round(w1, 2),
                         f"wall_{2 * n}_cells_s": round(w2, 2),
                         "per_cell_ms": round(1000 * per_cell, 1),
                         "overhead_vs_in_process_ms": round(1000 * (per_cell - base), 1)})
        print(f"\nmarginal cost of a cell, one cell at a time (null model on 50 users x 30 "
              f"items; (wall of {2 * n} cells - wall of {n}) / {n}, so startups cancel; a "
              f"local Ray start alone took {'-' if ray_start is None else f'{ray_start:.1f} s'})")
        print(pd.DataFrame(over).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
