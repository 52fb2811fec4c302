"""Image-quality measures that do not need a model: how sharp, how clean, how much margin.

numpy only, on (H, W, 4) uint8 straight-alpha RGBA (PIL's "RGBA"), any size. Distances that scale with the
image (the outline band, the frame) are given in 72-px units and scaled, so a 320-px sticker and its 72-px
emoji are measured alike. Used by `emoji-train eval`, the upscaler's training report and the tests.
"""

from __future__ import annotations

import numpy as np

BASE = 72  # the px unit the bands below are given in
OUTLINE_BAND = 2  # interior detail leaves out this many px inside the alpha outline (edges are not detail)
FRAME = 2  # the outer frame that must stay mostly transparent
TRANSPARENT = 10 / 255  # alpha at or below this counts as transparent


def _band(size: int, px72: int) -> int:
    return max(1, round(px72 * size / BASE))


def premultiplied(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 -> float32 in [0, 1] with colour multiplied by alpha."""
    x = rgba.astype(np.float32) / 255
    return np.concatenate([x[..., :3] * x[..., 3:], x[..., 3:]], axis=-1)


def erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """Binary erosion by a 3x3 cross, ``steps`` times (pixels outside the image count as empty)."""
    out = mask.copy()
    for _ in range(steps):
        padded = np.pad(out, 1, constant_values=False)
        out = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return out


def interior_detail(rgba: np.ndarray) -> float:
    """Mean gradient magnitude of premultiplied RGB inside the shape, the outline band left out.

    What blur destroys (eyes, highlights, small parts) and what a sharp emoji has: a blurred copy scores lower
    than its original, a flat blob scores near 0. NaN for an image with no interior at all.
    """
    x = premultiplied(rgba)
    size = rgba.shape[0]
    # gradients in 72-px units, so a 320-px image of the same drawing scores the same
    dx = np.diff(x[..., :3], axis=1, append=x[:, -1:, :3]) * (size / BASE)
    dy = np.diff(x[..., :3], axis=0, append=x[-1:, :, :3]) * (size / BASE)
    magnitude = np.sqrt((dx**2 + dy**2).sum(-1))
    inside = erode(x[..., 3] > 0.5, _band(size, OUTLINE_BAND) + 1)
    return float(magnitude[inside].mean()) if inside.any() else float("nan")


def semi_transparent_share(rgba: np.ndarray) -> float:
    """Share of pixels with 0.1 < alpha < 0.9 (soft edges and haze)."""
    alpha = rgba[..., 3].astype(np.float32) / 255
    return float(((alpha > 0.1) & (alpha < 0.9)).mean())


def frame_transparency(rgba: np.ndarray) -> float:
    """Share of the outer frame (2 px at 72 px, scaled) that is transparent: 1.0 for a clear margin."""
    size = rgba.shape[0]
    band = _band(size, FRAME)
    frame = np.ones(rgba.shape[:2], bool)
    frame[band:-band, band:-band] = False
    return float((rgba[..., 3][frame] <= TRANSPARENT * 255).mean())
