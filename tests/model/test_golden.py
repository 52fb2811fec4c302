"""Regression guard for refactors: the shipped checkpoints draw what they drew before.

The checkpoint and refiner files are pinned by digest. The drawings are pinned by 8x8 thumbnails (box means
of each PNG, tests/model/golden/*.npz) compared within GOLDEN_TOLERANCE levels of 255: PNG digests were tied
to the CPU's float kernels (an AVX2 machine draws last bits that an AVX-512 one does not), while a change
that moves code around but redraws a picture, another group or another seed moves a thumbnail by far more.
Sticker tags and mashup readings are exact. To re-record after an intended behaviour change:
`GOLDEN_RECORD=1 pytest tests/model/test_golden.py -s` (writes the .npz files; paste the printed tags).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.checkpoint import SHIPPED_CHECKPOINT

CHECKPOINTS = SHIPPED_CHECKPOINT.parent
PROMPTS = ["축하해", "pizza party", "고양이 + 왕관", "🐱👑", "🍕"]
SEED = 7
RECORD = bool(os.environ.get("GOLDEN_RECORD"))

FILE_SHA256 = {
    "base.pt": "5581dfb1559b94c030d172e0c0bd0639009d947d0596c2f8b18ad765eab39a09",
    "composer.pt": "6bedf477ff6d835514639798ef33cb68634fac98d9000e262aa74057cada871a",
    "maskgit.pt": "b7bb3613b3d50cf7176095a0f32ac679afd0ad564582b59480b203105ac3b46d",
}
# files every arch shares
SHARED_FILE_SHA256 = {"upscaler.pt": "0277fa806ef1b67358f335f7f3d4cf2cfe6fad18854824fe93d5122911c11149"}
GOLDEN = Path(__file__).parent / "golden"  # {checkpoint stem}.npz: "generate" and "emoji_gen" thumbnails
GOLDEN_TOLERANCE = (
    6  # of 255, on 8x8 box means: float kernels move them by 0-2, a different drawing by dozens
)
# per checkpoint: the sticker tag (related emoji) of every prompt; the text side of issue 12 (model.reading)
# reads the whole "고양이 + 왕관" as a cat (😽) where the encoder alone said 👑 — the drawings are unchanged
TAGS = {
    "base.pt": ["👏", "🍕", "😽", "🐱", "🍕"],
    "maskgit.pt": ["👏", "🍕", "😽", "🐱", "🍕"],
    "composer.pt": ["👏", "🍕", "😽", "🐱", "🍕"],  # v1's text side, so v1's tags
}
# the mashup reading (base, modifier) of every prompt, None if it is not one
PARTS = [None, None, ("고양이", "왕관"), ("🐱", "👑"), None]
# what `draw` reports: v3 draws the crown on the cat in one pass and names the modifier
DRAW_PARTS = {"composer.pt": [None, None, ("고양이", "왕관"), ("🐱", "crown"), None]}

pytestmark = pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="no shipped checkpoint")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def thumbnails(images) -> np.ndarray:
    """(N, 8, 8, 4) uint8 box means of RGBA images of any size."""
    return np.stack([np.asarray(im.convert("RGBA").resize((8, 8), Image.Resampling.BOX)) for im in images])


def check_drawings(name: str, key: str, images) -> None:
    path = GOLDEN / f"{Path(name).stem}.npz"
    ours = thumbnails(images)
    if RECORD:
        saved = dict(np.load(path)) if path.is_file() else {}
        GOLDEN.mkdir(exist_ok=True)
        np.savez_compressed(path, **(saved | {key: ours}))
        print(f"\nrecorded {path.name}[{key}]")
        return
    golden = np.load(path)[key]
    assert ours.shape == golden.shape
    worst = np.abs(ours.astype(int) - golden.astype(int)).max(axis=(1, 2, 3))
    assert worst.max() <= GOLDEN_TOLERANCE, (
        f"images {np.nonzero(worst > GOLDEN_TOLERANCE)[0]} redrawn: {worst}"
    )


def check(table: dict, name: str, value) -> None:
    if RECORD:
        print(f"\n{name}: {value!r}")
        return
    assert value == table[name]


@pytest.fixture(scope="module", params=sorted(FILE_SHA256))
def shipped(request):
    from model import Generator

    path = CHECKPOINTS / request.param
    if not path.is_file():
        pytest.skip(f"no {path.name}")
    return request.param, Generator.load(path, device="cpu")


def test_checkpoint_files_are_unchanged(shipped):
    name, _ = shipped
    check(FILE_SHA256, name, sha256_file(CHECKPOINTS / name))


def test_upscaler_file_is_unchanged():
    """Every arch's pixels go through the refiner: a new one changes all digests below, on purpose only."""
    check(SHARED_FILE_SHA256, "upscaler.pt", sha256_file(CHECKPOINTS / "upscaler.pt"))


def test_generate_bytes_are_unchanged(shipped):
    name, generator = shipped
    rows = generator.generate(PROMPTS, count=2, seed=SEED)
    check_drawings(name, "generate", [image for row in rows for image in row])


def test_sticker_tags_are_unchanged(shipped):
    name, generator = shipped
    check(TAGS, name, [generator.related_emoji(text) for text in PROMPTS])


def test_mashup_readings_are_unchanged(shipped):
    _, generator = shipped
    readings = [generator.mashup(text) for text in PROMPTS]
    assert [(m.base, m.modifier) if m else None for m in readings] == PARTS


def test_emoji_gen_320_bytes_are_unchanged(shipped, tmp_path):
    from model.sample import main

    name, _ = shipped
    out = tmp_path / "out"
    argv = [*PROMPTS, "--count", "2", "--seed", str(SEED), "--size", "320", "--device", "cpu"]
    assert main([*argv, "--checkpoint", str(CHECKPOINTS / name), "--out", str(out)]) == 0
    files = sorted(out.iterdir())
    assert [p.name for p in files] == [f"{i:04d}_{k}.png" for i in range(len(PROMPTS)) for k in range(2)]
    check_drawings(name, "emoji_gen", [Image.open(p) for p in files])


def test_draw_is_generate_with_its_tag_and_reading(shipped):
    """`draw` returns in one call what generate, related_emoji and mashup used to compute separately."""
    name, generator = shipped
    drawings = generator.draw([(text, 2, SEED) for text in PROMPTS])
    images = [image for d in drawings for image in d.images]
    direct = [image for row in generator.generate(PROMPTS, count=2, seed=SEED) for image in row]
    assert [im.tobytes() for im in images] == [im.tobytes() for im in direct]  # exact on one machine
    check(TAGS, name, [d.tag for d in drawings])
    assert [d.parts for d in drawings] == DRAW_PARTS.get(name, PARTS)
