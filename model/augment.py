"""Fine-tuning's image input: any picture fitted like the base data, and the augmentation that keeps a
handful of images from being learnt as pixels. Used by every arch's fine-tune task."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model.data import fit_square


def to_premultiplied_tensor(image: Image.Image) -> torch.Tensor:
    """Any RGBA image -> (4, 72, 72) premultiplied floats, fitted and centred like the base data."""
    rgba = np.asarray(fit_square(image.convert("RGBA")), dtype=np.float32) / 255
    x = torch.from_numpy(rgba).permute(2, 0, 1)
    return torch.cat([x[:3] * x[3:], x[3:]])


def augment(images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Small random shifts, scales and colour jitter: a handful of images must not be learnt as pixels."""
    n = len(images)
    scale = 1 + (torch.rand(n, generator=rng) - 0.5) * 0.16  # 0.92 - 1.08
    shift = (torch.rand(n, 2, generator=rng) - 0.5) * 0.12
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = 1 + (torch.rand(n, 3, 1, 1, generator=rng) - 0.5) * 0.2
    colour = torch.minimum(out[:, :3] * gain, out[:, 3:])  # premultiplied colour never exceeds alpha
    return torch.cat([colour, out[:, 3:]], dim=1)
