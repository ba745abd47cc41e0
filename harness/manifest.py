"""manifest.json: what was run, where, on what, and how each cell ended (written last)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness import __version__
from harness.environment import git_info, machine_info, package_versions
from harness.io import write_json


def build_manifest(suite, run_id: str, datasets: dict, splits: dict, statuses: list[dict],
                   started: float, options: dict, candidates: dict) -> dict:
    """The manifest dict; `datasets`/`splits` map labels to Dataset/Split objects."""
    return {
        "schema": 1,
        "harness_version": __version__,
        "suite": {"name": suite.name, "file": suite.file, "sha256": suite.sha256},
        "run_id": run_id,
        "command": sys.argv,
        "options": options,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "packages": package_versions(),
        "git": git_info(),
        "machine": machine_info(),
        "datasets": {k: {**d.summary(), "options": d.options} for k, d in datasets.items()},
        "splits": {f"{k[0]}/{k[1]}": {"dataset": k[0], "split": k[1], "protocol": s.protocol,
                       "params": s.params, "seed": s.seed, "fingerprint": s.fingerprint,
                       "content_sha256": s.content_hash(), "sizes": s.sizes(),
                       "notes": s.notes} for k, s in splits.items()},
        "seeds": list(suite.seeds),
        "evaluation": {"target": suite.target, "metrics": list(suite.metrics),
                       "ks": list(suite.ks)},
        "candidates": candidates,
        "efficiency": _efficiency(suite),
        "cells": statuses,
        "n_cells": len(statuses),
        "n_failed": sum(s["status"] != "ok" for s in statuses),
        "complete": True,
    }


def _efficiency(suite) -> dict | None:
    """The `[efficiency]` configuration and how it measures (results: cells[].efficiency)."""
    spec = getattr(suite, "efficiency", None)
    if spec is None:
        return None
    from harness.efficiency.clock import CLOCK
    from harness.efficiency.stats import FIXED, TAIL_SAMPLES
    return {"config": spec.to_dict(), "clock": CLOCK, "percentile": "nearest rank",
            "min_samples": {"fixed": {f"p{q:g}": n for q, n in FIXED.items()},
                            "other": f"ceil({TAIL_SAMPLES} / (1 - q/100))"}}


def write_manifest(run_dir: Path, manifest: dict) -> None:
    write_json(Path(run_dir) / "manifest.json", manifest)
