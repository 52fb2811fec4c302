"""The PNGs the bot uploads: exact sizes, transparency kept, crisp pixels, same input → same bytes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot import imaging


def sample() -> Image.Image:
    """A transparent 72×72 with an opaque red square: enough to see edges and alpha survive."""
    image = Image.new("RGBA", (72, 72), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (18, 18, 54, 54))
    return image


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize(
    ("encode", "size", "limit"), [(imaging.sticker_png, 320, 512), (imaging.emoji_png, 128, 256)]
)
def test_sizes_limits_and_transparency(encode, size, limit):
    data = encode(sample(), text="축하해", seed=3, model="m")
    image = decode(data)
    assert (image.format, image.size, image.mode) == ("PNG", (size, size), "RGBA")
    assert len(data) <= limit * 1024
    assert image.getpixel((0, 0))[3] == 0  # background stays transparent
    assert image.getpixel((size // 2, size // 2)) == (255, 0, 0, 255)
    assert image.info["prompt"] == "축하해" and image.info["seed"] == "3"


def test_sticker_and_server_emoji_are_cut_from_the_large_image():
    """One drawing, one path: the bot's PNGs are `model.imaging.resize` of the drawing's 320-px image."""
    from model.imaging import resize

    large = resize(sample(), 320)
    assert imaging.sticker_png(large) == imaging.png_bytes(large)  # already 320: not resampled again
    assert imaging.emoji_png(large) == imaging.png_bytes(resize(large, 128))


def test_resizing_never_tints_the_edges():
    big = imaging.resize(sample(), 320)
    edge = [big.getpixel((x, 160)) for x in range(320) if big.getpixel((x, 160))[3] > 0]
    assert edge and all(r >= 250 and g <= 5 and b <= 5 for r, g, b, _ in edge)  # premultiplied: no fringes


def test_same_image_same_bytes():
    assert imaging.sticker_png(sample(), seed=1) == imaging.sticker_png(sample(), seed=1)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_grid_is_a_320_canvas(count):
    grid = imaging.grid([sample()] * count)
    assert grid.size == (320, 320) and grid.mode == "RGBA"
    assert grid.getpixel((0, 0))[3] == 0
