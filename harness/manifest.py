"""manifest.json: what was run, where, on what, and how each cell ended (written last)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness import __version__
from harness.environment import git_info, machine_info, package_versions
from harness.io import write_json


def build_manifest(suite, run_id: str, datasets: dict, splits: dict, statuses: list[dict],
                   started: float, options: dict) -> dict:
    """The manifest dict; `datasets`/`splits` map labels to Dataset/Split objects. Candidates,
    code identities and thread settings come from the cells' status records, so the manifest is
    the same whether the cells ran now or were resumed."""
    candidates: dict = {}
    for s in statuses:
        candidates.update(s.get("candidates_record") or {})
    manifest = {
        "schema": 1,
        "harness_version": __version__,
        "suite": {"name": suite.name, "file": suite.file, "sha256": suite.sha256},
        "run_id": run_id,
        "command": sys.argv,
        "options": options,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "packages": _packages(statuses),
        "recommender_packages": _recommender_packages(statuses),
        "git": git_info(),
        "machine": machine_info(),
        "datasets": {k: {**d.summary(), "options": d.options} for k, d in datasets.items()},
        "splits": {f"{k[0]}/{k[1]}": {"dataset": k[0], "split": k[1], "protocol": s.protocol,
                       "params": s.params, "seed": s.seed, "fingerprint": s.fingerprint,
                       "content_sha256": s.content_hash(), "sizes": s.sizes(),
                       "notes": s.notes} for k, s in splits.items()},
        "seeds": list(suite.seeds),
        "evaluation": {"target": suite.target, "metrics": list(suite.metrics),
                       "ks": list(suite.ks), "primary": suite.primary},
        "candidates": candidates,
        "passes": sorted({p for s in statuses for p in s.get("passes", {})}),
        "cells": statuses,
        "n_cells": len(statuses),
        "n_failed": sum(s["status"] != "ok" for s in statuses),
        "n_failed_passes": sum(e.get("status") == "failed" for s in statuses
                               for e in s.get("passes", {}).values()),
        "complete": True,
    }
    from harness.passes import tables
    for table, p in tables().items():  # each pass's configuration, under its table name
        manifest[table] = (p.manifest_entry(suite.passes[table]) if table in suite.passes
                           else None)
    return manifest


def _packages(statuses: list[dict]) -> dict:
    """The core packages plus the distribution of every recommender run and the libraries the
    adapters wrap (implicit, cornac, recbole, ...)."""
    out = package_versions()
    for rec in _recommender_packages(statuses).values():
        if rec.get("distribution"):
            out.setdefault(rec["distribution"], rec.get("version"))
        for name, version in (rec.get("packages") or {}).items():
            out.setdefault(name, version)
    return out


def _recommender_packages(statuses: list[dict]) -> dict:
    """Recommender name -> {class, distribution, version, source_sha256} of every model run."""
    out = {}
    for s in statuses:
        rec = (s.get("code") or {}).get("recommender")
        if rec:
            out[s["recommender"]] = rec
    return out


def write_manifest(run_dir: Path, manifest: dict) -> None:
    write_json(Path(run_dir) / "manifest.json", manifest)
