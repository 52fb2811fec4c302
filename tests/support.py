"""What several test modules share: where the repository and the shipped checkpoints are, PNG builders."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BASE_CHECKPOINT = ROOT / "checkpoints" / "base.pt"  # the default model
MASKGIT_CHECKPOINT = ROOT / "checkpoints" / "maskgit.pt"  # generator v2
COMPOSER_CHECKPOINT = ROOT / "checkpoints" / "composer.pt"  # generator v3


def png(colour=(230, 60, 40, 255), size=(64, 64), mark: int = 0) -> bytes:
    """A solid PNG; ``mark`` blue pixels make otherwise equal images differ (distinct training emoji)."""
    image = Image.new("RGBA", size, colour)
    for i in range(mark):
        image.putpixel((i % size[0], (i * 5) % size[1]), (20, 20, 200, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
