"""Model cost facts (stored parameters, dtype, device), work counters, and the device record.

`params` counts the floating-point scalars a fitted recommender holds, found by walking its
attributes (and dicts / lists / tuples of them, two levels deep; `info` and `runtime` skipped):
torch modules (their parameters), tensors, numpy arrays, and scipy sparse matrices (their
stored values, nnz). Integer and boolean arrays (histories, indices, masks) are not counted, and
storage shared by several attributes is counted once. For neural models this is the parameter
count; for classic models it is the size of their learned (or memorized) state, e.g. EASE's
n_items^2 weights, item-KNN's kept similarities plus the float training matrix it scores from,
ALS/BPR's user and item factors. Models that load a network only transiently (llm-embed keeps
the embeddings, not the encoder) count what they keep.

Work counters, read from `model.info` before and after a timed region (duck-typed, optional):
tokens = prompt_tokens + candidate_tokens + tokens_processed (llm-rank exposes the first two);
items embedded = `items_embedded`, or, for llm-embed's convention, round(<tag>_per_s *
<tag>_encode_s) summed over tags. Estimated FLOPs = 2 * (parameters of the torch modules the
model holds) * tokens: the dense forward-pass cost, ignoring attention's sequence-length term.
Model FLOP/s utilization: mfu = flops_per_s / the device's peak FLOP/s, the peak from the
suite's `[efficiency] peak_tflops`, else, on a GPU listed in `PEAK_BF16_FLOPS`, NVIDIA's dense
(no sparsity) bf16 tensor-core figure for it (an fp32 model is measured against that peak too);
no peak, no mfu.

History length: a model that scores from a user's history may declare
`history_len_used(users) -> array` (per harness user index, the number of history items it
reads, e.g. min(len(history), max_len) for sequential models); the latency scenarios record its
mean and max over the timed requests. Models that declare nothing get no such record.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

TOKEN_KEYS = ("prompt_tokens", "candidate_tokens", "tokens_processed")
# (substring of torch.cuda.get_device_name, dense bf16 FLOP/s from NVIDIA's data sheets), most
# specific first
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12),
                   ("H200 NVL", 835e12), ("H200", 989e12), ("A100", 312e12),
                   ("L40S", 362e12))
SKIP = {"info", "runtime"}


def model_state(model) -> dict:
    """{params, bytes, dtype (by element count), dtypes, module_params, devices}."""
    seen: set = set()
    acc = {"params": 0, "bytes": 0, "module_params": 0, "dtypes": {}, "devices": set()}

    def count(key, n: int, itemsize: int, dtype: str, device: str, module: bool = False):
        if key in seen:
            return
        seen.add(key)
        acc["params"] += n
        acc["bytes"] += n * itemsize
        acc["dtypes"][dtype] = acc["dtypes"].get(dtype, 0) + n
        acc["devices"].add(device)
        if module:
            acc["module_params"] += n

    def tensor(t: torch.Tensor, module: bool = False):
        acc["devices"].add(str(t.device.type))
        if t.is_floating_point() and not t.is_sparse:
            count(("t", t.device.type, t.data_ptr(), t.numel()), t.numel(), t.element_size(),
                  str(t.dtype).replace("torch.", ""), t.device.type, module)

    def array(a: np.ndarray):
        if np.issubdtype(a.dtype, np.floating):
            count(("a", a.__array_interface__["data"][0], a.size), a.size, a.itemsize,
                  str(a.dtype), "cpu")

    def visit(v, depth: int):
        if isinstance(v, torch.nn.Module):
            for p in v.parameters():
                tensor(p.detach(), module=True)
        elif isinstance(v, torch.Tensor):
            tensor(v.detach())
        elif isinstance(v, np.ndarray):
            array(v)
        elif hasattr(v, "tocsr") and hasattr(v, "data") and hasattr(v, "nnz"):
            array(np.asarray(v.data))
        elif depth < 2 and isinstance(v, dict):
            for x in list(v.values())[:100_000]:
                visit(x, depth + 1)
        elif depth < 2 and isinstance(v, (list, tuple)):
            for x in v[:100_000]:
                if isinstance(x, (int, float, str)):
                    return  # a list of scalars (e.g. token ids): no tensors in it
                visit(x, depth + 1)

    for name, value in vars(model).items():
        if name not in SKIP:
            visit(value, 0)
    dtypes = acc["dtypes"]
    return {"params": int(acc["params"]), "bytes": int(acc["bytes"]),
            "module_params": int(acc["module_params"]),
            "dtype": max(dtypes, key=dtypes.get) if dtypes else None, "dtypes": dtypes,
            "devices": sorted(acc["devices"])}


def counters(model) -> dict:
    """{'tokens': int | None, 'items_embedded': int | None} from `model.info` (None: the model
    exposes no such count)."""
    info = getattr(model, "info", None)
    info = info if isinstance(info, dict) else {}
    tok = [info[k] for k in TOKEN_KEYS if isinstance(info.get(k), (int, float))]
    items = None
    if isinstance(info.get("items_embedded"), (int, float)):
        items = int(info["items_embedded"])
    else:
        tags = [k[: -len("_encode_s")] for k in info if k.endswith("_encode_s")]
        derived = [round(float(info[f"{t}_per_s"]) * float(info[f"{t}_encode_s"]))
                   for t in tags if isinstance(info.get(f"{t}_per_s"), (int, float))]
        items = int(sum(derived)) if derived else None
    return {"tokens": int(sum(tok)) if tok else None, "items_embedded": items}


def history_lengths(model, users: np.ndarray) -> dict | None:
    """{'mean', 'max'} of `model.history_len_used(users)` (None when the model declares no
    history length or there are no users)."""
    fn = getattr(model, "history_len_used", None)
    if not callable(fn) or not len(users):
        return None
    n = np.asarray(fn(torch.from_numpy(np.asarray(users, np.int64))), dtype=float)
    return {"mean": round(float(n.mean()), 4), "max": int(n.max())}


def delta(before: dict, after: dict) -> dict:
    """after - before per counter; None where the model exposes no count."""
    return {k: (None if after.get(k) is None else after[k] - (before.get(k) or 0))
            for k in after}


def scoring_device(model, state: dict | None = None) -> str:
    """'cuda' when the fitted model holds CUDA tensors or modules, else 'cpu' (BPR, say, trains
    on CUDA but scores from CPU copies of its factors)."""
    state = state or model_state(model)
    if "cuda" in state["devices"]:
        return "cuda"
    return "cpu"


def declared_device(model) -> str:
    return str(getattr(model, "device", "cpu") or "cpu").split(":")[0]


@functools.lru_cache(maxsize=1)
def _machine() -> dict:
    from harness.environment import machine_info
    return machine_info()


def device_record(device: str) -> dict:
    """What the timings ran on: torch, threads (as in effect now), CPU, and for CUDA the GPU
    name, capability, memory, driver, CUDA and cuDNN versions."""
    m = _machine()
    rec = {"device": device, "torch": torch.__version__, "cpu": m.get("cpu"),
           "cpu_count": m.get("cpu_count"), "torch_threads": torch.get_num_threads(),
           "torch_interop_threads": torch.get_num_interop_threads(),
           "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
                           if os.environ.get(k) is not None}}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        rec.update(gpu=props.name, gpu_capability=f"{props.major}.{props.minor}",
                   gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                   gpu_count=torch.cuda.device_count(), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), driver=m.get("driver"))
    return rec


def peak_flops(record: dict, configured_tflops: float | None) -> dict | None:
    """{'value': FLOP/s, 'source': ...} for the device in `record` (see `device_record`):
    the suite's `peak_tflops` (x 1e12), else the data-sheet figure of a known GPU, else None."""
    if configured_tflops:
        return {"value": float(configured_tflops) * 1e12, "source": "[efficiency] peak_tflops"}
    gpu = record.get("gpu") if record.get("device", "").startswith("cuda") else None
    for name, value in PEAK_BF16_FLOPS if gpu else ():
        if name in gpu:
            return {"value": value, "source": f"NVIDIA data sheet, {name} dense bf16"}
    return None
