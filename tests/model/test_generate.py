"""`emoji-gen` and `Generator`: the exact file contract, determinism, and bad input."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from model import EmptyTextError, Generator
from model.imaging import resize
from model.sample import main as emoji_gen


def run_gen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model.sample", *args], capture_output=True, text=True)


def test_writes_exactly_the_contract_files(tiny_checkpoint, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("피자\n\nrocket\n", encoding="utf-8")
    out = tmp_path / "out"
    rc = emoji_gen(
        [
            "고양이",
            "🐱 축하해",
            "--prompts-file",
            str(prompts),
            "--count",
            "2",
            "--seed",
            "1",
            "--out",
            str(out),
            "--checkpoint",
            str(tiny_checkpoint),
        ]
    )
    assert rc == 0
    expected = {f"{i:04d}_{k}.png" for i in range(4) for k in range(2)}
    assert {p.name for p in out.iterdir()} == expected
    with Image.open(out / "0000_0.png") as im:
        assert im.mode == "RGBA" and im.size == (72, 72)


def test_every_size_is_the_same_emoji(tiny_checkpoint, tmp_path):
    """--size 72, 128 and 320 are one drawing: 128 is the 320-px file resized, 72 its twin."""
    for size in ("72", "128", "320"):
        assert (
            emoji_gen(
                [
                    "하트",
                    "--size",
                    size,
                    "--seed",
                    "2",
                    "--out",
                    str(tmp_path / size),
                    "--checkpoint",
                    str(tiny_checkpoint),
                ]
            )
            == 0
        )
    big, small = Image.open(tmp_path / "320" / "0000_0.png"), Image.open(tmp_path / "72" / "0000_0.png")
    assert big.mode == "RGBA" and big.size == (320, 320)
    with Image.open(tmp_path / "128" / "0000_0.png") as mid:
        assert mid.tobytes() == resize(big, 128).tobytes()
    back = np.asarray(big.convert("RGBa").resize((72, 72), Image.Resampling.BOX), dtype=np.float32)
    # the tiny test model draws noise, the worst case for resampling; another image differs by ~30+
    assert np.abs(back - np.asarray(small.convert("RGBa"), dtype=np.float32)).mean() < 8


def test_same_inputs_and_seed_give_identical_files(tiny_checkpoint, tmp_path):
    for name in ("a", "b"):
        emoji_gen(
            [
                "축하해",
                "pizza",
                "--count",
                "3",
                "--seed",
                "7",
                "--out",
                str(tmp_path / name),
                "--checkpoint",
                str(tiny_checkpoint),
            ]
        )
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()


def test_images_do_not_depend_on_batch_mates(tiny_checkpoint):
    gen = Generator.load(tiny_checkpoint, "cpu")
    alone = gen.generate(["고양이"], 2, seed=5)[0]
    batched = gen.generate_batch([("rocket", 1, 9), ("고양이", 2, 5), ("하트", 3, 1)])[1]
    assert [im.tobytes() for im in alone] == [im.tobytes() for im in batched]


def test_odd_inputs_still_give_images(tiny_checkpoint):
    gen = Generator.load(tiny_checkpoint, "cpu")
    odd = ["🐱", "😀😀😀", "12345", "고양이 cat ねこ", "Z̴̡͓a̷l̸g̵o̶", "\x00\x07하트", "🫠"]
    for images in gen.generate(odd, 1, seed=0):
        assert len(images) == 1 and images[0].size == (72, 72) and images[0].mode == "RGBA"


def test_empty_text_is_a_clear_error(tiny_checkpoint):
    gen = Generator.load(tiny_checkpoint, "cpu")
    for text in ("", "   ", "\n\t", "\x00\x01"):
        with pytest.raises(EmptyTextError):
            gen.generate([text])
    result = run_gen("   ", "--checkpoint", str(tiny_checkpoint))
    assert result.returncode == 2 and "empty" in result.stderr


def test_long_text_is_truncated_with_a_warning(tiny_checkpoint, caplog):
    gen = Generator.load(tiny_checkpoint, "cpu")
    with caplog.at_level("WARNING"):
        images = gen.generate(["고양이 " * 60], 1, seed=0)
    assert images[0][0].size == (72, 72)
    assert "truncated" in caplog.text


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    result = run_gen("고양이", "--checkpoint", str(tmp_path / "none.pt"))
    assert result.returncode == 2 and "checkpoint not found" in result.stderr


def test_related_emoji_is_an_emoji_of_the_model(tiny_checkpoint):
    gen = Generator.load(tiny_checkpoint, "cpu")
    assert gen.related_emoji("고양이") in gen.group_emoji


def test_draw_returns_images_tag_and_reading_in_one_record(tiny_checkpoint):
    gen = Generator.load(tiny_checkpoint, "cpu")
    plain, mashup = gen.draw([("고양이", 2, 3), ("🐱 + 🍕", 1, 3)])
    assert [im.size for im in plain.images] == [(72, 72)] * 2 and plain.parts is None
    assert plain.tag == gen.related_emoji("고양이") and mashup.parts == ("🐱", "🍕")
    assert [d.images for d in gen.draw([("고양이", 2, 3)])] == gen.generate_batch([("고양이", 2, 3)])


def test_device_keeps_its_index(tiny_checkpoint):
    import torch

    from model.device import DeviceUnavailable, resolve_device

    gen = Generator.load(tiny_checkpoint, "cpu")
    assert gen.device == "cpu"
    assert Generator(gen.model, gen.meta, torch.device("cuda", 1)).device == "cuda:1"
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="no CUDA GPU"):
            resolve_device("cuda:1")
