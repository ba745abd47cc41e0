"""Reader for RecBole atomic files (`.inter`, `.item`, `.user`: tab-separated, `name:type` header)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import UserError

FIELD_TYPES = {"token", "token_seq", "float", "float_seq"}


def _text(path: Path) -> str:
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start}); atomic files are UTF-8, tab-separated") from exc


def data_lines(text: str) -> list[int]:
    """1-based file line of each data row (blank lines are skipped, as the reader does)."""
    return [no for no, line in enumerate(text.split("\n")[1:], start=2) if line.strip("\r")]


def read_atomic(path: Path) -> pd.DataFrame:
    """One atomic file as a DataFrame; columns renamed to bare names, typed by the header.
    UserError (file and line) for text that is not UTF-8, an unknown field type, a duplicate
    column, a row whose number of fields differs from the header's, or a value of a `float`
    field that is not a number."""
    text = _text(path)
    lines = text.split("\n")
    header = lines[0].rstrip("\r").split("\t")
    names, types = [], {}
    for col in header:
        name, _, ftype = col.partition(":")
        if ftype not in FIELD_TYPES:
            raise UserError(f"{path}:1: column '{col}' has type '{ftype}'; expected one of "
                            f"{sorted(FIELD_TYPES)}")
        if name in types:
            raise UserError(f"{path}:1: column '{name}' appears twice in the header")
        names.append(name)
        types[name] = ftype
    for no, line in enumerate(lines[1:], start=2):
        if line.strip("\r") and line.count("\t") != len(header) - 1:
            raise UserError(f"{path}:{no}: {line.count(chr(9)) + 1} tab-separated fields, but "
                            f"the header has {len(header)} ({', '.join(header)})")
    df = pd.read_csv(io.StringIO(text), sep="\t", header=0, names=names, dtype=str,
                     keep_default_na=False, quoting=3, engine="c")
    for name, ftype in types.items():
        if ftype == "float":
            raw = df[name]
            df[name] = pd.to_numeric(raw.replace("", np.nan), errors="coerce")
            bad = np.flatnonzero(df[name].isna().to_numpy() & (raw != "").to_numpy())
            if len(bad):
                line = data_lines(text)[bad[0]]
                raise UserError(f"{path}:{line}: field '{name}' is a float column, got "
                                f"{raw.iloc[bad[0]]!r}")
    df.attrs["field_types"] = types
    df.attrs["source"] = str(path)
    return df


def require_numbers(df: pd.DataFrame, columns, path) -> None:
    """UserError (file, line) when a column used as a number (rating, timestamp) has an empty
    or non-numeric value."""
    for col in columns:
        if col not in df:
            continue
        values = pd.to_numeric(df[col].replace("", np.nan), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            line = data_lines(_text(path))[bad[0]]
            raise UserError(f"{path}:{line}: '{col}' must be a number in every row, got "
                            f"{df[col].iloc[bad[0]]!r}")
        df[col] = values


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
