"""Resizing the model's 72x72 RGBA drawings: the one upscaler emoji-gen, Generator users and the bot share.

PIL only (no torch), so `bot/imaging.py` imports it cheaply.
"""

from __future__ import annotations

from PIL import Image

STICKER_SIZE = 320  # Discord stickers are exactly 320x320; emoji-gen --size 320 matches


def upscale(image: Image.Image, size: int = STICKER_SIZE) -> Image.Image:
    """Lanczos in premultiplied space, so transparent pixels never tint the edges."""
    return image.convert("RGBa").resize((size, size), Image.Resampling.LANCZOS).convert("RGBA")
