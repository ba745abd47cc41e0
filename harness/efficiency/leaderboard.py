"""The efficiency section of leaderboard.md: one table per (dataset, split, candidates), models x
efficiency metrics (mean over seeds), unavailable percentiles and failed scenarios marked, and
the harness's own overhead (the `null` recommender) as a share of the cheapest real model. Models
that declare the history length they score from get a `history_len (mean / max)` column by the
latencies (single_stream's timed requests, else the server's)."""

from __future__ import annotations

import re

import pandas as pd

from harness.markdown import markdown_table

ORDER = ["params", "fit_seconds", "peak_memory_mb", "fit_items_embedded_per_s",
         "fit_tokens_per_s", "throughput_users_per_s", "throughput_candidates_per_s",
         "throughput_tokens_per_s", "flops_per_s", "mfu", "offline_peak_memory_mb",
         "latency_mean_ms", "latency_p*", "tokens_per_request", "flops_per_request",
         "server_achieved_qps", "server_latency_mean_ms", "server_latency_p*"]
NULL_RECOMMENDER = "null"
_HISTORY_NOTE = (" history_len (mean / max): history items the model scored from per timed "
                 "request, as it declares (`history_len_used`; e.g. min(history, max_len)).")


def _rank(metric: str) -> tuple:
    for i, pat in enumerate(ORDER):
        if pat.endswith("*"):
            m = re.fullmatch(re.escape(pat[:-1]) + r"([0-9.]+)_ms", metric)
            if m:
                return (i, float(m.group(1)))
        elif metric == pat:
            return (i, 0.0)
    return (len(ORDER), 0.0)


def _fmt(v: float) -> str:
    if pd.isna(v):
        return "–"
    if abs(v) >= 1e5:
        return f"{v:.3e}"
    return f"{v:.4g}"


def _short(msg: str) -> str:
    m = re.search(r"needs (\d+) timed samples, had (\d+)", msg)
    return f"n/a ({m.group(2)}/{m.group(1)})" if m else "n/a"


def efficiency_section(metrics: pd.DataFrame, statuses: list[dict]) -> list[str]:
    """Markdown lines (empty when the run has no efficiency pass)."""
    records = [s for s in statuses if s.get("efficiency")]
    eff = metrics[metrics["pass"] == "efficiency"] if len(metrics) else metrics
    if eff.empty and not records:
        return []
    lines = ["## Efficiency\n"]
    by_cell = {s["cell"]: s for s in records}
    null_models = {s["model"] for s in statuses if s.get("recommender") == NULL_RECOMMENDER}
    keys = ["dataset", "split", "split_fingerprint", "protocol"]
    groups = list(eff.groupby(keys, sort=False)) if not eff.empty else []
    for (ds, sp, fp, proto), g in groups:
        cells = [by_cell[c] for c in dict.fromkeys(g["cell"]) if c in by_cell]
        extra = [m for s in cells for m in s["efficiency"].get("unavailable", {})]
        cols = sorted(dict.fromkeys(list(g["metric"]) + extra), key=_rank)
        mean = g.groupby(["model", "metric"], sort=False)["value"].mean()
        models = list(dict.fromkeys(g["model"]))
        lines.append(f"### {ds} · split {sp} ({fp}) · candidates {proto} · "
                     f"users {int(g['n_users'].max())}\n")
        cost = [c for c in cols if _rank(c)[0] < ORDER.index("latency_mean_ms")]
        for part in (cost, [c for c in cols if c not in cost]):
            if part:
                lines += [_table(part, models, mean, cells, with_failed=part is cost,
                                 history=part is not cost), ""]
        lines += _overhead(mean, models, null_models)
    lines += _notes(records)
    failures = [(s["cell"], n, e.get("error", "")) for s in records
                for n, e in s["efficiency"].get("scenarios", {}).items()
                if e.get("status") == "failed"]
    failures += [(s["cell"], "pass", s["efficiency"]["error"]) for s in records
                 if s["efficiency"].get("error")]
    if failures:
        lines.append("### Failed efficiency scenarios\n")
        lines += [f"- `{c}` {n}: {err}" for c, n, err in failures]
        lines.append("")
    return lines


def _history_len(cells: list[dict]) -> str | None:
    """'mean / max' history length of the timed requests (mean over cells; None: undeclared)."""
    found = []
    for s in cells:
        sc = s["efficiency"].get("scenarios", {})
        rec = next((sc[n]["history_len"] for n in ("single_stream", "server")
                    if "history_len" in sc.get(n, {})), None)
        if rec is not None:
            found.append(rec)
    if not found:
        return None
    return f"{_fmt(sum(r['mean'] for r in found) / len(found))} / {max(r['max'] for r in found)}"


def _table(cols, models, mean, cells, with_failed: bool, history: bool = False) -> str:
    lens = {m: _history_len([s for s in cells if s["model"] == m]) for m in models}
    history = history and any(v is not None for v in lens.values())
    head = ["model"] + cols + (["history_len (mean / max)"] if history else []) + (
        ["failed scenarios"] if with_failed else [])
    out = []
    for m in models:
        mc = [s for s in cells if s["model"] == m]
        una = {k: v for s in mc for k, v in s["efficiency"].get("unavailable", {}).items()}
        failed = sorted({n for s in mc for n, e in s["efficiency"]["scenarios"].items()
                         if e.get("status") == "failed"})
        vals = [_fmt(mean[(m, c)]) if (m, c) in mean.index
                else (_short(una[c]) if c in una else "–") for c in cols]
        out.append([m] + vals + ([lens[m] or "–"] if history else [])
                   + ([", ".join(failed)] if with_failed else []))
    return markdown_table(head, out)


def overhead(mean: pd.Series, models: list[str], null_models: set,
             metric: str = "latency_p50_ms") -> list[tuple[str, float, dict]]:
    """[(null model, its value, {real model: its value}, cheapest first)] for `metric`."""
    have = {m: mean[(m, metric)] for m in models if (m, metric) in mean.index}
    real = dict(sorted(((m, v) for m, v in have.items() if m not in null_models),
                       key=lambda mv: mv[1]))
    if not real:
        return []
    return [(m, v, real) for m, v in have.items() if m in null_models]


def _overhead(mean, models, null_models) -> list[str]:
    out = []
    for metric in ("latency_p50_ms", "latency_p90_ms"):
        for null, nv, real in overhead(mean, models, null_models, metric):
            cheap, cv = next(iter(real.items()))
            each = ", ".join(f"`{m}` {100 * nv / v:.3g}%" for m, v in real.items())
            out.append(f"- Harness overhead ({metric}): `{null}` {nv:.4g} ms = "
                       f"{100 * nv / cv:.1f}% of the cheapest real model (`{cheap}`, "
                       f"{cv:.4g} ms); of each model: {each}.")
    return out + ([""] if out else [])


def _notes(records: list[dict]) -> list[str]:
    if not records:
        return []
    e = records[0]["efficiency"]
    dev = e.get("device", {})
    where = dev.get("gpu") if dev.get("device") == "cuda" else dev.get("cpu")
    return [f"Device: {dev.get('device')} ({where}), torch {dev.get('torch')}, "
            f"{e.get('threads')} torch thread(s); top-{e.get('top_k')} per request; "
            f"{e.get('warmup')} warm-up requests (offline: users) untimed before each scenario "
            f"(counts and times in the manifest). Percentiles are nearest-rank; n/a "
            f"(had/needs): too few timed requests for that percentile. peak_memory_mb: "
            f"additional memory during fit (CUDA allocator on GPU, sampled process RSS on "
            f"CPU). fit_seconds of LLM recommenders excludes loading the weights when the "
            f"accuracy pass already loaded them (memoized per process). `null` models score "
            f"nothing: their latency is the harness's own overhead (constant scores also take "
            f"top-k's tie-breaking sort). Wall-clock timings on a shared machine are noisy."
            + (_HISTORY_NOTE if any(_history_len([r]) for r in records) else ""), ""]
