"""argparse value types shared by the CLI subcommands."""

from __future__ import annotations

import argparse


def csv_list(value: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']."""
    return [v.strip() for v in value.split(",") if v.strip()]


def seed_list(value: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; anything else is an argparse error."""
    try:
        return [int(v) for v in csv_list(value)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds must be integers like 0,1,2: {value}") from exc
