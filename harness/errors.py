"""Error types. `UserError` and subclasses are bad input: the CLI exits with code 2."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input from the user (suite, dataset path, names): exit code 2."""


class SuiteError(UserError):
    """A malformed suite: names the file, the key (and its line when known). `problems` lists
    every (key, message, line) found; the message has one line per problem."""

    def __init__(self, file: str, key: str, message: str, line: int | None = None):
        self.file, self.key, self.line = file, key, line
        self.problems = [(key, message, line)]
        super().__init__(_where(file, line) + f" [{key}] {message}")

    @classmethod
    def many(cls, file: str, problems: list[tuple[str, str, int | None]]) -> "SuiteError":
        """One error for several problems (each on its own line, in the order found)."""
        err = cls(file, *problems[0])
        if len(problems) > 1:
            lines = [_where(file, line) + f" [{key}] {msg}" for key, msg, line in problems]
            err.args = (f"{file}: {len(problems)} problems\n" + "\n".join(lines),)
        err.problems = list(problems)
        return err


def _where(file: str, line: int | None) -> str:
    return f"{file}:{line}:" if line else f"{file}:"


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
