"""Named datasets: `ml-100k` (from the installed recbole wheel), `synthetic`, or any atomic dir."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.data.atomic import find_atomic_files, read_atomic, require_numbers
from harness.data.build import build_dataset
from harness.data.synthetic import synthetic_tables
from harness.errors import UserError, did_you_mean
from harness.types import Dataset

DATASETS = {
    "ml-100k": "MovieLens 100K, read from the installed recbole package (no download)",
    "synthetic": "seeded synthetic data with item text and user attributes (sized by parameters)",
}
LOAD_OPTIONS = {"min_rating", "kcore"}
SYNTHETIC_OPTIONS = {"n_users", "n_items", "n_interactions", "n_genres", "seed"}


def recbole_example_dir(name: str) -> Path:
    """Directory of a dataset shipped in recbole's `dataset_example` (without importing recbole)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise UserError(f"dataset '{name}' is read from the installed 'recbole' package, which is "
                        "not installed: pip install --no-deps recbole==1.2.1")
    return Path(spec.origin).parent / "dataset_example" / name


def load_atomic_dir(directory: Path, name: str | None = None, **options) -> Dataset:
    """Load a directory of RecBole atomic files (`.inter` + optional `.item`, `.user`)."""
    files = find_atomic_files(Path(directory))
    tables = {k: read_atomic(p) for k, p in files.items()}
    require_numbers(tables["inter"], ("rating", "timestamp"), files["inter"])
    return build_dataset(name or Path(directory).name, tables["inter"], tables.get("item"),
                         tables.get("user"), min_rating=options.get("min_rating"),
                         kcore_k=options.get("kcore", 0) or 0, source=str(files["inter"]))


def load_dataset(name: str | None = None, path: str | None = None, **options) -> Dataset:
    """Resolve a dataset by registry name or by a path to an atomic-files directory."""
    if path is not None:
        return load_atomic_dir(Path(path), name, **options)
    if name == "ml-100k":
        return load_atomic_dir(recbole_example_dir("ml-100k"), "ml-100k", **options)
    if name == "synthetic":
        synth = {k: v for k, v in options.items() if k in SYNTHETIC_OPTIONS}
        try:
            inter, items, users = synthetic_tables(**synth)
        except ValueError as exc:
            raise UserError(f"dataset 'synthetic': {exc}") from exc
        return build_dataset("synthetic", inter, items, users,
                             min_rating=options.get("min_rating"),
                             kcore_k=options.get("kcore", 0) or 0, source="synthetic")
    candidate = Path(str(name))
    if candidate.is_dir():
        return load_atomic_dir(candidate, None, **options)
    raise UserError(f"unknown dataset '{name}'{did_you_mean(str(name), DATASETS)}"
                    " (or give a path to a directory of RecBole atomic files)")
