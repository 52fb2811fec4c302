"""Regression guard for the issue-11 refactor: the shipped checkpoints draw the same bytes as before it.

Every digest below was computed from the code as it was *before* the refactor (commit e502664), so a change
that moves code around but alters one pixel, one sticker tag or one checkpoint byte fails here. To re-record
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
# per checkpoint: sha256 over every generated PNG (prompt order, then sample order)
GENERATE_SHA256 = {
    "base.pt": "91ff6823de9e1a9bdd1d9c2fcaeaf1a34c9fcdf48de8045429d20a953ada504a",
    "maskgit.pt": "28294cda8b8d6938e36b47409431c08431de9da5986b4c72ed5ed7a012f01c85",
}
# per checkpoint: sha256 over emoji-gen --size 320's files, in name order
EMOJI_GEN_SHA256 = {
    "base.pt": "a3cd8ddc12b3c9a7abc014f719d2b5f5ff1b17b1af924ecc09c3c14b303cf5ce",
    "maskgit.pt": "c5458d5a803ff44d3b7e163474d602a8d11800c5162a2db9a51f098a64651b8d",
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
