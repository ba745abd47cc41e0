"""CPU float32 inference with pre-packed linear weights (oneDNN).

torch runs a CPU float32 `nn.Linear` as an MKL sgemm on the row-major weight, every call. oneDNN
can keep each weight in its own blocked layout, packed once, and run the same product from it;
on the 2-core AVX-512 machine the project is measured on, the transformer's products reach
195-210 GFLOP/s that way against 135-190 through MKL, and the vocabulary projection of 64 rows
179 against 95 (`benchmarks/llm_rank_prefix.py` shows the effect on llm-rank as a whole).
The results are float32 products of the same numbers; only the summation order differs
(relative differences of about 1e-6, well inside the 1e-3 agreement the scorers are held to).

`packed_linears(model)` (one `PackedLinears` per model object in a process, so recommenders
sharing a loaded model share its packed copy) packs every `nn.Linear` weight once; `with it:` routes
their forward through the packed weights for the duration, in inference only (no autograd:
with gradients enabled, or for non-CPU / non-float32 input, the plain `F.linear` runs). A
weight changed in place since it was packed (its version counter or storage moved) is
re-packed on the next `with`. Where oneDNN is unavailable, or the model is not CPU float32,
`with packed:` changes nothing.
"""

from __future__ import annotations

import types
import weakref

import torch
import torch.nn.functional as F


def onednn_available() -> bool:
    """oneDNN is built into this torch and exposes its packed-linear ops."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._reorder_linear_weight is not None
                    and torch.ops.mkldnn._linear_pointwise is not None)
    except (AttributeError, RuntimeError):
        return False


def _weight_key(w: torch.Tensor) -> tuple[int, int]:
    return w.data_ptr(), w._version


def _forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
        return F.linear(x, module.weight, module.bias)
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), module._packed_weight,
                                               module.bias, "none", [], "")


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def packed_linears(model: torch.nn.Module) -> PackedLinears:
    """The process's `PackedLinears` of this model object (created on first use)."""
    if model not in _SHARED:
        _SHARED[model] = PackedLinears(model)
    return _SHARED[model]


class PackedLinears:
    """Packed oneDNN weights for every `nn.Linear` of `model` (CPU float32 only), used inside
    `with` blocks (re-entrant, not shared between threads)."""

    def __init__(self, model: torch.nn.Module):
        self.linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)
                        and "forward" not in vars(m)]  # leave hooked modules alone
        self.enabled = onednn_available() and bool(self.linears) and all(
            m.weight.device.type == "cpu" and m.weight.dtype == torch.float32
            for m in self.linears)
        self._packed: dict[int, tuple[tuple[int, int], torch.Tensor]] = {}
        self._depth = 0

    def prepare(self) -> None:
        """Pack now (else on the first `with`); weights already packed and unchanged are kept."""
        if self.enabled:
            self._pack()

    def _pack(self) -> None:
        for m in self.linears:
            key = _weight_key(m.weight)
            held = self._packed.get(id(m))
            if held is None or held[0] != key:
                with torch.no_grad():
                    packed = torch.ops.mkldnn._reorder_linear_weight(m.weight.detach(), None)
                self._packed[id(m)] = (key, packed)

    def __enter__(self) -> PackedLinears:
        if self.enabled and self._depth == 0:
            self._pack()
            for m in self.linears:
                m._packed_weight = self._packed[id(m)][1]
                m.forward = types.MethodType(_forward, m)
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self.enabled and self._depth == 0:
            for m in self.linears:
                vars(m).pop("forward", None)
                vars(m).pop("_packed_weight", None)
