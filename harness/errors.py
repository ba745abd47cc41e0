"""Error types. `UserError` and subclasses are bad input: the CLI exits with code 2."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input from the user (suite, dataset path, names): exit code 2."""


class SuiteError(UserError):
    """A malformed suite: names the file and the key."""

    def __init__(self, file: str, key: str, message: str):
        self.file, self.key = file, key
        super().__init__(f"{file}: [{key}] {message}")


class LeakageError(Exception):
    """A split violates its protocol's promises (test pair in train, temporal order)."""


class CacheError(UserError):
    """A cached artifact does not match its recorded hash or fingerprint."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, plus the full list of valid names."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.4)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; valid: {', '.join(choices)}"
