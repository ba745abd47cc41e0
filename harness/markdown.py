"""Markdown tables: every cell escaped, so a label with `|` or a newline cannot break a table."""

from __future__ import annotations


def escape_cell(text: object) -> str:
    """A table cell: `|` -> `\\|`, backslashes kept as written, newlines -> spaces."""
    s = str(text).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return s.replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table from a header and rows of cell strings."""
    lines = ["| " + " | ".join(escape_cell(h) for h in header) + " |",
             "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(escape_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
