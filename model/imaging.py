"""The one imaging path from a drawing to the sizes Discord uses; emoji-gen, `Generator` and the bot share it.

A generator draws at 72 px; the refiner (`model/upscale.py`) makes that a sharp 288-px image. All a user
sees is cut from that one high-resolution image (`renditions`) by Lanczos in premultiplied space: the 72-px
emoji (as the dataset's real 72-px emoji were made from the font's bitmap), the 128-px server emoji and the
320-px sticker. Every rendition
keeps a transparent margin (`with_margin`): a drawing whose outer frame is mostly opaque (boxed glyphs: 🆘,
keycaps) is shrunk into the canvas, since a square background looks broken on Discord's dark and light
themes.

PIL and numpy only (no torch), so `bot/imaging.py` imports it cheaply.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.quality import frame_transparency

EMOJI_SIZE = 72  # what the model draws and the bot shows as candidates
HIGH_SIZE = 288  # the refiner's output: ×4
SERVER_EMOJI_SIZE = 128  # Discord's recommended custom-emoji size
STICKER_SIZE = 320  # Discord stickers are exactly 320×320; emoji-gen --size 320 matches
MIN_FRAME_CLEAR = 0.5  # share of the outer 2-px frame that must stay transparent
MARGIN = 4 / 72  # a drawing that fails that is shrunk to leave this much (of the side) clear on each side


def resize(image: Image.Image, size: int) -> Image.Image:
    """Lanczos in premultiplied space, so transparent pixels never tint the edges (up or down)."""
    if image.size == (size, size):
        return image.convert("RGBA")
    return image.convert("RGBa").resize((size, size), Image.Resampling.LANCZOS).convert("RGBA")


def with_margin(image: Image.Image) -> Image.Image:
    """The image itself if enough of its outer frame is transparent, else shrunk and centred so it is."""
    rgba = image.convert("RGBA")
    if frame_transparency(np.asarray(rgba)) >= MIN_FRAME_CLEAR:
        return rgba
    side = rgba.width
    inner = side - 2 * round(MARGIN * side)
    canvas = Image.new("RGBA", rgba.size, (0, 0, 0, 0))
    canvas.paste(resize(rgba, inner), ((side - inner) // 2,) * 2)
    return canvas


def from_premultiplied(pixels: np.ndarray) -> Image.Image:
    """(4, H, W) premultiplied floats in [0, 1] -> straight-alpha RGBA (through PIL's premultiplied mode)."""
    data = (np.clip(pixels, 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(data, "RGBa").convert("RGBA")


def renditions(high: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(72-px emoji, 320-px sticker) from one 288-px drawing, margin kept in both."""
    high = with_margin(high)
    return with_margin(resize(high, EMOJI_SIZE)), resize(high, STICKER_SIZE)
