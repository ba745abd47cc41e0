"""The diff table of `harness check` as plain text (terminal, CI logs, pytest failures)."""

from __future__ import annotations

import math

import pandas as pd

from harness.check.compare import CheckResult, metric_label

COLUMNS = ["model", "metric", "reference", "new", "delta", "tolerance", "p", "verdict"]


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.4g}"
    return f"{x:.4f}"


def _delta(row: dict) -> str:
    d = row["delta"]
    if d == 0:
        return "0"
    if row["kind"] == "efficiency":
        rel = row["rel_delta"]
        return f"{d:+.4g} ({rel:+.1%})" if not pd.isna(rel) else f"{d:+.4g}"
    return f"{d:+.4f}" if abs(d) >= 5e-5 else f"{d:+.1e}"


def _p(p: float) -> str:
    if p is None or pd.isna(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _tol(row: dict) -> str:
    if row["kind"] == "efficiency":
        return f"{row['tolerance']:.0%} rel"
    return f"{row['tolerance']:g}"


def _label(row: dict) -> str:
    label = metric_label(row["metric"], row["k"])
    if row["slice"] != "all":
        label += f" [{row['slice']}]"
    if row["perturbation"] != "none":
        label += f" {{{row['perturbation']}}}"
    return label


def _verdict(row: dict) -> str:
    return "REGRESSION" if row["verdict"] == "regression" else row["verdict"]


def _format(cells: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    right = {2, 3, 4, 5, 6}
    lines = []
    for n, r in enumerate(cells):
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                 enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def summary(result: CheckResult) -> str:
    rows = result.rows
    counts = rows["verdict"].value_counts().to_dict() if len(rows) else {}
    extra = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()) if v != "regression")
    if result.passed:
        return f"PASS: {len(rows)} rows checked, no regression ({extra})"
    reg = result.regressions
    by_model = []
    for m, g in reg.groupby("model", sort=False):
        labels = [_label(r) for r in g.to_dict("records")]
        more = f" (+{len(labels) - 6} more)" if len(labels) > 6 else ""
        by_model.append(f"{m}: " + ", ".join(labels[:6]) + more)
    return (f"FAIL: {len(reg)} regression(s) in {len(rows)} rows ({extra}) — "
            + "; ".join(by_model))


def render_text(result: CheckResult, changed_only: bool = False) -> str:
    """One block per (dataset, split fingerprint, protocol): model, metric, reference, new,
    delta, tolerance, p (one-sided), verdict; then notes and the summary line."""
    out = [f"harness check: {result.new}  against reference {result.reference}",
           f"settings: {result.settings.source}; test {result.settings.test} (one-sided, "
           "paired over users)"]
    rows = result.rows
    for (ds, fp, proto), g in rows.groupby(["dataset", "split_fingerprint", "protocol"],
                                           sort=False):
        recs = g.to_dict("records")
        if changed_only:
            recs = [r for r in recs if r["verdict"] != "ok" or r["delta"] != 0]
        out.append(f"\n{ds} · split {fp} · candidates {proto} · {len(g)} rows"
                   + (f", {len(recs)} shown (changed)" if changed_only else ""))
        if not recs:
            continue
        cells = [COLUMNS] + [[r["model"], _label(r), _num(r["reference"]), _num(r["new"]),
                              _delta(r), _tol(r), _p(r["p"]), _verdict(r)] for r in recs]
        out += _format(cells)
    if result.notes:
        out.append("")
        out += [f"note: {n}" for n in result.notes]
    out += ["", summary(result)]
    return "\n".join(out)
