"""Checking an uploaded training image and normalising it to the model's 72×72 RGBA.

Uploads are untrusted bytes: the size is capped before decoding, only PNG, JPEG, GIF (first frame)
and WebP decoders are allowed, and the pixel count is checked from the header before any pixel is
decoded (Pillow's decompression-bomb guard, made strict), so a tiny file claiming 20,000×20,000
pixels is refused without allocating gigabytes. Every failure is an ``InvalidImage`` whose message
is written for the person who uploaded it.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from model.data import fit_square  # the same fitting as the base training data

SIZE = 72
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
MAX_PIXELS = 4096 * 4096  # far above any emoji; well below Pillow's own bomb threshold
MIN_SIDE = 8


class InvalidImage(ValueError):
    """The upload cannot be used; ``str(error)`` is the message for the user."""


@dataclass(frozen=True)
class NormalisedImage:
    """A checked upload: the 72×72 RGBA PNG we keep, and hashes to spot duplicates."""

    png: bytes
    original_sha256: str  # of the uploaded bytes
    pixels_sha256: str  # of the normalised RGBA pixels: the same picture re-encoded is still a duplicate
    source_format: str
    source_size: tuple[int, int]

    def image(self) -> Image.Image:
        with Image.open(io.BytesIO(self.png)) as im:
            return im.convert("RGBA")


def human_bytes(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.3g} MiB"
    return f"{count / 1024:.3g} KiB"


def check_size(size: int, max_bytes: int) -> None:
    """Refuse an attachment by its announced size, before downloading it."""
    if size > max_bytes:
        raise InvalidImage(
            f"That file is {human_bytes(size)}; the limit is {human_bytes(max_bytes)}. "
            "Emoji are small: a 128×128 PNG is plenty."
        )
    if size == 0:
        raise InvalidImage("That file is empty.")


def normalise(data: bytes, *, max_bytes: int) -> NormalisedImage:
    """Validate ``data`` and return the 72×72 RGBA version; raises ``InvalidImage``.

    CPU work (decoding, resizing): call it through ``asyncio.to_thread``.
    """
    check_size(len(data), max_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise InvalidImage(
                        f"That image is {width}×{height} pixels; the most I accept is 4096×4096. "
                        "Scale it down first."
                    )
                if min(width, height) < MIN_SIDE:
                    raise InvalidImage(f"That image is only {width}×{height} pixels; use at least 8×8.")
                source_format = im.format or "?"
                im.seek(0)  # animated GIF/WebP: the first frame
                im.load()
                rgba = im.convert("RGBA")
        except InvalidImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImage("That image has far too many pixels; the most I accept is 4096×4096.") from exc
        except UnidentifiedImageError as exc:
            if b"<svg" in data[:1024].lower():
                raise InvalidImage(
                    "SVG images can't be used. Export it as a PNG (72×72 or larger) and try again."
                ) from exc
            raise InvalidImage(
                "That file isn't an image I can read. Use a PNG, JPEG, GIF or WebP image."
            ) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
            raise InvalidImage(
                "That image is damaged (it could not be decoded). Save it again as a PNG and retry."
            ) from exc
    if rgba.getchannel("A").getextrema()[1] == 0:
        raise InvalidImage("That image is completely transparent.")
    square = fit_square(rgba)
    buffer = io.BytesIO()
    square.save(buffer, format="PNG", optimize=True)
    return NormalisedImage(
        png=buffer.getvalue(),
        original_sha256=hashlib.sha256(data).hexdigest(),
        pixels_sha256=hashlib.sha256(square.tobytes()).hexdigest(),
        source_format=source_format,
        source_size=(width, height),
    )
