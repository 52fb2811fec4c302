"""A server's fine-tuned model as a delta over the shared base: only what fine-tuning changed.

Fine-tuning (model.finetune) changes three kinds of tensor, and a delta stores each its own way:
    rows     tensors that grew by the new names: their appended rows (text prototypes, group embeddings,
             MaskGIT's code bank); the base's rows stay exactly as they were
    whole    small layers of the arch's tuned module (norms, biases, small convolutions), tuned whole
    adapter  large weights of that module, tuned through a low-rank adapter: W = W0 + B @ A (LoRA-style)
Everything else is the base's own tensor. A delta file (fp16, a few hundred KB) also holds the tuned
config, the new names' meta and the base's identity: the sha256 of the base checkpoint's bytes, so it
refuses to apply to any other base. Applying builds the tuned network around the base's tensors, shared
and not copied: a loaded server model costs its delta and its adapted weights, not a second base.

    payload = make_delta(base, base_meta, base_identity, tuned, meta)   # after fine-tuning
    model, meta = apply_delta(base, base_meta, base_identity, payload)  # serving
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from model.checkpoint import (
    DELTA_KIND,
    FORMAT_VERSION,
    SHIPPED_CHECKPOINT,
    CheckpointError,
    Meta,
    build_model,
    config_from,
    file_identity,
    model_from,
    read_payload,
)

ADAPTER_RANK = 16
WHOLE_LIMIT = 40_000  # weights of at most this many elements are tuned whole; larger ones get an adapter


class BaseMismatch(CheckpointError):
    """A delta met a base model other than the one it was fine-tuned from."""


def short(identity: str) -> str:
    return identity[:12]


# --------------------------------------------------------------------------------------------- training


class LowRank(nn.Module):
    """Parametrization W0 -> W0 + B @ A: B (out, r) starts at zero, so tuning starts from the base."""

    def __init__(self, weight: torch.Tensor, rank: int, generator: torch.Generator):
        super().__init__()
        inner = math.prod(weight.shape[1:])
        a = torch.randn(rank, inner, generator=generator) / math.sqrt(rank)  # (r, in)
        self.a = nn.Parameter(a.to(weight.device))
        self.b = nn.Parameter(torch.zeros(weight.shape[0], rank, device=weight.device))  # (out, r)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return merge(weight, self.a, self.b)


def merge(weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """W0 + B @ A in W0's shape: the one formula training and applying a delta share."""
    return weight + (b @ a).view_as(weight)


def add_adapters(
    model: nn.Module, prefix: str, generator: torch.Generator, rank: int = ADAPTER_RANK
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Make the submodule `prefix` tunable the delta way; the parameters to optimise: (tuned whole,
    adapters' factors), apart because the factors need a larger learning rate to move as far.

    Weights with more than WHOLE_LIMIT elements get a LowRank adapter (the weight itself stays frozen);
    the rest are tuned whole.
    """
    module = model.get_submodule(prefix)
    module.requires_grad_(False)
    tuned: list[nn.Parameter] = []
    factors: list[nn.Parameter] = []
    for name, param in list(module.named_parameters()):
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        if param.dim() >= 2 and param.numel() > WHOLE_LIMIT:
            adapter = LowRank(param, rank, generator)
            parametrize.register_parametrization(owner, leaf, adapter)
            factors += [adapter.a, adapter.b]
        else:
            param.requires_grad_(True)
            tuned.append(param)
    return tuned, factors


def _adapters(model: nn.Module) -> dict[str, LowRank]:
    """{state-dict key of the adapted weight: its adapter}."""
    found = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for leaf, plist in module.parametrizations.items():
                (adapter,) = [p for p in plist if isinstance(p, LowRank)]
                found[f"{name}.{leaf}" if name else leaf] = adapter
    return found


@torch.no_grad()
def bake(model: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """End of training: round what was tuned to fp16 (what a delta stores, so applying it reproduces this
    model exactly), merge the adapters into plain weights; {weight key: (A, B)} of the adapters."""
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point():
            param.copy_(param.half().float())
    adapters = {key: (lr.a.detach().clone(), lr.b.detach().clone()) for key, lr in _adapters(model).items()}
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            for leaf in list(module.parametrizations):
                parametrize.remove_parametrizations(module, leaf, leave_parametrized=True)
    return adapters


# --------------------------------------------------------------------------------------------- the file


def _stored(t: torch.Tensor) -> torch.Tensor:
    return (t.half() if t.is_floating_point() else t).detach().cpu().contiguous()


def make_delta(
    base: nn.Module,
    base_meta: Meta,
    base_identity: str,
    tuned: nn.Module,
    meta: Meta,
    adapters: dict[str, tuple[torch.Tensor, torch.Tensor]],
    base_path: str | Path | None = None,
) -> dict:
    """What `tuned` (baked) changed over `base`, as a delta file's dict; raises if it changed a base row."""
    base_state, tuned_state = base.state_dict(), tuned.state_dict()
    rows, whole, lowrank = {}, {}, {}
    for key, value in tuned_state.items():
        old = base_state[key].to(value.device)
        if key in adapters:
            a, b = adapters[key]
            lowrank[key] = {"a": _stored(a), "b": _stored(b)}
        elif value.shape == old.shape:
            if not torch.equal(value, old):
                whole[key] = _stored(value)
        elif value.shape[1:] == old.shape[1:] and len(value) > len(old):
            if not torch.equal(value[: len(old)], old):
                raise ValueError(f"fine-tuning changed base rows of {key}; a delta cannot hold that")
            rows[key] = _stored(value[len(old) :])
        else:
            raise ValueError(f"{key} changed shape {tuple(old.shape)} -> {tuple(value.shape)}")
    n = len(base_meta.groups)
    return {
        "format_version": FORMAT_VERSION,
        "kind": DELTA_KIND,
        "config": tuned.cfg.to_dict(),
        "base": {
            "sha256": base_identity,
            "label": base_meta.label,
            "arch": base.cfg.arch,
            "path": str(Path(base_path).resolve()) if base_path else "",
        },
        "rows": rows,
        "whole": whole,
        "lowrank": lowrank,
        "meta": {
            "label": meta.label,
            "custom_names": list(meta.custom_names),
            "groups": list(meta.groups[n:]),  # appended to the base's
            "group_emoji": list(meta.group_emoji[n:]),
        },
    }


def is_delta(payload: dict) -> bool:
    return payload.get("kind") == DELTA_KIND


def check_delta(payload: dict, path: str | Path) -> None:
    """A readable delta's parts are all there (read_payload checked the format version)."""
    parts = {"config": dict, "base": dict, "rows": dict, "whole": dict, "lowrank": dict, "meta": dict}
    if not all(isinstance(payload.get(key), kind) for key, kind in parts.items()):
        raise CheckpointError(f"{path}: incomplete server model (a delta without its weights or metadata)")
    if not isinstance(payload["base"].get("sha256"), str):
        raise CheckpointError(f"{path}: this server model does not say which base model it belongs to")


# --------------------------------------------------------------------------------------------- applying


@torch.no_grad()
def apply_delta(
    base: nn.Module, base_meta: Meta, base_identity: str, payload: dict, path: str | Path = "delta"
) -> tuple[nn.Module, Meta]:
    """(the tuned model in eval mode, its meta): the base's tensors, shared, plus the delta's.

    Raises BaseMismatch when the delta was fine-tuned from another base, CheckpointError when it is
    incomplete.
    """
    check_delta(payload, path)
    wanted = payload["base"]
    if wanted["sha256"] != base_identity:
        raise BaseMismatch(
            f"{path} was fine-tuned from another base model ({wanted.get('label') or '?'}, "
            f"sha256 {short(wanted['sha256'])}), not from {base_meta.label} ({short(base_identity)}) "
            "served here: it cannot be applied; train it again on this base"
        )
    cfg = config_from(payload)
    device = next(base.parameters()).device
    state = dict(base.state_dict())  # detached views of the base's tensors: shared, never written to
    try:
        for key, extra in payload["rows"].items():
            state[key] = torch.cat([state[key], extra.to(device, state[key].dtype)])
        for key, value in payload["whole"].items():
            state[key] = value.to(device, state[key].dtype)
        for key, ab in payload["lowrank"].items():
            state[key] = merge(state[key], ab["a"].to(device).float(), ab["b"].to(device).float())
        with torch.device("meta"):  # no memory and no init: every tensor comes from `state` or the base
            model = build_model(cfg)
        model.load_state_dict(state, strict=True, assign=True)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: this server model does not fit its base model ({exc})") from exc
    base_buffers = dict(base.named_buffers())
    for name, buffer in list(model.named_buffers()):  # not saved (fixed tables): the base's own
        if buffer.is_meta:
            owner_name, _, leaf = name.rpartition(".")
            model.get_submodule(owner_name)._buffers[leaf] = base_buffers[name]
    model.requires_grad_(False)
    added = payload["meta"]
    meta = dataclasses.replace(
        base_meta,
        groups=list(base_meta.groups) + list(added["groups"]),
        group_emoji=list(base_meta.group_emoji) + list(added["group_emoji"]),
        custom_names=list(added["custom_names"]),
        label=str(added["label"]),
    )
    return model.eval(), meta


def load_base(payload: dict, path: str | Path, device: torch.device) -> tuple[nn.Module, Meta, str]:
    """A delta's own base, when nobody hands one over (emoji-gen, evaluation): the file it was trained
    from, else the shipped checkpoint, whichever has its identity."""
    check_delta(payload, path)
    wanted = payload["base"]
    tried = []
    for candidate in dict.fromkeys(p for p in (wanted.get("path"), str(SHIPPED_CHECKPOINT)) if p):
        if Path(candidate).is_file() and file_identity(candidate) == wanted["sha256"]:
            base_payload, identity = read_payload(candidate)
            model, meta = model_from(base_payload, device)
            return model, meta, identity
        tried.append(candidate)
    raise BaseMismatch(
        f"{path} is a server model fine-tuned from base model {wanted.get('label') or '?'} "
        f"(sha256 {short(wanted['sha256'])}), which is not at {' or '.join(tried)}; load it with that base"
    )
