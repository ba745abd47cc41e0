"""Line numbers of keys in a TOML file, for error messages (`tomllib` keeps no positions).

`key_lines(text)` maps the paths the suite checker uses ('suite.name', 'models[2].params',
'efficiency.server') to 1-based lines: table headers, `[[array]]` entries and `key = value`
lines. Keys inside inline tables and arrays map to the line of their enclosing key
(`lookup` walks up the path). A best effort: a file that tomllib rejects has no map.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")
_INDEX = re.compile(r"\[\d+\]$")


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


def _depth(line: str) -> int:
    """Bracket balance of a line outside strings and comments."""
    depth, quote = 0, None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


def key_lines(text: str) -> dict[str, int]:
    """Checker key path -> line number."""
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}  # array-of-tables name -> entries seen
    prefix = ""
    depth = 0
    for no, line in enumerate(text.splitlines(), start=1):
        if depth > 0:  # inside a multi-line array or inline table
            depth += _depth(line)
            continue
        head = _HEADER.match(line)
        if head and not _ASSIGN.match(line):
            parts = _parts(head.group(2))
            if head.group(1) == "[[":
                name = ".".join(parts)
                counts[name] = counts.get(name, 0) + 1
                prefix = f"{name}[{counts[name] - 1}]"
            else:
                first = parts[0]
                base = f"{first}[{counts[first] - 1}]" if first in counts else first
                prefix = ".".join([base] + parts[1:])
            lines.setdefault(prefix, no)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = ".".join(_parts(assign.group(1)))
            lines.setdefault(f"{prefix}.{key}" if prefix else key, no)
            depth = _depth(line[assign.end():])
    return lines


def lookup(lines: dict[str, int], key: str) -> int | None:
    """The line of `key`, else of the nearest enclosing key that has one."""
    while key:
        if key in lines:
            return lines[key]
        if _INDEX.search(key):
            key = _INDEX.sub("", key)
        elif "." in key:
            key = key.rsplit(".", 1)[0]
        else:
            return None
    return None
