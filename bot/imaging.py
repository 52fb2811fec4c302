"""Turning the model's drawings into what Discord accepts: PNG bytes at sticker/emoji sizes.

Give these the drawing's large (320-px) image (`Drawing.large`): the sizes are cut from it by
`model.imaging.resize`, the same path emoji-gen uses; a 72-px image still works (it is scaled up).

Pure functions of their inputs (no timestamps in the PNGs), so the same image always gives the same bytes.
"""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin

from model.imaging import SERVER_EMOJI_SIZE, STICKER_SIZE, resize

EMOJI_SIZE = SERVER_EMOJI_SIZE
STICKER_MAX_BYTES = 512 * 1024
EMOJI_MAX_BYTES = 256 * 1024
GRID_CELL = STICKER_SIZE // 2


def png_bytes(
    image: Image.Image, *, text: str | None = None, seed: int | None = None, model: str | None = None
) -> bytes:
    """Encode as PNG, with the generation parameters in iTXt chunks (UTF-8, so Korean survives)."""
    info = PngImagePlugin.PngInfo()
    if text is not None:
        info.add_itxt("prompt", text)
    if seed is not None:
        info.add_itxt("seed", str(seed))
    if model is not None:
        info.add_itxt("model", model)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def fit_png(image: Image.Image, limit: int, **meta: object) -> bytes:
    """PNG under ``limit`` bytes; falls back to a 256-colour palette (keeps alpha) if ever too big."""
    data = png_bytes(image, **meta)  # type: ignore[arg-type]
    if len(data) <= limit:
        return data
    quantized = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    data = png_bytes(quantized.convert("RGBA"), **meta)  # type: ignore[arg-type]
    if len(data) > limit:
        raise ValueError(f"image does not fit in {limit} bytes")
    return data


def sticker_png(image: Image.Image, **meta: object) -> bytes:
    """The 320×320 RGBA PNG (≤ 512 KiB) used both as the main attachment and as a sticker."""
    return fit_png(resize(image, STICKER_SIZE), STICKER_MAX_BYTES, **meta)


def emoji_png(image: Image.Image, **meta: object) -> bytes:
    """The 128×128 RGBA PNG (≤ 256 KiB) for a custom emoji."""
    return fit_png(resize(image, EMOJI_SIZE), EMOJI_MAX_BYTES, **meta)


def grid(images: list[Image.Image]) -> Image.Image:
    """Up to four candidates on one transparent 320×320 canvas (2×2 cells; a short last row is centred)."""
    if not 1 <= len(images) <= 4:
        raise ValueError("grid takes 1 to 4 images")
    canvas = Image.new("RGBA", (STICKER_SIZE, STICKER_SIZE), (0, 0, 0, 0))
    rows = [images[:2], images[2:]] if len(images) > 2 else [images]
    top = (STICKER_SIZE - GRID_CELL * len(rows)) // 2
    for r, row in enumerate(rows):
        left = (STICKER_SIZE - GRID_CELL * len(row)) // 2
        for c, image in enumerate(row):
            canvas.alpha_composite(resize(image, GRID_CELL), (left + c * GRID_CELL, top + r * GRID_CELL))
    return canvas
