"""The shipped checkpoint draws what it was taught: a keyword's samples look like that keyword's emoji."""

from pathlib import Path

import numpy as np
import pytest

from model.archs import ARCHS
from model.checkpoint import SHIPPED_CHECKPOINT
from model.data import load_or_build
from model.evaluate import NearestEmoji
from model.sample import Generator

pytestmark = pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="no shipped checkpoint")


@pytest.fixture(scope="module")
def real_emoji(tmp_path_factory):
    return load_or_build(Path(tmp_path_factory.mktemp("data")) / "dataset.npz")


SHIPPED_ARCHS = {"base.pt": "cvae", "maskgit.pt": "maskgit"}


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
