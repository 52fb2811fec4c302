"""`emoji-train eval`'s sharpness numbers: a real emoji measures as itself, a blurred one does not."""

import json

import numpy as np
from PIL import Image, ImageFilter

from model.cli import main as emoji_train
from model.data import EmojiDataset, render_emoji
from model.evaluate import NearestEmoji, RealDetail, sharpness


def real_pair(dataset: EmojiDataset, real: RealDetail) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's 72-px emoji and the font's 320-px renderings of them."""
    large = [np.asarray(render_emoji(real.font, e, 320)) for e in dataset.emojis]
    return dataset.images, np.stack(large)


def test_real_emoji_measure_as_themselves_and_blur_shows(tiny_dataset_path):
    dataset = EmojiDataset.load(tiny_dataset_path)
    real = RealDetail(dataset)
    small, large = real_pair(dataset, real)
    same = sharpness(NearestEmoji(dataset), real, small, large)
    assert abs(same["detail72"] - 1) < 1e-6 and abs(same["detail320"] - 1) < 1e-6
    assert abs(same["semi_ratio"] - 1) < 1e-6 and same["frame_ok"] == 1.0

    def blurred(images: np.ndarray, radius: float) -> np.ndarray:
        return np.stack(
            [np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(radius))) for im in images]
        )

    soft = sharpness(NearestEmoji(dataset), real, blurred(small, 1.5), blurred(large, 6))
    assert soft["detail72"] < 0.8 and soft["detail320"] < 0.8
    assert soft["semi_ratio"] > 1.2  # blur turns hard edges into half-transparent ones


def test_eval_writes_the_sharpness_columns(tiny_checkpoint, tiny_dataset_path, tmp_path):
    out, grid = tmp_path / "eval.json", tmp_path / "grid.png"
    args = ["eval", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_dataset_path)]
    args += ["--limit", "4", "--samples", "2", "--json", str(out), "--grid", str(grid)]
    assert emoji_train(args) in (0, None)
    rows = json.loads(out.read_text(encoding="utf-8"))
    sets = [r for r in rows if r["set"] != "real emoji (reference)" and "hit@1" in r]
    assert {"cldr-seen", "cldr-held-out"} <= {r["set"] for r in sets}
    for row in sets:
        assert 0 <= row["copy"] <= 1 and 0 <= row["novel"] <= 1 and row["copy"] + row["novel"] <= 1
        for column in ("hit@1", "detail72", "detail320", "semi_ratio", "frame_ok"):
            assert np.isfinite(row[column]), (row["set"], column)
        assert row["frame_ok"] == 1.0  # every output keeps its transparent margin
    assert Image.open(grid).size[0] > 0
    new = {r["set"]: r for r in rows if "hit@1" not in r}  # issue 10's rows: two concepts, seeds, reference
    assert 0 <= new["two-concept-held-out"]["both"] <= new["two-concept-held-out"]["thing"] <= 1
    assert 1 <= new["seeds-16"]["distinct16"] <= 16
    ceiling = new["kitchen composites of the held-out pairs (reference)"]
    assert ceiling["both"] <= min(ceiling["thing"], ceiling["modifier"])
