"""The refiner: a small learned ×4 upscaler, every arch's soft 72-px drawing in, a sharp 288-px one out.

Generators draw at 72×72; real emoji are drawn much larger and downscaled, which is where their crisp edges
and flat fills come from. The refiner restores that: trained on real emoji rendered large (targets) from
inputs degraded the way our generators degrade them (blur, haze, specks; `model/train_upscale.py`), it
predicts the 288-px image as a correction of a plain bicubic upscale. The 72-px emoji, the 128-px server emoji
and the 320-px sticker are all cut from its output (`model/imaging.py`), so they agree with each other.

ESPCN-style: all convolutions run at 72×72 and a pixel shuffle makes the ×4 at the end, so 4 images cost tens
of milliseconds on a CPU.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.checkpoint import FORMAT_VERSION, CheckpointError, read_checkpoint, write_atomically

log = logging.getLogger(__name__)

SCALE = 4  # 72 -> 288


def _shipped_refiner() -> Path:
    """checkpoints/upscaler.pt: in the package for a wheel install, else the checkout's folder."""
    packaged = resources.files("model") / "checkpoints" / "upscaler.pt"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "checkpoints" / "upscaler.pt"


SHIPPED_REFINER = _shipped_refiner()


@dataclass(frozen=True)
class RefinerConfig:
    """The refiner's shape, saved inside its checkpoint so it loads without guessing."""

    channels: int = 32
    blocks: int = 3

    def to_dict(self) -> dict:
        return {"arch": "refiner", **asdict(self)}

    @classmethod
    def from_dict(cls, saved: dict) -> RefinerConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in known})


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


class Refiner(nn.Module):
    """(B, 4, H, W) premultiplied RGBA in [0, 1] -> (B, 4, 4H, 4W), premultiplied and valid (rgb ≤ alpha)."""

    def __init__(self, cfg: RefinerConfig = RefinerConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.head = nn.Conv2d(4, c, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(cfg.blocks)])
        self.tail = nn.Conv2d(c, 4 * SCALE * SCALE, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # starts as the bicubic upscale it corrects
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.head(x)
        residual = F.pixel_shuffle(self.tail(feats + self.body(feats)), SCALE)
        base = F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False)
        return valid_premultiplied(base + residual)


def valid_premultiplied(x: torch.Tensor) -> torch.Tensor:
    """Clamp alpha to [0, 1] and colour to [0, alpha]: premultiplied colour can never exceed its alpha."""
    alpha = x[:, 3:].clamp(0, 1)
    return torch.cat([torch.minimum(x[:, :3].clamp(min=0), alpha), alpha], dim=1)


def save_refiner(path: str | Path, refiner: Refiner, meta: dict, extra: dict | None = None) -> None:
    """Same file format as the generators' checkpoints (config + state_dict + meta), written atomically."""
    payload = {
        "format_version": FORMAT_VERSION,
        "config": refiner.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in refiner.state_dict().items()},
        "meta": meta,
    }
    if extra:
        payload["extra"] = extra
    write_atomically(path, payload)


def load_refiner(path: str | Path | None = None, device: str | torch.device = "cpu") -> Refiner:
    """Load a refiner checkpoint (None: the shipped checkpoints/upscaler.pt), ready for inference."""
    path = Path(path) if path else SHIPPED_REFINER
    payload = read_checkpoint(path)
    if payload["config"].get("arch") != "refiner":
        raise CheckpointError(
            f"{path} is not an upscaler checkpoint (it is a {payload['config'].get('arch')})"
        )
    refiner = Refiner(RefinerConfig.from_dict(payload["config"]))
    try:
        refiner.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the saved upscaler config") from exc
    refiner.meta = payload["meta"]
    return refiner.to(device).eval()


@torch.no_grad()
def refine(refiner: Refiner, pixels: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """(N, 4, 72, 72) premultiplied -> (N, 4, 288, 288), in chunks so memory stays flat for big batches."""
    device = next(refiner.parameters()).device
    out = [refiner(pixels[i : i + batch].to(device)).cpu() for i in range(0, len(pixels), batch)]
    return torch.cat(out) if out else pixels.new_zeros((0, 4, 72 * SCALE, 72 * SCALE))


@functools.lru_cache(maxsize=4)
def shared_refiner(device: str = "cpu", path: Path | None = None) -> Refiner:
    """A refiner (None: the shipped one), loaded once per device and shared by every Generator (server models
    included).

    Without the file (a trimmed install) drawings are still made, by the untrained refiner: exactly the
    bicubic upscale it corrects, logged once, so the bot keeps working, only less sharp.
    """
    try:
        return load_refiner(path or SHIPPED_REFINER, device)
    except CheckpointError as exc:
        log.warning("%s; stickers and emoji will be plain bicubic upscales", exc)
        fallback = Refiner().to(device).eval()
        fallback.meta = {"kind": "bicubic (no upscaler checkpoint)"}
        return fallback
