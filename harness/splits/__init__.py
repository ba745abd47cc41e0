"""Splits: protocols, fingerprints, on-disk cache verified on load, leakage checks."""

from harness.splits.base import Split
from harness.splits.make import PROTOCOLS, get_split, make_split

__all__ = ["PROTOCOLS", "Split", "get_split", "make_split"]
