"""Fit time of the native baselines vs their peer-library twins, measured in one run.

The pairs and hyperparameters are those of suites/parity-peers.toml (ease / cornac:EASE,
als / implicit:ALS, bpr / cornac:BPR, itemknn-cosine / implicit:CosineRecommender), on its
ml-100k split. Each model is fitted once untimed first (imports, first-call costs; this also
loads every BLAS/OpenMP pool before the limits apply), then native and peer fits alternate
`--repeats` times; the median fit wall time of each side and the ratio native / peer are
printed, with test NDCG@10 of the last fit of each side (quality must be equal for the ratio to
mean anything). Thread modes:

- `single`: torch intra-op threads 1, every BLAS/OpenMP pool limited to 1 (threadpoolctl), and
  `num_threads = 1` for peers that take it;
- `default`: the process's own settings and the peers' defaults (implicit `num_threads = 0`:
  all cores; Cornac's BPR runs on one thread whenever a seed is set, which the harness does).
  The peer's own `num_threads` after fitting is printed.

Run from the repository root:

    python benchmarks/peers_fit.py                       # both modes, 3 repeats
    python benchmarks/peers_fit.py --modes single --repeats 5 --pairs als bpr
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from harness import threads
from harness.candidates import full_candidates
from harness.data import load_dataset
from harness.evaluate import evaluate
from harness.registry import build, resolve
from harness.splits import get_split
from harness.suite import load_suite

SUITE = "suites/parity-peers.toml"
PAIRS = {"ease": ("ease", "cornac:EASE"), "als": ("als", "implicit:ALS"),
         "bpr": ("bpr", "cornac:BPR"),
         "itemknn": ("itemknn-cosine", "implicit:CosineRecommender")}


@contextlib.contextmanager
def thread_mode(mode: str):
    """`single`: torch and every threadpoolctl pool at 1 thread; `default`: unchanged."""
    if mode == "default":
        yield
        return
    from threadpoolctl import threadpool_limits
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def fit_seconds(spec, split, seed: int, mode: str):
    params = dict(spec.params)
    if ":" in spec.name and mode == "single":
        family, _, variant = spec.name.partition(":")
        accepts = resolve(spec.name).check_variant(variant, {})[0]["accepts"]
        if "num_threads" in accepts:
            params.setdefault("num_threads", 1)
    model = build(spec.name, params, seed=seed)
    t0 = time.perf_counter()
    model.fit(split, split.dataset)
    return time.perf_counter() - t0, model


def ndcg10(model, cand) -> float:
    ev = evaluate(model.score, cand, [10], ["ndcg"], batch_size=1024)
    return float(ev.values[("ndcg", 10)].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    ap.add_argument("--modes", nargs="+", default=["single", "default"],
                    choices=["single", "default"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    suite = load_suite(SUITE)
    specs = {m.label: m for m in suite.models}
    ds = load_dataset(suite.datasets[0].name)
    sp = suite.splits[0]
    split = get_split(ds, sp.protocol, sp.params, sp.seed)
    cand = full_candidates(split, "test")
    print(f"{SUITE}: {ds.name}, {sp.protocol} {sp.params} split seed {sp.seed}; model seed "
          f"{args.seed}; {args.repeats} timed fits per side (median), after one untimed fit")
    for pair in args.pairs:  # warm-up, untimed: imports and first calls load every thread pool
        for label in PAIRS[pair]:
            fit_seconds(specs[label], split, args.seed, "default")
    for mode in args.modes:
        with thread_mode(mode):
            settings = threads.snapshot()
            peer_threads = "num_threads=1" if mode == "single" else "their defaults"
            print(f"\n[{mode}] thread settings: {settings}; peers: {peer_threads}")
            print(f"{'pair':9} {'native s':>9} {'peer s':>9} {'native/peer':>11}  "
                  f"{'NDCG@10 native / peer':>22}   peer's own num_threads after fit")
            for pair in args.pairs:
                native, peer = (specs[label] for label in PAIRS[pair])
                times = {native.label: [], peer.label: []}
                models = {}
                for _ in range(args.repeats):
                    for spec in (native, peer):
                        sec, models[spec.label] = fit_seconds(spec, split, args.seed, mode)
                        times[spec.label].append(sec)
                tn, tp = (statistics.median(times[s.label]) for s in (native, peer))
                qn, qp = (ndcg10(models[s.label], cand) for s in (native, peer))
                lib_threads = getattr(models[peer.label].lib, "num_threads", "-")
                print(f"{pair:9} {tn:9.3f} {tp:9.3f} {tn / tp:11.2f}  "
                      f"{qn:10.4f} / {qp:.4f}   {lib_threads} ({native.label} vs {peer.label})",
                      flush=True)


if __name__ == "__main__":
    main()
