"""What gets trained in a pre-trained network: all of it (`full`) or LoRA adapters (`lora`, via
peft) on named linear layers. Checks target modules against the model's architecture (built on
the meta device: no weights are read), copies the shared base before changing anything, and
moves the trainable tensors in and out of the weight cache."""

from __future__ import annotations

import functools

import torch

from harness.errors import UserError, did_you_mean
from harness.llm.loading import resolve_model
from harness.llm.train import check_choice, check_positive, trainable_copy

ADAPTERS = ("full", "lora")


@functools.lru_cache(maxsize=8)
def linear_module_names(model: str, kind: str, allow_download: bool = False) -> tuple[str, ...]:
    """Sorted last name components of the Linear layers of `model` (kind 'encoder' or
    'causal'): the names a LoRA `target_modules` entry may use."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    ref = resolve_model(model)
    kw = {"local_files_only": not allow_download}
    if ref.gguf_file:
        kw["gguf_file"] = ref.gguf_file
    try:
        config = AutoConfig.from_pretrained(ref.path, **kw)
    except (OSError, ValueError) as exc:
        raise UserError(f"model '{model}' cannot be loaded offline: {exc}") from exc
    cls = AutoModelForCausalLM if kind == "causal" else AutoModel
    with torch.device("meta"):
        net = cls.from_config(config)
    return tuple(sorted({name.rsplit(".", 1)[-1] for name, mod in net.named_modules()
                         if isinstance(mod, torch.nn.Linear)}))


def check_adapter(recommender: str, model: str, kind: str, adapter: str, targets: list,
                  r: int, alpha: float, allow_download: bool = False) -> None:
    """UserError for an unknown adapter, LoRA rank/alpha <= 0, or a LoRA target module the
    model lacks (with the valid names)."""
    check_choice(recommender, "adapter", adapter, ADAPTERS)
    if adapter != "lora":
        return
    check_positive(recommender, lora_r=r, lora_alpha=alpha)
    if not targets or not all(isinstance(t, str) for t in targets):
        raise UserError(f"recommender '{recommender}': lora_targets must be a non-empty list of "
                        f"module names, got {targets!r}")
    names = linear_module_names(model, kind, allow_download)
    for t in targets:
        if t not in names:
            raise UserError(f"recommender '{recommender}': lora_targets names '{t}', which model "
                            f"'{model}' lacks{did_you_mean(t, names)}")


def make_trainable(base: torch.nn.Module, device: torch.device, adapter: str, targets: list,
                   r: int, alpha: float, dropout: float) -> torch.nn.Module:
    """A trainable network from a shared base: a deep fp32 copy (the base is never modified),
    then, for `lora`, peft LoRA adapters (r, alpha, dropout) on `targets` with every base weight
    frozen. Call inside `train.seeded` so the adapter init is reproducible."""
    net = trainable_copy(base, device)
    if adapter == "full":
        return net
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
    return get_peft_model(net, cfg)


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters that require grad (LoRA adapters + heads, or everything)."""
    return {n: p.detach().cpu().clone() for n, p in module.named_parameters() if p.requires_grad}


def load_trainable(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a `trainable_state` back; every trainable parameter must be present (a stale or
    foreign cache entry is an error, not a silent partial load)."""
    want = {n for n, p in module.named_parameters() if p.requires_grad}
    if set(state) != want:
        missing, extra = sorted(want - set(state))[:3], sorted(set(state) - want)[:3]
        raise ValueError(f"cached weights do not match the network (missing {missing}, "
                         f"unexpected {extra})")
    module.load_state_dict(state, strict=False)


def count_parameters(module: torch.nn.Module) -> dict:
    """{'trainable_params', 'total_params'}."""
    total = sum(p.numel() for p in module.parameters())
    train_n = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"trainable_params": int(train_n), "total_params": int(total)}
