"""Checkpoint I/O in one place: config + weights + tokenizer data + format version, written atomically.

A checkpoint is a plain dict that `torch.load(..., weights_only=True)` accepts: no pickled classes. Loading
rebuilds the networks from the saved config and loads the weights strictly.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from dataclasses import fields
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn

from model.networks import EmojiCVAE, ModelConfig

FORMAT_VERSION = 1


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


def save_checkpoint(
    path: str | Path, model: nn.Module, meta: dict, half: bool = False, extra: dict | None = None
) -> None:
    """Write atomically (temp file + rename): a crash mid-write never leaves a broken checkpoint.

    `meta` holds JSON-like data the model needs at sampling time (group emoji, emoji names, step, ...).
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
        "meta": meta,
    }
    if extra:
        payload["extra"] = extra
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
    """The raw checkpoint dict; every way a file can be wrong becomes one CheckpointError sentence.

    PyTorch's own messages are not passed on: they are long, and for a file with pickled objects they
    advise loading it with ``weights_only=False``, which would run whatever code the file carries.
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
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for a file we refuse
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
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
    if not all(isinstance(payload.get(key), dict) for key in ("config", "state_dict", "meta")):
        raise CheckpointError(f"{path}: incomplete checkpoint (no config, weights or metadata)")
    return payload


def config_from(payload: dict) -> ModelConfig:
    known = {f.name for f in fields(ModelConfig)}
    cfg = {k: v for k, v in payload["config"].items() if k in known}
    if "fsq_levels" in cfg:
        cfg["fsq_levels"] = tuple(cfg["fsq_levels"])
    return ModelConfig(**cfg)


ARCHS = ("cvae", "maskgit")


def build_model(cfg: ModelConfig) -> nn.Module:
    """The networks for a config (its `arch` picks the generator)."""
    if cfg.arch == "cvae":
        return EmojiCVAE(cfg)
    if cfg.arch == "maskgit":
        from model.maskgit import EmojiMaskGIT

        return EmojiMaskGIT(cfg)
    raise CheckpointError(f"unknown architecture {cfg.arch!r} (known: {', '.join(ARCHS)})")


def load_model(path: str | Path | None, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, float32, on device; the checkpoint's meta)."""
    payload = read_checkpoint(path)
    cfg = config_from(payload)
    model = build_model(cfg)
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()}, strict=True)
    return model.to(device).eval(), payload["meta"]
