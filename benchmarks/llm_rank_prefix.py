"""llm-rank: shared-prefix KV cache vs the naive full-sequence scorer, same candidates and users.

    python benchmarks/llm_rank_prefix.py --users 50 --candidates 20

Draws `--candidates` items per user (seeded) for the first `--users` ml-100k users with a train
history, scores them both ways with SmolLM2-135M (offline), checks the scores agree to 1e-3 and
prints both wall times and their ratio. Model loading is excluded; one warm-up user is run
(and excluded) for each path. On CUDA the device is synchronized around each timed region.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from harness.data import load_dataset
from harness.llm.likelihood import cached_scores, naive_scores
from harness.llm.rank import LLMRank
from harness.splits import make_split


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--history-len", type=int, default=10)
    ap.add_argument("--naive-batch", type=int, default=20)
    args = ap.parse_args()
    ds = load_dataset("ml-100k")
    split = make_split(ds, "random_holdout", {}, seed=0)
    model = LLMRank(history_len=args.history_len, batch_size=args.candidates)
    model.fit(split, ds)
    device = next(model.lm.parameters()).device
    rng = np.random.default_rng(0)
    users = list(range(args.users + 1))
    work = [(model.prompt_ids(u), [model.item_ids[i] for i in
                                   rng.choice(ds.n_items, args.candidates, replace=False)])
            for u in users]
    pad = model.tok.pad_token_id
    results, times = {}, {}
    for name, fn, batch in (("prefix_cache", cached_scores, args.candidates),
                            ("naive", naive_scores, args.naive_batch)):
        fn(model.lm, *work[0], batch, "mean", pad)  # warm-up, excluded
        _sync(device)
        t0 = time.perf_counter()
        results[name] = [fn(model.lm, p, c, batch, "mean", pad) for p, c in work[1:]]
        _sync(device)
        times[name] = time.perf_counter() - t0
    diff = max(float((a - b).abs().max()) for a, b in zip(results["prefix_cache"],
                                                          results["naive"]))
    prompt_tokens = float(np.mean([len(p) for p, _ in work[1:]]))
    cand_tokens = float(np.mean([np.mean([len(x) for x in c]) for _, c in work[1:]]))
    out = {"device": str(device), "torch_threads": torch.get_num_threads(),
           "users": args.users, "candidates": args.candidates,
           "mean_prompt_tokens": round(prompt_tokens, 1),
           "mean_candidate_tokens": round(cand_tokens, 1),
           "prefix_cache_s": round(times["prefix_cache"], 3), "naive_s": round(times["naive"], 3),
           "speedup": round(times["naive"] / times["prefix_cache"], 2),
           "max_abs_score_diff": diff}
    print(json.dumps(out, indent=2))
    assert diff <= 1e-3, f"scores differ by {diff}"


if __name__ == "__main__":
    main()
