"""llm-embed item encoding vs sentence-transformers `encode`: same model, texts and batch size.

    python benchmarks/llm_embed_encode.py --batch-size 64 --repeats 3

Encodes the 1,682 ml-100k item texts with MiniLM (offline) both ways, after one warm-up pass
each, and prints the median items/s of each, their ratio, and the max embedding difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from harness.data import load_dataset
from harness.llm.encoder import encode
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
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    texts, _ = item_texts(load_dataset("ml-100k"))
    device = select_device("auto")
    tok, model = load_encoder("minilm")
    st = SentenceTransformer(resolve_model("minilm").path, device=str(device))
    ours = lambda: encode(tok, model, texts, args.batch_size, 128)  # noqa: E731
    theirs = lambda: st.encode(texts, batch_size=args.batch_size,  # noqa: E731
                               normalize_embeddings=True, convert_to_numpy=True)
    ours(), theirs()  # warm-up, excluded
    t_ours, t_theirs, a, b = [], [], None, None
    for _ in range(args.repeats):  # interleaved so both see the same machine state
        t, a = _timed(ours, device)
        t_ours.append(t)
        t, b = _timed(theirs, device)
        t_theirs.append(t)
    ips_ours = len(texts) / statistics.median(t_ours)
    ips_theirs = len(texts) / statistics.median(t_theirs)
    print(json.dumps({"device": str(device), "torch_threads": torch.get_num_threads(),
                      "items": len(texts), "batch_size": args.batch_size,
                      "harness_items_per_s": round(ips_ours, 1),
                      "sentence_transformers_items_per_s": round(ips_theirs, 1),
                      "ratio": round(ips_ours / ips_theirs, 3),
                      "max_abs_diff": float(np.abs(a - b).max())}, indent=2))


if __name__ == "__main__":
    main()
