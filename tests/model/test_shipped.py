"""The shipped checkpoint draws what it was taught: a keyword's samples look like that keyword's emoji."""

from pathlib import Path

import numpy as np
import pytest
import torch

from model.archs import ARCHS
from model.checkpoint import SHIPPED_CHECKPOINT
from model.data import find_cldr, load_or_build
from model.evaluate import NearestEmoji
from model.kitchen import Kitchen, read_labels
from model.modifiers import VOCAB, read_modifiers
from model.recogniser import colour_found
from model.sample import Generator
from model.train_data import images_tensor

pytestmark = pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="no shipped checkpoint")


@pytest.fixture(scope="module")
def real_emoji(tmp_path_factory):
    return load_or_build(Path(tmp_path_factory.mktemp("data")) / "dataset.npz")


SHIPPED_ARCHS = {"base.pt": "cvae", "maskgit.pt": "maskgit", "composer.pt": "composer"}


@pytest.fixture(scope="module", params=list(SHIPPED_ARCHS))
def shipped_path(request) -> Path:
    path = SHIPPED_CHECKPOINT.with_name(request.param)
    if not path.is_file():
        pytest.skip(f"no {path.name}")
    return path


@pytest.fixture(scope="module")
def shipped(shipped_path) -> Generator:
    return Generator.load(shipped_path, "cpu")


@pytest.mark.parametrize("keyword", ["고양이", "피자", "하트", "로켓", "pizza", "rocket"])
def test_keyword_samples_are_nearest_to_that_keywords_emoji(keyword, real_emoji, shipped):
    acceptable = {
        g for t, g in zip(real_emoji.pair_texts, real_emoji.pair_groups.tolist(), strict=True) if t == keyword
    }
    assert acceptable, f"{keyword} is a CLDR keyword"
    images = shipped.generate([keyword], count=4, seed=0)[0]
    found = NearestEmoji(real_emoji).groups(np.stack([np.asarray(im) for im in images]))
    hits = sum(int(g) in acceptable for g in found)
    assert hits >= 3, f"{keyword}: nearest real emoji {[real_emoji.groups[g] for g in found]}"


def test_shipped_checkpoint_is_small_and_describes_itself(shipped_path, shipped):
    assert shipped_path.stat().st_size <= 30 * 2**20  # each file, not only the default one
    assert shipped.arch == SHIPPED_ARCHS[shipped_path.name] and shipped.arch in ARCHS
    assert len(shipped.meta.groups) == shipped.model.cfg.num_groups
    assert shipped.meta.emoji_names["🍕"] == "pizza"  # emoji in prompts read as their CLDR name


@pytest.fixture(scope="module")
def composer() -> Generator:
    path = SHIPPED_CHECKPOINT.with_name("composer.pt")
    if not path.is_file():
        pytest.skip("no composer.pt")
    return Generator.load(path, "cpu")


def premultiplied(images) -> list[torch.Tensor]:
    out = []
    for im in images:
        x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255
        out.append(torch.cat([x[:3] * x[3:], x[3:]]))
    return out


@pytest.mark.parametrize(
    ("text", "colour"), [("파란 고양이", "blue"), ("pink pizza", "pink"), ("초록 자동차", "green")]
)
def test_v3_draws_the_thing_in_the_asked_colour(text, colour, composer):
    mod = next(m for m in VOCAB["colour"] if m.key == colour)
    bare = read_modifiers(text).base
    asked = [colour_found(x, mod) for x in premultiplied(composer.generate([text], count=4, seed=0)[0])]
    plain = [colour_found(x, mod) for x in premultiplied(composer.generate([bare], count=4, seed=0)[0])]
    assert sum(asked) >= 3 and sum(asked) > sum(plain), (asked, plain)


def test_v3_kitchen_parts_exist_in_the_real_dataset(real_emoji):
    kitchen = Kitchen(
        images_tensor(real_emoji), real_emoji.image_group, list(real_emoji.groups), read_labels(find_cldr())
    )
    assert set(kitchen.layers) == {m.key for m in VOCAB["expression"] + VOCAB["accessory"]}
    assert sum(bool(k) for k in kitchen.kinds) > 0.6 * len(kitchen.kinds)  # most things take a modifier
