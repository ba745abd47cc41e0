"""Reader for RecBole atomic files (`.inter`, `.item`, `.user`: tab-separated, `name:type` header)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import UserError

FIELD_TYPES = {"token", "token_seq", "float", "float_seq"}


def read_atomic(path: Path) -> pd.DataFrame:
    """One atomic file as a DataFrame; columns renamed to bare names, typed by the header."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    names, types = [], {}
    for col in header:
        name, _, ftype = col.partition(":")
        if ftype not in FIELD_TYPES:
            raise UserError(f"{path}: column '{col}' has type '{ftype}'; expected one of "
                            f"{sorted(FIELD_TYPES)}")
        names.append(name)
        types[name] = ftype
    df = pd.read_csv(path, sep="\t", header=0, names=names, dtype=str, keep_default_na=False,
                     quoting=3, engine="c")
    for name, ftype in types.items():
        if ftype == "float":
            df[name] = pd.to_numeric(df[name].replace("", np.nan), errors="coerce")
    df.attrs["field_types"] = types
    return df


def find_atomic_files(directory: Path) -> dict[str, Path]:
    """Map 'inter'/'item'/'user' to files in `directory` (one `.inter` is required)."""
    if not directory.is_dir():
        raise UserError(f"dataset path '{directory}' does not exist or is not a directory")
    found: dict[str, Path] = {}
    for suffix in ("inter", "item", "user"):
        files = sorted(directory.glob(f"*.{suffix}"))
        if len(files) > 1:
            raise UserError(f"{directory}: several .{suffix} files: {[f.name for f in files]}")
        if files:
            found[suffix] = files[0]
    if "inter" not in found:
        raise UserError(f"{directory}: no .inter file (RecBole atomic format expected)")
    return found
