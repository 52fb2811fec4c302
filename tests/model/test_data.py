"""Dataset building from the real open data (Noto Color Emoji + CLDR), on a handful of glyphs."""

import numpy as np
import pytest

from model.data import DataError, EmojiDataset, build_dataset, find_cldr, find_font, group_key, split_texts


def test_glyphs_render_to_transparent_72px_rgba(tiny_dataset_path):
    ds = EmojiDataset.load(tiny_dataset_path)
    assert ds.images.shape[1:] == (72, 72, 4) and ds.images.dtype == np.uint8
    for image in ds.images:
        alpha = image[..., 3]
        assert alpha[0, 0] == 0 and alpha[36, 36] > 200  # transparent corner, opaque middle
        ys, xs = np.nonzero(alpha)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) >= 68  # fitted to the canvas


def test_skin_tone_variants_share_a_group(tiny_dataset_path):
    ds = EmojiDataset.load(tiny_dataset_path)
    thumbs = [ds.image_group[ds.emojis.index(e)] for e in ("👍", "👍🏽")]
    assert thumbs[0] == thumbs[1]
    assert ds.num_groups == len(ds.emojis) - 1
    assert group_key("👩‍⚕️") == group_key("👨🏽‍⚕️")


def test_texts_come_from_cldr_in_korean_and_english(tiny_dataset_path):
    ds = EmojiDataset.load(tiny_dataset_path)
    cat = ds.image_group[ds.emojis.index("🐱")]
    cat_texts = {t for t, g in zip(ds.pair_texts, ds.pair_groups, strict=True) if g == cat}
    assert {"고양이", "cat"} <= cat_texts
    assert {"cldr-ko", "cldr-en"} <= set(ds.pair_source)


def test_held_out_split_is_fixed_and_disjoint(tiny_dataset_path):
    ds = EmojiDataset.load(tiny_dataset_path)
    train, held = split_texts(ds)
    assert held and not (train & held)
    assert split_texts(ds) == (train, held)


def test_missing_font_names_the_debian_package(tmp_path):
    with pytest.raises(DataError, match="fonts-noto-color-emoji"):
        find_font(tmp_path / "nope.ttf")


def test_missing_cldr_names_the_debian_package(tmp_path):
    with pytest.raises(DataError, match="unicode-cldr-core"):
        find_cldr(tmp_path)
    with pytest.raises(DataError, match="unicode-cldr-core"):
        build_dataset(cldr_path=tmp_path, only=["🐱"])
