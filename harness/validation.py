"""Declarative value specs for suite keys: one table drives the checker and the JSON Schema.

A key table maps key -> spec. A spec is a Python type (or a tuple of types: type check only) or
a `Spec` built with `Int`, `Num`, `Str`, `Bool`, `List`, `Table`: type, range (with the nearest
valid value in the message), choices (with did-you-mean), list items and sizes, nested tables.
`problems(value, spec)` lists everything wrong with a value; `to_schema(spec)` is its JSON
Schema (draft 2020-12). `Checker` collects every problem of a suite (see harness.suite).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from harness.errors import SuiteError, did_you_mean
from harness.names import label_problem

INF = math.inf


@dataclass(frozen=True)
class Spec:
    """What a value must be. `types`: accepted Python types (a bool never passes as a number).
    Numbers: `lo`/`hi` bounds (None: open-ended), `lo_open`/`hi_open` for strict bounds, never
    NaN or infinite. Strings: `choices`, `label` (becomes part of file names), `nonempty`.
    Lists: `items`, `min_items`, `max_items`, `unique`. Tables: `keys` (None: any keys)."""

    types: tuple[type, ...]
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] | None = None
    label: bool = False
    nonempty: bool = False
    items: "Spec | None" = None
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False
    keys: dict | None = None
    doc: str = ""


def Int(lo=None, hi=None, doc: str = "") -> Spec:  # noqa: N802 - reads like a type
    return Spec((int,), lo, hi, doc=doc)


def Num(lo=None, hi=None, lo_open: bool = False, hi_open: bool = False, doc: str = "") -> Spec:  # noqa: N802
    return Spec((int, float), lo, hi, lo_open, hi_open, doc=doc)


def Str(choices=None, label: bool = False, nonempty: bool = False, doc: str = "") -> Spec:  # noqa: N802
    return Spec((str,), choices=tuple(choices) if choices is not None else None, label=label,
                nonempty=nonempty or label, doc=doc)


def Bool(doc: str = "") -> Spec:  # noqa: N802
    return Spec((bool,), doc=doc)


def List(items: "Spec | type", min_items: int = 1, max_items: int | None = None,  # noqa: N802
         unique: bool = False, doc: str = "") -> Spec:
    return Spec((list,), items=as_spec(items), min_items=min_items, max_items=max_items,
                unique=unique, doc=doc)


def Table(keys: dict | None = None, doc: str = "") -> Spec:  # noqa: N802
    return Spec((dict,), keys=keys, doc=doc)


def as_spec(spec) -> Spec:
    """A Spec from a spec, a type, or a tuple of types."""
    if isinstance(spec, Spec):
        return spec
    return Spec(tuple(spec) if isinstance(spec, tuple) else (spec,))


_NAMES = {int: "int", float: "float", str: "str", bool: "bool", list: "list", dict: "table"}


def type_name(spec: Spec) -> str:
    if spec.types == (int, float):
        return "a number"
    name = " or ".join(_NAMES.get(t, t.__name__) for t in spec.types)
    if spec.items is not None:
        name += f" of {type_name(spec.items)}"
    return name


def _is_type(value, spec: Spec) -> bool:
    if isinstance(value, bool) and bool not in spec.types and object not in spec.types:
        return False
    return isinstance(value, spec.types)


def _fmt(x) -> str:
    if isinstance(x, float) and math.isfinite(x) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return "inf" if x == INF else "-inf" if x == -INF else f"{x:g}" if isinstance(x, float) else str(x)


def range_text(spec: Spec) -> str:
    """'>= 1', '> 0', 'in [0, 1)', 'a positive integer <= 100'."""
    if spec.types == (int,) and spec.lo in (0, 1) and not spec.lo_open:
        kind = "a positive integer" if spec.lo == 1 else "a non-negative integer"
        return kind + (f" <= {_fmt(spec.hi)}" if spec.hi is not None else "")
    if spec.lo is not None and spec.hi is not None:
        return (f"in {'(' if spec.lo_open else '['}{_fmt(spec.lo)}, {_fmt(spec.hi)}"
                f"{')' if spec.hi_open else ']'}")
    if spec.lo is not None:
        return f"{'>' if spec.lo_open else '>='} {_fmt(spec.lo)}"
    return f"{'<' if spec.hi_open else '<='} {_fmt(spec.hi)}"


def _number_problem(value, spec: Spec) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    low = spec.lo is not None and (value < spec.lo or (spec.lo_open and value == spec.lo))
    high = spec.hi is not None and (value > spec.hi or (spec.hi_open and value == spec.hi))
    if not (low or high):
        return None
    bound, is_open = (spec.lo, spec.lo_open) if low else (spec.hi, spec.hi_open)
    nearest = bound if not is_open else (bound + (1 if low else -1) if spec.types == (int,)
                                         else None)
    hint = f" (nearest valid: {_fmt(nearest)})" if nearest is not None else ""
    return f"must be {range_text(spec)}, got {_fmt(value)}{hint}"


def problems(value: Any, spec, where: str = "") -> list[tuple[str, str]]:
    """Every (key suffix, message) wrong with `value`; [] when it is valid."""
    spec = as_spec(spec)
    if not _is_type(value, spec):
        return [(where, f"must be {type_name(spec)}, got {value!r}")]
    out: list[tuple[str, str]] = []
    if (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (int in spec.types or float in spec.types)):
        msg = _number_problem(value, spec)
        if msg:
            out.append((where, msg))
    elif isinstance(value, str):
        if spec.nonempty and not value:
            out.append((where, "must not be empty"))
        elif spec.choices is not None and value not in spec.choices:
            out.append((where, f"unknown value '{value}'{did_you_mean(value, spec.choices)}"))
        elif spec.label:
            msg = label_problem(value)
            if msg:
                out.append((where, msg))
    elif isinstance(value, list):
        out += _list_problems(value, spec, where)
    elif isinstance(value, dict) and spec.keys is not None:
        out += table_problems(value, spec.keys, where)
    return out


def _list_problems(value: list, spec: Spec, where: str) -> list[tuple[str, str]]:
    out = []
    if len(value) < spec.min_items:
        out.append((where, f"must have at least {spec.min_items} item"
                           f"{'s' if spec.min_items > 1 else ''}, got {value!r}"))
    if spec.max_items is not None and len(value) > spec.max_items:
        out.append((where, f"must have at most {spec.max_items} items, got {len(value)}"))
    seen: list = []
    numbers = spec.items is not None and (int in spec.items.types or float in spec.items.types)
    for i, item in enumerate(value):
        if numbers:  # a list of numbers is one value: its problems name the list's key
            out += [(where, f"item {i}: {msg}") for _, msg in problems(item, spec.items)]
        elif spec.items is not None:
            out += problems(item, spec.items, f"{where}[{i}]")
        if spec.unique and isinstance(item, (int, float, str)):
            if item in seen:
                out.append((where, f"item {i}: duplicate value {item!r}") if numbers
                           else (f"{where}[{i}]", f"duplicate value {item!r}"))
            seen.append(item)
    return out


def table_problems(table: dict, keys: dict, where: str = "", extra=frozenset()
                   ) -> list[tuple[str, str]]:
    """Unknown keys (with did-you-mean) and every key's value problems."""
    out = []
    prefix = f"{where}." if where else ""
    for key, value in table.items():
        if key in keys:
            out += problems(value, keys[key], f"{prefix}{key}")
        elif key not in extra:
            out.append((f"{prefix}{key}", f"unknown key{did_you_mean(key, set(keys) | set(extra))}"))
    return out


# ---- JSON Schema ----------------------------------------------------------------------------

def to_schema(spec) -> dict:
    """The JSON Schema (draft 2020-12) of a spec (NaN and infinity are the checker's alone)."""
    spec = as_spec(spec)
    json_types = {int: "integer", float: "number", str: "string", bool: "boolean",
                  list: "array", dict: "object"}
    types = sorted({json_types[t] for t in spec.types if t in json_types})
    if "number" in types and "integer" in types:
        types.remove("integer")
    out: dict = {"type": types[0] if len(types) == 1 else types}
    if spec.doc:
        out["description"] = spec.doc
    if spec.lo is not None:
        out["exclusiveMinimum" if spec.lo_open else "minimum"] = spec.lo
    if spec.hi is not None:
        out["exclusiveMaximum" if spec.hi_open else "maximum"] = spec.hi
    if spec.choices is not None:
        out["enum"] = list(spec.choices)
    if spec.nonempty:
        out["minLength"] = 1
    if spec.label:
        from harness.names import LABEL_PATTERN, MAX_LABEL
        out.update(pattern=LABEL_PATTERN, maxLength=MAX_LABEL)
    if list in spec.types:
        if spec.items is not None:
            out["items"] = to_schema(spec.items)
        if spec.min_items:
            out["minItems"] = spec.min_items
        if spec.max_items is not None:
            out["maxItems"] = spec.max_items
        if spec.unique:
            out["uniqueItems"] = True
    if dict in spec.types and spec.keys is not None:
        out.update(table_schema(spec.keys))
    return out


def table_schema(keys: dict, required=(), extra: dict | None = None) -> dict:
    """An object schema: the keys' specs, no other keys."""
    props = {k: to_schema(v) for k, v in keys.items()}
    props.update(extra or {})
    out = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


# ---- the checker ----------------------------------------------------------------------------

class Abort(SuiteError):
    """Raised by `Checker.fail`: stops the current section (its problem is already recorded)."""


class Checker:
    """Collects every problem of one suite file. `problem` records and continues; `fail`
    records and stops the current `section`; `keys` checks a whole table (unknown keys, types,
    ranges, choices), records every problem and stops the section when there was one.
    `raise_if_any` raises one SuiteError listing them all."""

    def __init__(self, file: str, lines: dict | None = None):
        self.file = file
        self.lines = lines or {}
        self.found: list[tuple[str, str]] = []

    def problem(self, key: str, msg: str) -> None:
        if (key, msg) not in self.found:
            self.found.append((key, msg))

    def fail(self, key: str, msg: str):
        self.problem(key, msg)
        raise Abort(self.file, key, msg)

    @contextmanager
    def section(self):
        """Problems inside stop this section only; checking goes on with the next one."""
        try:
            yield
        except Abort:
            pass

    def keys(self, where: str, table: Any, allowed: dict | set, extra=frozenset()) -> None:
        if not isinstance(table, dict):
            self.fail(where, f"must be a table, got {table!r}")
        specs = allowed if isinstance(allowed, dict) else {k: object for k in allowed}
        found = table_problems(table, specs, "" if where == "<top>" else where, extra)
        for key, msg in found:
            self.problem(key, msg)
        if found:
            raise Abort(self.file, found[0][0], found[0][1])

    def value(self, key: str, value: Any, spec) -> bool:
        """Record the value's problems; True when it is valid."""
        found = problems(value, spec, key)
        for k, msg in found:
            self.problem(k, msg)
        return not found

    def choice(self, key: str, value: Any, choices) -> None:
        if not isinstance(value, str):
            self.fail(key, f"must be str, got {value!r}")
        if value not in choices:
            self.fail(key, f"unknown value '{value}'{did_you_mean(value, choices)}")

    def raise_if_any(self) -> None:
        if self.found:
            found = [(k, m, self.line(k)) for k, m in self.found]
            found.sort(key=lambda p: p[2] if p[2] is not None else float("inf"))  # stable
            raise SuiteError.many(self.file, found)

    def line(self, key: str) -> int | None:
        """The line of `key` in the file, or of its nearest enclosing key (None: unknown)."""
        from harness.tomllines import lookup
        return lookup(self.lines, key)
