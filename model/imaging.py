"""The one imaging path from a drawing to the sizes Discord uses; emoji-gen, `Generator` and the bot share it.

A generator draws at 72 px; the refiner (`model/upscale.py`) makes that a sharp 288-px image. All a user
sees is cut from that one high-resolution image (`renditions`) by Lanczos in premultiplied space: the 72-px
emoji (as the dataset's real 72-px emoji were made from the font's bitmap), the 128-px server emoji and the
320-px sticker. Every rendition keeps a transparent margin: a drawing whose outer frame would be mostly
opaque at any of those sizes (boxed glyphs: 🆘, keycaps) is shrunk into the canvas (`shrunk`), since a
square background looks broken on Discord's dark and light themes.

PIL and numpy only (no torch), so `bot/imaging.py` imports it cheaply.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.quality import frame_transparency

EMOJI_SIZE = 72  # what the model draws and the bot shows as candidates
SERVER_EMOJI_SIZE = 128  # Discord's recommended custom-emoji size
STICKER_SIZE = 320  # Discord stickers are exactly 320×320; emoji-gen --size 320 matches
MIN_FRAME_CLEAR = 0.5  # share of the outer 2-px frame that must stay transparent
MARGIN = 4 / 72  # a drawing that fails that is shrunk to leave this much (of the side) clear on each side


def resize(image: Image.Image, size: int) -> Image.Image:
    """Lanczos in premultiplied space, so transparent pixels never tint the edges (up or down)."""
    if image.size == (size, size):
        return image.convert("RGBA")
    return image.convert("RGBa").resize((size, size), Image.Resampling.LANCZOS).convert("RGBA")


def clear_frame(image: Image.Image) -> bool:
    """Whether at least half of the image's outer 2-px frame (scaled with its size) is transparent."""
    return frame_transparency(np.asarray(image.convert("RGBA"))) >= MIN_FRAME_CLEAR


def shrunk(image: Image.Image) -> Image.Image:
    """The image scaled down and centred, leaving a transparent MARGIN on every side."""
    side = image.width
    inner = side - 2 * round(MARGIN * side)
    canvas = Image.new("RGBA", image.size, (0, 0, 0, 0))
    canvas.paste(resize(image, inner), ((side - inner) // 2,) * 2)
    return canvas


def with_margin(image: Image.Image) -> Image.Image:
    """The image itself if its frame is clear enough, else shrunk so that it is."""
    return image.convert("RGBA") if clear_frame(image) else shrunk(image)


def from_premultiplied(pixels: np.ndarray) -> Image.Image:
    """(4, H, W) premultiplied floats in [0, 1] -> straight-alpha RGBA (through PIL's premultiplied mode)."""
    data = (np.clip(pixels, 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(data, "RGBa").convert("RGBA")


def renditions(high: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(72-px emoji, 320-px sticker) from one 288-px drawing; shrunk first if any size (72, 128 or 320)
    would show a mostly opaque frame, so every output a user can get keeps its margin."""
    small, large = resize(high, EMOJI_SIZE), resize(high, STICKER_SIZE)
    if all(clear_frame(im) for im in (small, resize(large, SERVER_EMOJI_SIZE), large)):
        return small, large
    high = shrunk(high)
    return resize(high, EMOJI_SIZE), resize(high, STICKER_SIZE)
