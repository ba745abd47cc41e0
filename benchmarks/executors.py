"""Executors benchmark: cells/s of a suite in-process, in 1 and 2 local worker processes and as
Ray tasks on a locally started Ray, and the per-cell overhead of each executor.

    python benchmarks/executors.py                        # suites/ml100k-classic.toml
    python benchmarks/executors.py --suite suites/quick.toml --skip-ray

Every run uses a fresh run directory (nothing resumed) and one shared split cache (warmed before
the timed runs). Wall times include starting the workers (and Ray); the Ray start itself is
timed on its own as well. The per-cell overhead comes from a suite of `--overhead-cells` cells of
the `null` model on the same data (fit and scoring cost next to nothing there): (wall of the
executor - wall in-process) / cells, with the Ray start taken out. Ratios are against the
in-process run of the same invocation; timings on a shared machine are noisy, and the metrics of
every run are checked to be identical to the in-process run's.
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


def _import_s() -> float:
    """Seconds a fresh interpreter takes to import what a worker process imports first."""
    import subprocess
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, pandas, harness.cell, "
                    "harness.executors.worker"], check=True)
    return time.perf_counter() - t0


def _null_suite(suite, cells: int):
    raw = dict(suite.raw)
    raw["suite"] = {**raw["suite"], "name": "overhead", "seeds": list(range(cells))}
    raw["models"] = [{"name": "null"}]
    raw.pop("execution", None)
    return parse_suite(raw, "<overhead>")


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
        run_suite(_null_suite(suite, 1), root / "warm", quiet=True, cache_dir=cache)
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
        imports = _import_s()
        null = _null_suite(suite, args.overhead_cells)
        over = []
        base = None
        for name, kwargs in configs:
            wall, res = _run(null, root / "null", cache, name, kwargs)
            start = ((ray_start or 0.0) if "ray" in name
                     else imports if "process" in name else 0.0)
            base = base if base is not None else wall
            over.append({"executor": name, "cells": res.manifest["n_cells"],
                         "wall_s": round(wall, 2), "startup_s": round(start, 2),
                         "overhead_per_cell_ms": round(1000 * (wall - start - base)
                                                       / res.manifest["n_cells"], 1)})
        print(f"\nper-cell overhead ({args.overhead_cells} cells of the null model; "
              f"in-process = 0 by definition; startup taken out: Ray start measured alone "
              f"{'-' if ray_start is None else f'{ray_start:.1f} s'}, worker imports measured "
              f"in a fresh interpreter {imports:.1f} s)")
        print(pd.DataFrame(over).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
