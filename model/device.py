"""Where the model runs: one rule for emoji-gen, emoji-train, fine-tuning and the bot."""

from __future__ import annotations

import torch


class DeviceUnavailable(ValueError):
    """A CUDA device was asked for but this machine has none (or not that index)."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The device for a setting: "auto" is the first CUDA GPU if there is one, else the CPU; anything else
    is taken as given, index kept ("cuda:1" stays cuda:1). Raises DeviceUnavailable for missing CUDA."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"{name} asked for, but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"{name} asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
    return device
