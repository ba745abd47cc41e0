"""Read finished run directories and merge them into one metrics / per-user pair.

A run directory is finished when its `manifest.json` exists (the runner writes it last). Each
metrics row is tagged with what decides which rows may be compared (see `TABLE_KEY`):

- `target`: valid or test (from the manifest's `evaluation.target`);
- `candidates_def`: the candidate protocol's definition, ``protocol(param=value, ...)`` from the
  manifest's `candidates` records, matched to the cell by its candidate fingerprint. Two runs
  that use the same protocol label with different parameters thus never share a table.

Per-user rows get the same tags through their cell (cell keys are unique within a run, not
across runs: two runs with different split fingerprints share cell names).

Merging (several machines, or shards of one suite): rows are identified by the table key plus
``(cell, pass, metric, k, slice, perturbation)``; the same row from two directories must be
identical (value and n_users) and is kept once, anything else is a `UserError` naming both
directories. A model label must have one definition (recommender and parameters, from the
manifest's cells) within a table. Per-user rows are checked the same way on the table key plus
``(cell, user, metric, k, perturbation)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import UserError
from harness.results import METRIC_COLUMNS, PER_USER_COLUMNS

TABLE_KEY = ["dataset", "split_fingerprint", "target", "protocol", "candidates_def"]
ROW_ID = TABLE_KEY + ["cell", "pass", "metric", "k", "slice", "perturbation"]
USER_ID = TABLE_KEY + ["cell", "user", "metric", "k", "perturbation"]


@dataclass
class RunData:
    """One finished run directory: its manifest, metrics (tagged) and per-user values."""

    path: Path
    manifest: dict
    metrics: pd.DataFrame
    per_user: pd.DataFrame


def _finished_children(path: Path) -> list[str]:
    if not path.is_dir():
        return []
    return sorted(str(p.parent) for p in path.glob("*/manifest.json"))


def load_run(path: Path) -> RunData:
    """Read and validate one run directory (UserError when missing, unfinished or malformed)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run directory not found: {path}")
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        children = _finished_children(path)
        hint = (f"; finished runs below it: {', '.join(children)}" if children else
                " (the run was interrupted or is still running; re-run `harness run` to "
                "finish it)")
        raise UserError(f"{path} is not a finished run: it has no manifest.json{hint}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not manifest.get("complete", False):
        raise UserError(f"{manifest_path}: the manifest is not marked complete")
    metrics = _read_table(path, "metrics", METRIC_COLUMNS)
    per_user = (_read_table(path, "per_user", PER_USER_COLUMNS)
                if (path / "per_user.parquet").exists()
                else pd.DataFrame(columns=PER_USER_COLUMNS))
    metrics = _tag(metrics, manifest, path)
    return RunData(path, manifest, metrics, _tag_users(per_user, metrics))


def _read_table(path: Path, name: str, columns: list[str]) -> pd.DataFrame:
    parquet, csv = path / f"{name}.parquet", path / f"{name}.csv"
    try:
        df = pd.read_parquet(parquet) if parquet.exists() else pd.read_csv(csv)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no {name}.parquet or {name}.csv") from exc
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        raise UserError(f"{path}: cannot read {name} ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"{path}/{name}: missing columns {', '.join(missing)}")
    df = df[columns].copy()
    text = {"cell", "user", "metric", "perturbation", "slice", "pass", "model", "protocol",
            "dataset", "split", "split_fingerprint"}
    for col in text.intersection(columns):
        df[col] = df[col].astype(str)
    return df


def candidates_definition(record: dict | None, label: str) -> str:
    """``protocol(key=value, ...)`` of a manifest candidates record (label if unknown)."""
    if not record:
        return label
    params = ", ".join(f"{k}={v}" for k, v in sorted((record.get("params") or {}).items())
                       if v is not None)
    return f"{record.get('protocol', label)}({params})"


def _tag(metrics: pd.DataFrame, manifest: dict, path: Path) -> pd.DataFrame:
    by_fp = {r.get("fingerprint"): r for r in (manifest.get("candidates") or {}).values()}
    cell_fp = {c["cell"]: c.get("candidates_fingerprint") for c in manifest.get("cells", [])}
    m = metrics.copy()
    m["target"] = str((manifest.get("evaluation") or {}).get("target", "test"))
    m["candidates_def"] = [candidates_definition(by_fp.get(cell_fp.get(c)), p)
                           for c, p in zip(m["cell"], m["protocol"])]
    defs = {c["cell"]: json.dumps({"recommender": c.get("recommender"),
                                   "params": c.get("params")}, sort_keys=True, default=str)
            for c in manifest.get("cells", [])}
    m["model_def"] = m["cell"].map(defs).fillna("")
    m["source"] = str(path)
    return m


def check_models(metrics: pd.DataFrame) -> None:
    """A model label must mean one recommender and parameters within a table (it may differ
    between tables): otherwise shards of differently configured models would be averaged."""
    n = metrics.groupby(TABLE_KEY + ["model"])["model_def"].nunique()
    if (n > 1).any():
        key = n[n > 1].index[0]
        sel = metrics
        for f, v in zip(TABLE_KEY + ["model"], key):
            sel = sel[sel[f] == v]
        defs = "; ".join(f"{src}: {d}" for src, d in
                         sel[["source", "model_def"]].drop_duplicates().itertuples(index=False))
        raise UserError(f"model '{key[-1]}' is defined differently in runs that share a table "
                        f"({key[0]}, split {key[1]}, candidates {key[3]}): {defs}; give the "
                        "variants distinct labels")


def _tag_users(per_user: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    info = metrics.drop_duplicates("cell")[["cell"] + TABLE_KEY]
    pu = per_user.merge(info, on="cell", how="inner")
    pu["source"] = metrics["source"].iloc[0] if len(metrics) else ""
    return pu


def _dedupe(df: pd.DataFrame, ident: list[str], compare: list[str], what: str) -> pd.DataFrame:
    dup = df.duplicated(ident, keep=False)
    if not dup.any():
        return df
    d = df[dup]
    n_variants = d.drop_duplicates(ident + compare).groupby(ident, sort=False).size()
    bad = n_variants[n_variants > 1]
    if len(bad):
        key = bad.index[0]
        rows = d.set_index(ident).loc[[key]]
        detail = "; ".join(f"{r['source']}: " + ", ".join(f"{c}={r[c]}" for c in compare)
                           for _, r in rows.reset_index().iterrows())
        shown = ", ".join(f"{f}={v}" for f, v in zip(ident, key))
        raise UserError(f"conflicting duplicate {what} row across run directories "
                        f"({len(bad)} in all; the same row must be identical to be merged), "
                        f"first ({shown}): {detail}")
    return df.drop_duplicates(ident, keep="first")


def merge_runs(runs: list[RunData]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenate runs; identical duplicated rows are kept once, differing ones are errors."""
    if not runs:
        raise UserError("no run directories given")
    metrics = pd.concat([r.metrics for r in runs], ignore_index=True)
    per_user = pd.concat([r.per_user for r in runs], ignore_index=True)
    metrics = _dedupe(metrics, ROW_ID, ["value", "n_users", "model", "seed"], "metrics")
    check_models(metrics)
    if len(runs) > 1 and len(per_user):
        per_user = _dedupe(per_user, USER_ID, ["value"], "per-user")
    return metrics.reset_index(drop=True), per_user.reset_index(drop=True)


def load_runs(paths: list[Path]) -> tuple[list[RunData], pd.DataFrame, pd.DataFrame]:
    """Load every directory (all errors are about the first bad one) and merge them."""
    seen, runs = set(), []
    for p in paths:
        key = Path(p).resolve()
        if key not in seen:
            seen.add(key)
            runs.append(load_run(Path(p)))
    metrics, per_user = merge_runs(runs)
    return runs, metrics, per_user
