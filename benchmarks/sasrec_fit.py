"""Native `sasrec` vs `recbole:SASRec` with matched hyperparameters: fit time and test NDCG@10.

Data: ml-100k, leave_one_out, full ranking (train + valid history excluded), harness metrics
for both models. Matched: max_len = MAX_ITEM_LIST_LENGTH, hidden size, layers, heads, inner
size, dropouts, learning rate, batch size (target positions = RecBole's prefixes), epochs and
patience; both early-stop on NDCG@10 of the valid part (RecBole: its evaluator on rows (train
history -> valid item), no history masking; native: the harness's full valid ranking). Both
run on the CPU with the same torch thread count (--threads, set for this process only).
Prints one line per (seed, model), then the fit-time ratio and the NDCG@10 difference.

    python benchmarks/sasrec_fit.py                       # defaults below, seed 0
    python benchmarks/sasrec_fit.py --max-len 50 --epochs 200 --patience 10 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from harness.candidates import full_candidates
from harness.data import load_dataset
from harness.evaluate import evaluate
from harness.registry import build
from harness.splits import make_split
from harness.threads import contained


def held_out_metrics(model, cand) -> dict:
    ev = evaluate(model.score, cand, [10], ["ndcg", "recall"], batch_size=256, model=model)
    return {f"{m}@10": float(ev.values[(m, 10)].mean()) for m in ("ndcg", "recall")}


def matched(args) -> tuple[dict, dict]:
    """(native params, RecBole params) with the same meaning."""
    native = {"max_len": args.max_len, "hidden_size": args.hidden, "n_layers": args.layers,
              "n_heads": args.heads, "inner_size": 4 * args.hidden,
              "hidden_dropout": args.dropout, "attn_dropout": args.dropout, "lr": args.lr,
              "batch_size": args.batch_size, "epochs": args.epochs, "patience": args.patience,
              "stride": args.stride, "device": "cpu"}
    recbole = {"MAX_ITEM_LIST_LENGTH": args.max_len, "hidden_size": args.hidden,
               "n_layers": args.layers, "n_heads": args.heads, "inner_size": 4 * args.hidden,
               "hidden_dropout_prob": args.dropout, "attn_dropout_prob": args.dropout,
               "learning_rate": args.lr, "train_batch_size": args.batch_size,
               "epochs": args.epochs, "stopping_step": args.patience,
               "valid_metric": "NDCG@10", "device": "cpu"}
    return native, recbole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--stride", type=int, default=10, help="native only (see baselines.sasrec)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["sasrec", "recbole:SASRec"])
    args = ap.parse_args()

    ds = load_dataset("ml-100k")
    split = make_split(ds, "leave_one_out", {}, 0)
    cand = full_candidates(split, "test")
    native, recbole = matched(args)
    params = {"sasrec": native, "recbole:SASRec": recbole}
    print(f"ml-100k leave_one_out, {len(cand.users)} test users, full ranking; torch threads "
          f"{args.threads}; matched: {json.dumps(native)}")
    rows = []
    with contained():
        torch.set_num_threads(args.threads)
        for seed in args.seeds:
            for name in args.models:
                model = build(name, params[name], seed=seed)
                t0 = time.perf_counter()
                model.fit(split, ds)
                fit_s = time.perf_counter() - t0
                metrics = held_out_metrics(model, cand)
                info = {k: model.info.get(k) for k in ("best_epoch", "epochs_run")}
                rows.append({"seed": seed, "model": name, "fit_s": fit_s, **metrics, **info})
                print(f"seed {seed}  {name:15s} fit {fit_s:8.1f} s  "
                      f"NDCG@10 {metrics['ndcg@10']:.4f}  Recall@10 {metrics['recall@10']:.4f}  "
                      f"best epoch {info['best_epoch']} of {info['epochs_run']}", flush=True)
    if set(args.models) == {"sasrec", "recbole:SASRec"}:
        by = {m: [r for r in rows if r["model"] == m] for m in args.models}
        fit = {m: float(np.mean([r["fit_s"] for r in by[m]])) for m in by}
        ndcg = {m: float(np.mean([r["ndcg@10"] for r in by[m]])) for m in by}
        per_epoch = {m: float(np.mean([r["fit_s"] / r["epochs_run"] for r in by[m]]))
                     for m in by}
        print(f"fit time recbole:SASRec / sasrec = {fit['recbole:SASRec'] / fit['sasrec']:.2f} "
              f"(per epoch: {per_epoch['recbole:SASRec'] / per_epoch['sasrec']:.2f}); "
              f"threads {args.threads}")
        diff = ndcg["sasrec"] - ndcg["recbole:SASRec"]
        print(f"mean NDCG@10 sasrec {ndcg['sasrec']:.4f}  recbole:SASRec "
              f"{ndcg['recbole:SASRec']:.4f}  difference {diff:+.4f} "
              f"({'within' if abs(diff) <= 0.005 else 'outside'} 0.005)")


if __name__ == "__main__":
    main()
