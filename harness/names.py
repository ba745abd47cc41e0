"""Names that become file or folder names: validated where they enter, sanitized where used.

- The suite name and the run id are folder names under `--out`: they must match
  `DIR_NAME_PATTERN` (letters, digits, `_ . @ = + -`, not starting with `.` or `-`).
- Labels (dataset, split, candidate, model) are free text shown in tables (`|` is fine), but
  they are parts of cell and TREC file names: no `/`, `\\`, control characters, at most
  `MAX_LABEL` characters. `file_part` maps a label to its file-name form (characters outside
  `[A-Za-z0-9_.@=+-]` become `-`); the suite checker rejects two labels with the same form.
"""

from __future__ import annotations

import re

MAX_LABEL = 56  # four labels + separators + seed stay under the 255-byte file-name limit
MAX_DIR_NAME = 100
DIR_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.@=+-]{0,99}$"
LABEL_PATTERN = r"^[^/\\\x00-\x1f\x7f]+$"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@=+-]")


def file_part(text: str) -> str:
    """The file-name form of a label: characters outside [A-Za-z0-9_.@=+-] become '-'."""
    return _UNSAFE.sub("-", str(text))


def label_problem(label: str) -> str | None:
    """What is wrong with a label (None: fine)."""
    if not label:
        return "must not be empty"
    if "/" in label or "\\" in label:
        return f"must not contain '/' or '\\' (labels are parts of file names), got {label!r}"
    if re.search(r"[\x00-\x1f\x7f]", label):
        return f"must not contain control characters, got {label!r}"
    if len(label) > MAX_LABEL:
        return f"must be at most {MAX_LABEL} characters, got {len(label)}"
    return None


def dir_name_problem(name: object) -> str | None:
    """What is wrong with a suite name or run id used as a folder name (None: fine)."""
    if not isinstance(name, str):
        return f"must be str, got {name!r}"
    if not re.fullmatch(DIR_NAME_PATTERN, name):
        safe = file_part(name).lstrip(".-")[:MAX_DIR_NAME] or "run"
        return (f"must be a plain folder name (letters, digits, _ . @ = + -; not starting "
                f"with '.' or '-'; at most {MAX_DIR_NAME} characters), got {name!r} "
                f"(nearest valid: '{safe}')")
    return None
