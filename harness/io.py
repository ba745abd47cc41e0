"""Atomic file writes: write to a temp file in the same directory, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    def w(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    _atomic(path, w)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    _atomic(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_csv(path: Path, df: pd.DataFrame) -> None:
    _atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_npz(path: Path, **arrays) -> None:
    import numpy as np

    def w(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    _atomic(path, w)
