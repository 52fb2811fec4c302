"""Regression guard for the issue-11 refactor: the shipped checkpoints draw the same bytes as before it.

The digests were first computed before the refactor (commit e502664) and re-recorded once on purpose, when
the refiner (checkpoints/upscaler.pt) began cutting every size from its 288-px drawing; a change that moves
code around but alters one pixel, one sticker tag or one checkpoint byte fails here. To re-record
after an intended behaviour change: `GOLDEN_RECORD=1 pytest tests/model/test_golden.py -s` and paste the
output.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from model.checkpoint import SHIPPED_CHECKPOINT

CHECKPOINTS = SHIPPED_CHECKPOINT.parent
PROMPTS = ["축하해", "pizza party", "고양이 + 왕관", "🐱👑", "🍕"]
SEED = 7
RECORD = bool(os.environ.get("GOLDEN_RECORD"))

FILE_SHA256 = {
    "base.pt": "5581dfb1559b94c030d172e0c0bd0639009d947d0596c2f8b18ad765eab39a09",
    "maskgit.pt": "b7bb3613b3d50cf7176095a0f32ac679afd0ad564582b59480b203105ac3b46d",
}
# files every arch shares
SHARED_FILE_SHA256 = {"upscaler.pt": "0277fa806ef1b67358f335f7f3d4cf2cfe6fad18854824fe93d5122911c11149"}
# per checkpoint: sha256 over every generated PNG (prompt order, then sample order)
GENERATE_SHA256 = {
    "base.pt": "bafd585e4aeac125f88537e432e46dd6711dd2e5c006026a4cc05c69deca79d0",
    "maskgit.pt": "78081255ebbaa60a60b3a7da7b74105d50182897ec6af5de6cac66f43b2d56f7",
}
# per checkpoint: sha256 over emoji-gen --size 320's files, in name order
EMOJI_GEN_SHA256 = {
    "base.pt": "f17308b32d272fc318ac91dc25e8e1a4b59b83909e21bfabbb0dd1cb2b048e21",
    "maskgit.pt": "393eac0e44b46c0a203b2b31de1336423c1f180dde36c749be828cdd0b35ce31",
}
# per checkpoint: the sticker tag (related emoji) of every prompt; the text side of issue 12 (model.reading)
# reads the whole "고양이 + 왕관" as a cat (😽) where the encoder alone said 👑 — the drawings are unchanged
TAGS = {
    "base.pt": ["👏", "🍕", "😽", "🐱", "🍕"],
    "maskgit.pt": ["👏", "🍕", "😽", "🐱", "🍕"],
}
# the mashup reading (base, modifier) of every prompt, None if it is not one
PARTS = [None, None, ("고양이", "왕관"), ("🐱", "👑"), None]

pytestmark = pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="no shipped checkpoint")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def png_digest(images) -> str:
    digest = hashlib.sha256()
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        digest.update(hashlib.sha256(buffer.getvalue()).digest())
    return digest.hexdigest()


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
    check(GENERATE_SHA256, name, png_digest([image for row in rows for image in row]))


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
    digest = hashlib.sha256()
    for path in sorted(out.iterdir()):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    check(EMOJI_GEN_SHA256, name, digest.hexdigest())


def test_draw_is_generate_with_its_tag_and_reading(shipped):
    """`draw` returns in one call what generate, related_emoji and mashup used to compute separately."""
    name, generator = shipped
    drawings = generator.draw([(text, 2, SEED) for text in PROMPTS])
    check(GENERATE_SHA256, name, png_digest([image for d in drawings for image in d.images]))
    check(TAGS, name, [d.tag for d in drawings])
    assert [d.parts for d in drawings] == PARTS
