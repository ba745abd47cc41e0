"""llm-rank scorers side by side on the same users and candidates: batched across users
(`batched_scores` with pre-packed oneDNN linear weights on CPU float32, what llm-rank runs), one
user at a time with a shared-prefix KV cache (`cached_scores` on torch's plain linear layers, the
previous path), and the naive full-sequence reference (plain linear layers).

    python benchmarks/llm_rank_prefix.py --users 50 --candidates 20

Draws `--candidates` items per user (seeded) for the first `--users` ml-100k users (users
1..N; user 0 is the warm-up), and scores them with SmolLM2-135M (offline). The batched and
one-user paths are timed in alternation (`--repeats` rounds, median per path) so that both see
the same machine state; the naive path is timed once on the first `--naive-users` users (all
by default; it is several times slower) and serves as the reference: every path's scores must
agree with it to 1e-3. `--attribution` adds three more timed paths to split the gain:
batched on plain linear layers (`batched_plain`), batched with one dense block-causal mask
instead of the windowed candidate attention (`batched_dense`), and one-user on packed weights
(`one_user_packed`).
Prints users/s per path, the batched / one-user ratio, tokens, torch
threads and device. Model loading is excluded; one warm-up user per path is run (excluded).
On CUDA the device is synchronized around each timed region.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from harness.data import load_dataset
from harness.llm.likelihood import batched_scores, cached_scores, naive_scores
from harness.llm.rank import LLMRank
from harness.splits import make_split


def _timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--history-len", type=int, default=10)
    ap.add_argument("--naive-batch", type=int, default=20)
    ap.add_argument("--naive-users", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--token-budget", type=int, default=0, help="0: llm-rank's default")
    ap.add_argument("--pack-tokens", type=int, default=512)
    ap.add_argument("--attribution", action="store_true")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="auto", help="llm-rank's dtype (auto: float32 on CPU, "
                    "bfloat16 on CUDA); the naive reference runs in the same dtype")
    args = ap.parse_args()
    ds = load_dataset("ml-100k")
    split = make_split(ds, "random_holdout", {}, seed=0)
    model = LLMRank(model=args.model, history_len=args.history_len,
                    batch_size=args.candidates, token_budget=args.token_budget,
                    pack_tokens=args.pack_tokens, dtype=args.dtype)
    model.runtime = {"quiet": True}
    model.fit(split, ds)
    lm, pad = model.lm, model.tok.pad_token_id
    device = next(lm.parameters()).device
    budget = model._budget()
    rng = np.random.default_rng(0)
    work = [(model.prompt_ids(u), [model.item_ids[i] for i in
                                   rng.choice(ds.n_items, args.candidates, replace=False)])
            for u in range(args.users + 1)]
    prompts, cands = [p for p, _ in work[1:]], [c for _, c in work[1:]]
    packed = model.packed

    def batched(ps, cs, attention="auto"):
        return batched_scores(lm, ps, cs, "mean", pad, budget, args.pack_tokens,
                              attention=attention)

    def one_user(ps, cs):
        return [cached_scores(lm, p, c, args.candidates, "mean", pad) for p, c in zip(ps, cs)]

    def with_packed(fn):
        def run(ps, cs):
            with packed:
                return fn(ps, cs)
        return run

    paths = {"batched": with_packed(batched), "one_user": one_user}
    if args.attribution:
        paths.update(batched_plain=batched,
                     batched_dense=with_packed(lambda ps, cs: batched(ps, cs, "dense")),
                     one_user_packed=with_packed(one_user))

    def naive(ps, cs):
        return [naive_scores(lm, p, c, args.naive_batch, "mean", pad) for p, c in zip(ps, cs)]

    for fn in [*paths.values(), naive]:  # warm-up, excluded
        fn([work[0][0]], [work[0][1]])
    times, scores = {name: [] for name in paths}, {}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            t, scores[name] = _timed(lambda: fn(prompts, cands), device)
            times[name].append(t)
    n_naive = args.users if args.naive_users is None else min(args.naive_users, args.users)
    t_naive, ref = _timed(lambda: naive(prompts[:n_naive], cands[:n_naive]), device)
    diffs = {name: max((float((a.cpu() - b).abs().max()) for a, b in
                        zip(scores[name][:n_naive], ref)), default=0.0) for name in paths}
    secs = {k: statistics.median(v) for k, v in times.items()}
    out = {"device": str(device), "dtype": str(next(lm.parameters()).dtype),
           "packed_weights": packed.enabled,
           "torch_threads": torch.get_num_threads(),
           "torch_interop_threads": torch.get_num_interop_threads(),
           "users": args.users, "candidates": args.candidates, "repeats": args.repeats,
           "token_budget": budget, "pack_tokens": args.pack_tokens,
           "mean_prompt_tokens": round(float(np.mean([len(p) for p in prompts])), 1),
           "mean_candidate_tokens": round(float(np.mean([len(x) for c in cands for x in c])), 1),
           **{f"{k}_s": [round(t, 3) for t in v] for k, v in times.items()},
           **{f"{k}_users_per_s": round(args.users / secs[k], 3) for k in secs},
           "speedup_batched_vs_one_user": round(secs["one_user"] / secs["batched"], 2),
           "naive_users": n_naive, "naive_s": round(t_naive, 3),
           "naive_users_per_s": round(n_naive / t_naive, 3) if n_naive else None,
           "max_abs_diff_vs_naive": diffs}
    print(json.dumps(out, indent=2))
    if out["dtype"] == "torch.float32":  # bfloat16 paths differ in rounding: reported only
        assert max(diffs.values()) <= 1e-3, f"scores differ from the naive reference: {diffs}"


if __name__ == "__main__":
    main()
