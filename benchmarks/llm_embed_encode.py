"""llm-embed item encoding vs sentence-transformers `encode`: same model, texts and device.

    python benchmarks/llm_embed_encode.py --batch-size 64 --repeats 3

Encodes the 1,682 ml-100k item texts with MiniLM (offline) after one warm-up pass each, the
runs interleaved so that every variant sees the same machine state, and prints the median
items/s of each, each variant's ratio to sentence-transformers and the max embedding
difference. Variants: the harness with `--batch-size` rows per batch (the same batching as
sentence-transformers), and the harness with batches chosen by token budget only
(`--token-budget`, 0 = the device's default). The model runs in the loader's dtype for the
device (float32 on CPU, bf16/fp16 on CUDA; sentence-transformers is given the same module
dtype). Torch threads are printed; on CUDA the device is synchronized around each timed region.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from harness.data import load_dataset
from harness.llm.encoder import default_token_budget, encode
from harness.llm.loading import load_encoder, resolve_model, select_device
from harness.llm.text import item_texts


def _timed(fn, device) -> tuple[float, np.ndarray]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def main() -> None:
    from sentence_transformers import SentenceTransformer
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--token-budget", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    texts, _ = item_texts(load_dataset("ml-100k"))
    device = select_device("auto")
    tok, model = load_encoder("minilm")
    dtype = next(model.parameters()).dtype
    budget = args.token_budget or default_token_budget(device)
    st = SentenceTransformer(resolve_model("minilm").path, device=str(device))
    st.to(dtype)
    variants = {
        "harness_batch": lambda: encode(tok, model, texts, args.batch_size, 128),
        "harness_budget": lambda: encode(tok, model, texts, None, 128, token_budget=budget),
        "sentence_transformers": lambda: st.encode(texts, batch_size=args.batch_size,
                                                   normalize_embeddings=True,
                                                   convert_to_numpy=True),
    }
    for fn in variants.values():  # warm-up, excluded
        fn()
    times = {k: [] for k in variants}
    outs = {}
    for _ in range(args.repeats):  # interleaved so all see the same machine state
        for name, fn in variants.items():
            t, outs[name] = _timed(fn, device)
            times[name].append(t)
    ips = {k: len(texts) / statistics.median(v) for k, v in times.items()}
    ref = ips["sentence_transformers"]
    st_out = outs["sentence_transformers"].astype(np.float32)
    print(json.dumps({
        "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(), "items": len(texts),
        "batch_size": args.batch_size, "token_budget": budget, "repeats": args.repeats,
        "harness_items_per_s": round(ips["harness_batch"], 1),
        "harness_budget_items_per_s": round(ips["harness_budget"], 1),
        "sentence_transformers_items_per_s": round(ref, 1),
        "ratio": round(ips["harness_batch"] / ref, 3),
        "ratio_budget": round(ips["harness_budget"] / ref, 3),
        "max_abs_diff": float(np.abs(outs["harness_batch"] - st_out).max()),
        "max_abs_diff_budget": float(np.abs(outs["harness_budget"] - st_out).max())},
        indent=2))


if __name__ == "__main__":
    main()
