"""The offline synonym lexicon: `synonyms.tsv` next to this module (one group per line,
tab-separated; '#' starts a comment). A word's synonyms are the other words of every group it
is in, sorted (so draws do not depend on file order within a group)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

LEXICON = Path(__file__).with_name("synonyms.tsv")


def read_groups(path: Path = LEXICON) -> list[list[str]]:
    groups = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words = [w.strip().lower() for w in line.split("\t") if w.strip()]
        if words and not words[0].startswith("#") and len(words) > 1:
            groups.append(words)
    return groups


@lru_cache(maxsize=None)
def synonyms() -> dict[str, tuple[str, ...]]:
    """word -> sorted tuple of its synonyms (lower case)."""
    table: dict[str, set[str]] = {}
    for group in read_groups():
        for w in group:
            table.setdefault(w, set()).update(x for x in group if x != w)
    return {w: tuple(sorted(s)) for w, s in table.items()}
