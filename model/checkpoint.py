"""Checkpoint I/O in one place: config + weights + tokenizer data + format version, written atomically.

A checkpoint is a plain dict that `torch.load(..., weights_only=True)` accepts: no pickled classes. Loading
rebuilds the networks from the saved config and loads the weights strictly.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
import warnings
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn

from model.archs import UnknownArch, get_arch
from model.config import ModelConfig, arch_of, section_of

FORMAT_VERSION = 1
DELTA_KIND = "delta"  # a server model: only what fine-tuning changed (model.delta)


def _shipped_checkpoint() -> Path:
    """The default checkpoint: inside the package for a wheel install, else checkpoints/ of the checkout.

    pyproject.toml maps checkpoints/ to the data package model.checkpoints, so `pip install .` (a wheel, a git
    URL) has model/checkpoints/base.pt; a checkout and an editable install have the repository's folder.
    """
    packaged = resources.files(__package__) / "checkpoints" / "base.pt"
    if packaged.is_file():
        return Path(str(packaged))  # wheels install unzipped: a real file
    return Path(__file__).resolve().parent.parent / "checkpoints" / "base.pt"


SHIPPED_CHECKPOINT = _shipped_checkpoint()


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or of an unknown format."""


@dataclass
class Meta:
    """What sampling needs besides the weights, and where the model came from (a checkpoint's "meta").

    Stored as a plain dict with these keys (the shipped files' format); unknown keys are ignored on load.
    """

    groups: list[str]  # group keys, by group id
    group_emoji: list[str]  # each group's representative emoji (a sticker's tag)
    emoji_names: dict[str, str]  # emoji -> CLDR name, for reading emoji inside prompts
    label: str = "base"  # model name shown in the bot's embeds
    step: int = 0
    elapsed_s: float = 0.0
    recipe: str = ""  # the emoji-train arguments that made it
    custom_names: list[str] = field(default_factory=list)  # fine-tuned names, one new group each

    def to_dict(self) -> dict:
        out = asdict(self)
        if not self.custom_names:
            del out["custom_names"]  # a base model's meta, as the shipped files have it
        return out

    @classmethod
    def from_dict(cls, saved: dict) -> Meta:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in known})


def save_checkpoint(
    path: str | Path, model: nn.Module, meta: Meta, half: bool = False, extra: dict | None = None
) -> None:
    """Write atomically (temp file + rename): a crash mid-write never leaves a broken checkpoint.

    `extra` holds training state (optimizer, EMA) that sampling does not need.
    """
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
        for k, v in model.state_dict().items()
    }
    payload = {
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "state_dict": state,
        "meta": meta.to_dict(),
    }
    if extra:
        payload["extra"] = extra
    write_atomically(path, payload)


def write_atomically(path: str | Path, payload: dict) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: str | Path | None) -> dict:
    """The raw checkpoint dict of a whole model; every way a file can be wrong is one CheckpointError."""
    payload, _ = read_payload(path)
    check_whole(payload, path)
    return payload


def check_whole(payload: dict, path: str | Path | None) -> None:
    """A read file is a whole model (not a server model's delta) with all its parts."""
    if payload.get("kind") == DELTA_KIND:
        raise CheckpointError(
            f"{path} is a server model (a delta over its base model), not a whole checkpoint; "
            "load it with Generator.load"
        )
    if not all(isinstance(payload.get(key), dict) for key in ("config", "state_dict", "meta")):
        raise CheckpointError(f"{path}: incomplete checkpoint (no config, weights or metadata)")


def read_payload(path: str | Path | None) -> tuple[dict, str]:
    """(the file's dict, the sha256 of its bytes: the file's identity); a whole model's or a delta's.

    Every way a file can be wrong becomes one CheckpointError sentence. PyTorch's own messages are not
    passed on: they are long, and for a file with pickled objects they advise loading it with
    ``weights_only=False``, which would run whatever code the file carries.
    """
    path = Path(path) if path else SHIPPED_CHECKPOINT
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the checkpoint file itself (a .pt file)")
    if not path.is_file():
        hint = (
            " (the shipped checkpoint; run `emoji-train base --out checkpoints/base.pt`)"
            if path == SHIPPED_CHECKPOINT
            else ""
        )
        raise CheckpointError(f"checkpoint not found: {path}{hint}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for a file we refuse
            warnings.simplefilter("ignore")
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # pickled objects: never loaded, they could run code
            raise CheckpointError(
                f"{path} is not a readable text2emoji checkpoint: it holds Python objects, "
                "not just weights, so it was not loaded"
            ) from exc
        raise CheckpointError(f"{path} is not a readable text2emoji checkpoint (not a PyTorch file)") from exc
    except Exception as exc:  # torch raises KeyError, RuntimeError, EOFError... for non-checkpoints
        raise CheckpointError(
            f"{path} is not a readable text2emoji checkpoint (not a PyTorch file, or truncated or corrupt)"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown checkpoint format (expected version {FORMAT_VERSION})")
    return payload, hashlib.sha256(data).hexdigest()


def file_identity(path: str | Path | None) -> str:
    """The sha256 of a checkpoint file's bytes (None: the shipped one): what a delta names as its base."""
    path = Path(path) if path else SHIPPED_CHECKPOINT
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def config_from(payload: dict) -> ModelConfig:
    """The arch's own config from a checkpoint (new sectioned layout or the shipped files' flat one)."""
    saved = payload["config"]
    try:
        arch = get_arch(arch_of(saved))
    except UnknownArch as exc:
        raise CheckpointError(str(exc)) from None
    return arch.network.Config.from_section(section_of(saved))


def build_model(cfg: ModelConfig) -> nn.Module:
    """The networks for a config (its arch's Network)."""
    return get_arch(cfg.arch).network.Network(cfg)


def load_model(path: str | Path | None, device: str | torch.device = "cpu") -> tuple[nn.Module, Meta]:
    """(model in eval mode, float32, on device; the checkpoint's meta)."""
    return model_from(read_checkpoint(path), device)


def model_from(payload: dict, device: str | torch.device = "cpu") -> tuple[nn.Module, Meta]:
    """A whole checkpoint's dict (``read_checkpoint``) as (model in eval mode, float32, on device; meta)."""
    model = build_model(config_from(payload))
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()}, strict=True)
    return model.to(device).eval(), Meta.from_dict(payload["meta"])
