"""Sharp output: the quality measures, the shipped refiner, the transparent margin, one imaging path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter, ImageFont

from model import Generator
from model.data import find_font, group_key, render_emoji
from model.imaging import MIN_FRAME_CLEAR, resize, with_margin
from model.quality import frame_transparency, interior_detail, semi_transparent_share
from model.sample import TextProbs
from model.train_upscale import HIGH, held_out, to_uint8
from model.upscale import load_refiner, refine, valid_premultiplied
from tests.support import BASE_CHECKPOINT, MASKGIT_CHECKPOINT

# faces, animals and food: emoji with small details (eyes, highlights, seeds)
CANDIDATES = [chr(c) for r in ((0x1F600, 0x1F650), (0x1F400, 0x1F440), (0x1F345, 0x1F380)) for c in range(*r)]


@pytest.fixture(scope="module")
def font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(find_font()), 109)


def premult(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGBa"), np.float32) / 255).permute(2, 0, 1)


def blur(image: Image.Image, radius: float) -> Image.Image:
    """Blurred in premultiplied space, as the generator's soft output is."""
    return image.convert("RGBa").filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")


def square(size: int, margin: int) -> Image.Image:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    image.paste((40, 90, 200, 255), (margin, margin, size - margin, size - margin))
    return image


def test_blur_lowers_interior_detail_and_raises_haze(font):
    real = render_emoji(font, "😀", 72)
    blurred = blur(real, 1.4)
    arr, soft = np.asarray(real), np.asarray(blurred)
    assert interior_detail(soft) < 0.8 * interior_detail(arr)
    assert semi_transparent_share(soft) > semi_transparent_share(arr)
    # the same drawing measures alike at 72 and 320 px (the bands scale with the size)
    big = np.asarray(render_emoji(font, "😀", 320))
    assert interior_detail(big) == pytest.approx(interior_detail(arr), rel=0.35)


def test_frame_transparency_sees_an_edge_to_edge_square():
    assert frame_transparency(np.asarray(square(72, 0))) == 0.0
    assert frame_transparency(np.asarray(square(72, 6))) == 1.0
    assert frame_transparency(np.asarray(square(320, 12))) == 1.0


def test_with_margin_shrinks_only_what_touches_the_frame():
    boxed = with_margin(square(72, 0))
    assert frame_transparency(np.asarray(boxed)) >= MIN_FRAME_CLEAR
    assert np.asarray(boxed)[36, 36].tolist() == [40, 90, 200, 255]  # still the same square, smaller
    roomy = square(72, 6)
    assert with_margin(roomy).tobytes() == roomy.tobytes()


def test_shipped_refiner_sharpens_held_out_real_emoji_better_than_bicubic(font):
    """On real emoji it never saw, blurred as v1 blurs: closer to the real 288-px image than bicubic."""
    refiner = load_refiner()
    picks = [e for e in CANDIDATES if held_out(group_key(e)) and render_emoji(font, e, 72)][:8]
    assert len(picks) >= 4
    real = torch.stack([premult(render_emoji(font, e, HIGH)) for e in picks])
    low = torch.nn.functional.avg_pool2d(real, 4)
    blurred = torch.stack([premult(blur(Image.fromarray(im), 1.4)) for im in to_uint8(low)])
    ours = refine(refiner, blurred)
    plain = valid_premultiplied(torch.nn.functional.interpolate(blurred, scale_factor=4, mode="bicubic"))
    assert (ours - real).abs().mean() < 0.85 * (plain - real).abs().mean()
    detail = [[interior_detail(im) for im in to_uint8(x)] for x in (ours, plain, real)]
    ours_d, plain_d, real_d = (np.array(d) for d in detail)
    assert np.mean(ours_d / real_d) > np.mean(plain_d / real_d) + 0.1
    assert semi_transparent_share(to_uint8(ours)) < semi_transparent_share(to_uint8(plain))


@pytest.mark.parametrize("checkpoint", [BASE_CHECKPOINT, MASKGIT_CHECKPOINT], ids=["v1", "v2"])
def test_boxed_glyph_prompts_keep_a_transparent_frame_at_every_size(checkpoint):
    """sos, atm, keycaps fill the canvas edge to edge as real emoji; ours keep a margin at 72, 128 and 320."""
    generator = Generator.load(checkpoint, device="cpu")
    drawings = generator.draw([(text, 2, seed) for seed, text in enumerate(["sos", "atm", "1️⃣", "🆓", "abc"])])
    for drawing in drawings:
        for k in range(len(drawing.images)):
            for size in (72, 128, 320):
                image = drawing.at_size(k, size)
                assert image.size == (size, size)
                assert frame_transparency(np.asarray(image)) >= MIN_FRAME_CLEAR, (drawing.tag, k, size)


def test_every_size_comes_from_the_one_high_resolution_drawing():
    generator = Generator.load(BASE_CHECKPOINT, device="cpu")
    (drawing,) = generator.draw([("고양이", 1, 4)])
    small, large = drawing.images[0], drawing.large[0]
    assert (small.size, large.size) == ((72, 72), (320, 320))
    assert drawing.at_size(0, 128).tobytes() == resize(large, 128).tobytes()
    # 72 and 320 px are Lanczos resizes of the one 288-px drawing: they agree
    back = np.asarray(large.convert("RGBa").resize((72, 72), Image.Resampling.BOX), np.float32)
    assert np.abs(back - np.asarray(small.convert("RGBa"), np.float32)).mean() < 3
    # and sharper than the model's own 72-px drawing of the same (text, seed, sample), the old output
    raw = generator._draw([("고양이", 4, 0)], TextProbs(generator.group_probs))
    assert interior_detail(np.asarray(small)) > interior_detail(to_uint8(torch.from_numpy(raw))[0])


def test_emoji_train_upscaler_trains_saves_and_resumes(tiny_dataset_path, tmp_path):
    """The recipe's command on a tiny dataset: a loadable refiner with its report, then `--resume` goes on."""
    from model.cli import main

    out = tmp_path / "up.pt"
    common = [
        "upscaler",
        "--out",
        str(out),
        "--data",
        str(tiny_dataset_path),
        "--batch",
        "4",
        "--channels",
        "8",
    ]
    assert main([*common, "--minutes", "0.1", "--save-every", "0.02"]) == 0
    first = load_refiner(out)
    assert first.cfg.channels == 8 and first.meta["kind"] == "upscaler"
    assert {"refiner_l1", "bicubic_l1", "refiner_detail"} <= set(first.meta["report"])
    assert out.with_name("up.pt.train").is_file()
    assert main([*common, "--minutes", "0.15", "--resume"]) == 0
    assert load_refiner(out).meta["step"] > first.meta["step"]
