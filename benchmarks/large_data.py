"""Large data in bounded memory: wall time and peak memory per stage and model.

    python benchmarks/large_data.py --size 1m                   # 50k users x 20k items, 1M
    python benchmarks/large_data.py --size 10m --max-users 20000 --models pop,bpr
    python benchmarks/large_data.py --size 1m --atomic          # through RecBole atomic files
    python benchmarks/large_data.py --size 1m --baseline-rev 00bf470 --max-users 5000

Stages: `dataset` (generate the seeded synthetic data and build the Dataset, or with --atomic
read it back from .inter/.item/.user files written beforehand, untimed), `split` (random
holdout 0.8/0.1/0.1 with its leakage checks), `candidates` (full ranking: every item minus the
user's history), then per model `fit` and `evaluate` (the accuracy pass's scoring, masking,
top-k and six metrics at k = 5, 10, 20 over every evaluated user, batch 256).

Memory is the additional peak resident set size of the stage (harness.efficiency.memory,
sampled every 5 ms) and the process's RSS after it; the dense users x items matrix the data
would need is printed for scale. `scores/s` is users x items / evaluate seconds; the bound is
what `torch.topk(k=20)` alone reaches on a float32 matrix of the same batch shape.
`--baseline-rev REV` also times the evaluation with harness/evaluate.py and the model's module
as they were at git revision REV (same data, same process, old and new alternately `--repeats`
times, medians) and prints the speed-up, split into the time inside the model's `score()` and
the rest (masking, top-k, hits, metrics, index work: the evaluation's own work).
Timings on a shared machine are noisy: read the ratios, and the thread count printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.candidates import full_candidates, subsample_users  # noqa: E402
from harness.data.registry import load_atomic_dir  # noqa: E402
from harness.efficiency.memory import PeakMemory, _rss_reader  # noqa: E402
from harness.evaluate import evaluate  # noqa: E402
from harness.fitting import fit_model  # noqa: E402
from harness.options import FitOptions  # noqa: E402
from harness.splits.make import make_split  # noqa: E402

SIZES = {"100k": (5_000, 2_000, 100_000), "1m": (50_000, 20_000, 1_000_000),
         "10m": (1_000_000, 100_000, 10_000_000)}
METRICS = ["ndcg", "recall", "precision", "mrr", "hit", "map"]
KS = [5, 10, 20]
BATCH = 256
MB = 2 ** 20
READ_RSS = _rss_reader()[0]


def stage(rows: list, name: str, model: str, n: int, fn):
    """Run fn() measuring wall time and peak memory; append a row; return fn's value."""
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        value = fn()
        wall = time.perf_counter() - t0
    rows.append({"interactions": n, "stage": name, "model": model, "wall_s": round(wall, 2),
                 "peak_extra_mb": round(mem.result()["peak_mb"], 1),
                 "rss_after_mb": round(READ_RSS() / MB, 1)})
    print(f"  {name:10s} {model:8s} {wall:9.2f} s  +{mem.result()['peak_mb']:9.1f} MB peak",
          flush=True)
    return value


def write_atomic(directory: Path, n_users: int, n_items: int, n: int) -> None:
    from harness.data.synthetic import synthetic_tables
    inter, items, users = synthetic_tables(n_users, n_items, n, seed=0)
    heads = {"inter": ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
             "item": ["item_id:token", "movie_title:token_seq", "release_year:token",
                      "class:token_seq"],
             "user": ["user_id:token", "age:token", "gender:token", "occupation:token"]}
    for kind, table in (("inter", inter), ("item", items), ("user", users)):
        table.to_csv(directory / f"big.{kind}", sep="\t", index=False, header=heads[kind])


def module_at(rev: str, path: str, name: str):
    """The module `path` as it was at git revision `rev` (imported under `name`)."""
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is made
    exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)  # noqa: S102 - our own history
    return mod


def topk_bound(n_users: int, n_items: int) -> float:
    """Scores/s of torch.topk(k=20) alone over float32 (256, n_items) batches."""
    x = torch.rand(BATCH, n_items, generator=torch.Generator().manual_seed(0))
    torch.topk(x, max(KS), dim=1)
    reps = max(1, min(50, n_users // BATCH))
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.topk(x, max(KS), dim=1)
    return reps * BATCH * n_items / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=SIZES, default="1m")
    ap.add_argument("--models", default="pop,itemknn,bpr,als,ease")
    ap.add_argument("--max-users", type=int, help="evaluate a seeded subset of users")
    ap.add_argument("--atomic", action="store_true", help="load through atomic files")
    ap.add_argument("--baseline-rev", help="also time the evaluation at this git revision")
    ap.add_argument("--repeats", type=int, default=3, help="alternating timings per side "
                                                         "(with --baseline-rev; medians)")
    ap.add_argument("--param", action="append", default=[], metavar="MODEL.KEY=VALUE",
                    help="a model parameter, e.g. bpr.epochs=2 (repeatable; value as TOML)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, help="also write the table as CSV here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_users, n_items, n = SIZES[args.size]
    params: dict = {}
    for item in args.param:
        import tomllib
        key, _, value = item.partition("=")
        model, _, name = key.partition(".")
        params.setdefault(model, {})[name] = tomllib.loads(f"v = {value}")["v"]
    print(f"{args.size}: {n_users:,} users x {n_items:,} items, {n:,} interactions "
          f"(dense users x items float32 would be {n_users * n_items * 4 / 2**30:,.1f} GiB); "
          f"torch threads {torch.get_num_threads()}; shared machine: timings are noisy")
    rows: list = []
    with tempfile.TemporaryDirectory(prefix="large-data-") as tmp:
        if args.atomic:
            write_atomic(Path(tmp), n_users, n_items, n)
            ds = stage(rows, "dataset", "atomic", n, lambda: load_atomic_dir(Path(tmp)))
        else:
            from harness.data import load_dataset
            ds = stage(rows, "dataset", "synthetic", n,
                       lambda: load_dataset("synthetic", n_users=n_users, n_items=n_items,
                                            n_interactions=n, seed=0))
    split = stage(rows, "split", "-", n, lambda: make_split(
        ds, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}, 0))
    cand = stage(rows, "candidates", "-", n, lambda: full_candidates(
        split, "test", args.max_users, 0))
    users = len(cand.users)
    bound = topk_bound(users, ds.n_items)
    speed = []
    for name in [m for m in args.models.split(",") if m]:
        try:
            model = stage(rows, "fit", name, n, lambda: fit_model(
                name, params.get(name, {}), 0, split, FitOptions()))
        except Exception as exc:  # noqa: BLE001 - a model that refuses the size is a result
            print(f"  fit        {name:8s} refused: {type(exc).__name__}: {exc}")
            rows.append({"interactions": n, "stage": "fit", "model": name,
                         "wall_s": None, "peak_extra_mb": None, "rss_after_mb": None,
                         "note": f"refused: {exc}"})
            continue
        ev = stage(rows, "evaluate", name, n, lambda: evaluate(
            model.score, cand, KS, METRICS, BATCH, keep_top=True, model=model))
        secs = rows[-1]["wall_s"]
        rows[-1]["scores_per_s"] = f"{users * ds.n_items / secs:.3g}"
        rows[-1]["topk_bound_scores_per_s"] = f"{bound:.3g}"
        if args.baseline_rev:
            speed.append(compare(args.baseline_rev, name, params.get(name, {}), split, cand,
                                 model, users, args.repeats))
            print(f"  vs {args.baseline_rev}: {speed[-1]}", flush=True)
        del model
    table = pd.DataFrame(rows)
    print(f"\n{users:,} evaluated users; " + table.to_string(index=False))
    if speed:
        print(f"\nevaluation vs {args.baseline_rev} (harness/evaluate.py and the model module "
              f"at that revision, same data, same process, alternating, medians):")
        print(pd.DataFrame(speed).to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


def compare(rev: str, name: str, params: dict, split, cand, model, users: int,
            repeats: int) -> dict:
    """Time the evaluation with the current code and with evaluate.py and the model class at
    `rev`, alternately `repeats` times each (medians: the load of a shared machine drifts);
    check that both give the same per-user values."""
    from harness import registry
    old_eval = module_at(rev, "harness/evaluate.py", f"_old_evaluate_{rev}")
    cls = registry.resolve(name)
    path = cls.__module__.replace(".", "/") + ".py"
    old_cls = getattr(module_at(rev, path, f"_old_{name}_{rev}"), cls.__name__)
    old_model = old_cls(**params, seed=0)
    old_model.fit(split, split.dataset)
    times: dict = {"before": [], "after": []}
    scoring: dict = {"before": [], "after": []}  # seconds inside the model's score()
    for _ in range(repeats):
        for label, ev_mod, m in (("after", sys.modules["harness.evaluate"], model),
                                 ("before", old_eval, old_model)):
            spent = [0.0]

            def timed_score(u, i, score=m.score, spent=spent):
                t = time.perf_counter()
                out = score(u, i)
                spent[0] += time.perf_counter() - t
                return out
            t0 = time.perf_counter()
            ev = ev_mod.evaluate(timed_score, cand, KS, METRICS, BATCH, keep_top=True, model=m)
            times[label].append(time.perf_counter() - t0)
            scoring[label].append(spent[0])
            out = ev if label == "after" else out
            ref = ev if label == "before" else None
        same = all(np.array_equal(ref.values[k], out.values[k]) for k in ref.values)
    before, after = float(np.median(times["before"])), float(np.median(times["after"]))
    own = [float(np.median(np.subtract(times[s], scoring[s]))) for s in ("before", "after")]
    return {"model": name, "users": users, "repeats": repeats, "before_s": round(before, 2),
            "after_s": round(after, 2), "speed_up": round(before / after, 2),
            "scoring_s_before/after": f"{np.median(scoring['before']):.2f}/"
                                      f"{np.median(scoring['after']):.2f}",
            "rest_s_before/after": f"{own[0]:.2f}/{own[1]:.2f}",
            "rest_speed_up": round(own[0] / own[1], 2), "metrics_identical": same}


if __name__ == "__main__":
    sys.exit(main())
