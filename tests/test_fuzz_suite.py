"""Fuzz: malformed values for every key of every suite table -> exit 2, no traceback, no run
directory, and the message names the key.

The cases are generated from the suite's JSON Schema (`harness schema`), so every table is
covered, including the tables of passes registered later ([fairness], [robustness], ...): for
each key, values of a wrong type, nested lists, values just outside each bound, unknown
choices, empty strings and lists, NaN; for each table, an unknown key, a missing required key
and the table given as a number. Each generated suite is first checked to be invalid under the
schema too (so the checker is at least as strict as the published schema), then run through
`harness run`. A second table of malformed dataset files runs the same way.
"""

from __future__ import annotations

import copy
import json
import math
import re

import jsonschema
import pytest

from harness.cli import main
from harness.schema import suite_schema

SCHEMA = suite_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
BASE = {
    "suite": {"name": "fz"},
    "datasets": [{"name": "synthetic", "n_users": 30, "n_items": 20, "n_interactions": 200}],
    "splits": [{"protocol": "random_holdout"}],
    "models": [{"name": "pop"}, {"name": "itemknn"}],
}
# Valid entries of the arrays of tables, for the variants that need more than their
# discriminating key.
ENTRY = {("candidates", "rerank"): {"protocol": "rerank", "first_stage": "pop", "m": 50}}
ARRAY_INDEX = {"models": 1}  # the entry under test follows the base 'pop' model


# ---- a small TOML writer (inline tables: every value of the generator is expressible) ------

def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(raw: dict) -> str:
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in raw.items())


# ---- generation from the schema ------------------------------------------------------------

def minimal(s: dict):
    """A small value that satisfies schema `s` (examples first)."""
    if "examples" in s:
        return copy.deepcopy(s["examples"][0])
    if "const" in s:
        return s["const"]
    if "enum" in s:
        return s["enum"][0]
    t = s.get("type")
    t = t[0] if isinstance(t, list) else t
    if t == "object" or "properties" in s:
        return {k: minimal(s["properties"].get(k, {})) for k in s.get("required", [])}
    if t == "array":
        return [minimal(s.get("items", {}))] * s.get("minItems", 0)
    if t in ("integer", "number"):
        lo = s.get("minimum", s.get("exclusiveMinimum", 0))
        hi = s.get("maximum", s.get("exclusiveMaximum", lo + 2))
        mid = (lo + hi) / 2
        return int(mid) if t == "integer" and lo < int(mid) < hi else (
            int(lo) + 1 if t == "integer" else mid)
    if t == "boolean":
        return False
    return "x"


def _types(s: dict) -> set[str]:
    t = s.get("type")
    if t is None and "enum" in s:
        return {type(v).__name__.replace("str", "string") for v in s["enum"]}
    return set(t) if isinstance(t, list) else {t} if t else set()


def bad_values(s: dict, valid=None) -> list:
    """Values that schema `s` rejects (plus NaN for numbers, which only the checker rejects)."""
    types, out = _types(s), []
    if not types:
        return out
    def wrong(v) -> bool:
        kind = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array",
                dict: "object"}[type(v)]
        return kind not in types and not (kind == "integer" and "number" in types)
    out += [v for v in ("zz", 1.5, True) if wrong(v)][:1]  # a scalar of another type
    out += [v for v in ([["nested"]], {"zz": 1}) if wrong(v)]
    for key, delta in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1),
                       ("exclusiveMaximum", 0)):
        if key in s:
            out.append(s[key] + delta if "integer" in types or delta == 0 else s[key] + delta / 2)
    if "number" in types or "integer" in types:
        out.append(float("nan"))
    if "enum" in s and "string" in types:
        out.append("zz-not-a-choice")
    if s.get("minLength"):
        out.append("")
    if "pattern" in s:
        for probe in ("../x", "a/b", "/ /"):
            if not re.search(s["pattern"], probe):
                out.append(probe)
                break
    if "array" in types:
        if s.get("minItems"):
            out.append([])
        items = s.get("items", {})
        out += [[v] for v in bad_values(items) if not isinstance(v, list)]
        if s.get("uniqueItems") and valid:
            out.append([valid[0], valid[0]])
    return out


def cases():
    """(id, raw suite, key path the message must name, parameter name or None)."""
    out = []
    for table, ts in SCHEMA["properties"].items():
        if ts.get("type") == "array":
            for index, entry, props in _entries(table, ts["items"]):
                where = f"{table}[{index}]"

                def put(entry_value, table=table, index=index):
                    raw = copy.deepcopy(BASE)
                    arr = raw.get(table, [])[:index] + [entry_value]
                    raw[table] = arr
                    return raw
                out += _table_cases(where, entry, props, ts["items"], put)
                out += _param_cases(table, index, entry, put)
            out.append((f"{table}=7", {**copy.deepcopy(BASE), table: 7}, table, None))
            continue
        base_table = BASE.get(table, minimal(ts) if table not in ("evaluation", "check",
                                                                   "execution") else {})

        def put_table(value, table=table):
            return {**copy.deepcopy(BASE), table: value}
        out += _table_cases(table, base_table, ts.get("properties", {}), ts, put_table)
        out.append((f"{table}=7", put_table(7), table, None))
    for req in SCHEMA["required"]:
        raw = copy.deepcopy(BASE)
        del raw[req]
        out.append((f"missing {req}", raw, req, None))
    unique = {}
    for case in out:  # keys shared by the variants of an array (label, seed, ...) once
        unique.setdefault(case[0], case)
    return list(unique.values())


def _entries(table: str, items: dict):
    """(index, valid entry, properties) for each variant of an array of tables."""
    index = ARRAY_INDEX.get(table, 0)
    props = dict(items.get("properties", {}))
    variants = [(c["if"]["properties"], c["then"]) for c in items.get("allOf", [])
                if "if" in c]
    if not variants:
        yield index, copy.deepcopy(BASE.get(table, [{}])[0]), props
        return
    for cond, then in variants:
        key, value = next((k, v["const"]) for k, v in cond.items())
        entry = ENTRY.get((table, value))
        if entry is None:
            entry = (copy.deepcopy(BASE[table][0]) if table in BASE and
                     BASE[table][0].get(key) == value else {key: value})
        yield index, entry, {**props, **then.get("properties", {})}


def _table_cases(where, base, props, ts, put):
    out = []
    for key, ps in props.items():
        if key == "params" and where.startswith("models"):
            continue  # per recommender: _param_cases
        path = f"{where}.{key}"
        if ps.get("type") == "object" and "properties" in ps:
            sub = base.get(key, minimal(ps)) if isinstance(base, dict) else {}
            out += _table_cases(path, sub, ps["properties"], ps,
                                lambda v, key=key, put=put, base=base: put({**base, key: v}))
        if ps.get("type") == "object" and isinstance(ps.get("additionalProperties"), dict):
            names = ps.get("propertyNames", {}).get("enum", ["pop"])
            inner = ps["additionalProperties"]
            for v in bad_values(inner):
                out.append((f"{path}.{names[0]}={v!r}",
                            put({**base, key: {names[0]: v}}), f"{path}.{names[0]}", None))
        for v in bad_values(ps, base.get(key) if isinstance(base, dict) else None):
            out.append((f"{path}={v!r}", put({**base, key: v}), path, None))
    if ts.get("additionalProperties") is False or ts.get("unevaluatedProperties") is False:
        out.append((f"{where}.zz_unknown", put({**base, "zz_unknown": 1}),
                    f"{where}.zz_unknown", None))
    for req in ts.get("required", []):
        if isinstance(base, dict) and req in base:
            out.append((f"{where} without {req}",
                        put({k: v for k, v in base.items() if k != req}), where, None))
    return out


def _param_cases(table, index, entry, put):
    """Hyperparameters of each built-in recommender: every range and type."""
    if table != "models":
        return []
    name = entry.get("name")
    model_schema = SCHEMA["properties"]["models"]["items"]
    for case in model_schema.get("allOf", []):
        if case["if"]["properties"]["name"]["const"] == name:
            params = case["then"]["properties"]["params"]
            break
    else:
        return []
    out = []
    for key, ps in params.get("properties", {}).items():
        for v in bad_values(ps):
            out.append((f"models[{index}]({name}).params.{key}={v!r}",
                        put({**entry, "params": {key: v}}), f"models[{index}].params", key))
    if params.get("additionalProperties") is False:
        out.append((f"models[{index}]({name}).params.zz", put({**entry, "params": {"zz": 1}}),
                    f"models[{index}].params", "zz"))
    return out


CASES = cases()


def test_base_suite_is_valid_and_every_table_is_generated(tmp_path):
    """The base suite (with each table's minimal content) loads, so every case below fails
    because of its one malformed value; every table and key of the schema has cases."""
    from harness.suite import load_suite
    raw = copy.deepcopy(BASE)
    for table, ts in SCHEMA["properties"].items():
        if table not in raw and ts.get("type") == "object":
            raw[table] = minimal(ts)
    path = tmp_path / "ok.toml"
    path.write_text(to_toml(raw))
    VALIDATOR.validate(raw)
    load_suite(path)
    covered = {c[2].split("[")[0].split(".")[0] for c in CASES}
    assert covered == set(SCHEMA["properties"]), set(SCHEMA["properties"]) - covered
    for table in ("fairness", "robustness", "efficiency", "check", "execution"):
        if table in SCHEMA["properties"]:
            keys = SCHEMA["properties"][table].get("properties", {})
            named = {c[2].split(".")[1].split("[")[0] for c in CASES
                     if c[2].startswith(table + ".")}
            assert set(keys) <= named, (table, set(keys) - named)
    assert len(CASES) > 300


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("n", range(len(CASES)), ids=[c[0][:90] for c in CASES])
def test_malformed_suite_exits_2_naming_the_key(n, workdir, capsys):
    label, raw, key, param = CASES[n]
    tmp_path = workdir / str(n)
    tmp_path.mkdir()
    nan = json.dumps(raw, default=str).find("NaN") >= 0
    if not nan:  # the published schema rejects it too (NaN: only the checker can)
        assert not VALIDATOR.is_valid(raw), f"schema accepts {label}"
    path = tmp_path / "s.toml"
    path.write_text(to_toml(raw))
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert not out.exists()
    assert re.search(re.escape(f"[{key}") + r"[\].\[]", err), (key, err)
    if param is not None:
        assert f"'{param}'" in err, err


# ---- malformed dataset files ---------------------------------------------------------------

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ROWS = "".join(f"{u}\t{i}\t{1 + (u + i) % 5}\t{1000 + 7 * u + i}\n"
               for u in range(1, 9) for i in range(1, 7))
DATASETS = [
    # (id, .inter bytes, extra dataset keys, split protocol, expected text, line)
    ("ragged row", HEADER + ROWS + "3\t4\t5\t6\t7\n", {}, "random_holdout",
     "5 tab-separated fields", 50),
    ("short row", HEADER + "1\t2\n" + ROWS, {}, "random_holdout", "2 tab-separated", 2),
    ("not utf-8", (HEADER + ROWS).encode() + b"9\t\xff\t1\t2\n", {}, "random_holdout",
     "not UTF-8", 50),
    ("bad float", HEADER + ROWS + "9\t1\tfive\t3\n", {}, "random_holdout", "'five'", 50),
    ("empty timestamp", HEADER + ROWS + "9\t1\t3\t\n", {}, "random_holdout", "'timestamp'", 50),
    ("duplicate column", "user_id:token\titem_id:token\titem_id:token\n1\t2\t3\n", {},
     "random_holdout", "appears twice", 1),
    ("unknown type", "user_id:token\titem_id:int\n1\t2\n", {}, "random_holdout",
     "item_id:int", 1),
    ("header only", HEADER, {}, "random_holdout", "no interactions", None),
    ("no timestamps, leave_one_out", "user_id:token\titem_id:token\n" + "1\t2\n2\t3\n", {},
     "leave_one_out", "no timestamp", None),
    ("no timestamps, temporal", "user_id:token\titem_id:token\n" + "1\t2\n2\t3\n", {},
     "temporal", "no timestamp", None),
    ("min_rating without ratings", "user_id:token\titem_id:token\n1\t2\n", {"min_rating": 4},
     "random_holdout", "no 'rating'", None),
    ("min_rating removes all", HEADER + ROWS, {"min_rating": 6}, "random_holdout",
     "nearest valid: 5", None),
    ("kcore removes all", HEADER + ROWS, {"kcore": 9}, "random_holdout",
     "nearest valid: 6", None),
]


@pytest.mark.parametrize("case", DATASETS, ids=[c[0] for c in DATASETS])
def test_malformed_dataset_exits_2_naming_file_and_line(case, tmp_path, capsys):
    label, inter, extra, protocol, expected, line = case
    d = tmp_path / "data"
    d.mkdir()
    f = d / "toy.inter"
    f.write_bytes(inter if isinstance(inter, bytes) else inter.encode())
    raw = {**copy.deepcopy(BASE), "datasets": [{"path": str(d), **extra}],
           "splits": [{"protocol": protocol}], "evaluation": {"ks": [1]}}
    path = tmp_path / "s.toml"
    path.write_text(to_toml(raw))
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert not out.exists()
    assert expected in err, err
    if "timestamp" in expected and "no" in expected:
        assert "[splits[0].protocol]" in err and "'data'" in err, err
    else:
        assert str(f) + (f":{line}:" if line else ":") in err, err


@pytest.mark.parametrize("sizes, key", [
    ({"n_users": 0}, "datasets[0].n_users"),
    ({"n_users": 3, "n_items": 3, "n_interactions": 10}, "datasets[0].n_interactions"),
    ({"n_genres": 0}, "datasets[0].n_genres"),
    ({"seed": -1}, "datasets[0].seed"),
])
def test_malformed_synthetic_dataset(sizes, key, tmp_path, capsys):
    raw = {**copy.deepcopy(BASE), "datasets": [{"name": "synthetic", **sizes}]}
    path = tmp_path / "s.toml"
    path.write_text(to_toml(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"[{key}]" in err and "nearest valid" in err, err
    assert not (tmp_path / "out").exists()
