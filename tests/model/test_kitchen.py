"""The data kitchen: composites of real emoji parts, and the held-out pairs it never makes."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from model.data import EmojiDataset, find_cldr, group_key
from model.kitchen import (
    Kitchen,
    content_box,
    dominant_hue,
    is_held_out,
    kinds_for,
    read_labels,
    recolour,
)
from model.modifiers import VOCAB, Modifiers
from model.recogniser import colour_found
from model.train_data import images_tensor


@pytest.fixture(scope="module")
def kitchen(tiny_dataset_path) -> Kitchen:
    ds = EmojiDataset.load(tiny_dataset_path)
    return Kitchen(images_tensor(ds), ds.image_group, list(ds.groups), read_labels(find_cldr()))


def image_of(kitchen: Kitchen, emoji: str) -> tuple[int, torch.Tensor]:
    group = kitchen.index[group_key(emoji)]
    return group, kitchen.images[kitchen.members[group][0]]


def test_labels_say_which_thing_takes_which_modifier(kitchen):
    assert kinds_for("Food & Drink / food-prepared") == {"expression", "accessory", "colour"}
    assert kinds_for("Smileys & People / face-negative") == {"accessory", "colour"}  # it has a face already
    assert kinds_for("Flags / country-flag") == set()
    pizza, _ = image_of(kitchen, "🍕")
    crying_face, _ = image_of(kitchen, "😭")
    assert "expression" in kitchen.kinds[pizza] and "expression" not in kitchen.kinds[crying_face]


def test_labels_file_ranges_and_sequences_are_expanded(tmp_path):
    labels = tmp_path / "properties" / "labels.txt"
    labels.parent.mkdir()
    labels.write_text("# comment\n[😀-😂{👨‍🍳}🍕] ; Smileys & People ; face-positive\n", encoding="utf-8")
    read = read_labels(tmp_path)
    assert {k for k in read} == {group_key(e) for e in ("😀", "😁", "😂", "👨‍🍳", "🍕")}
    assert read_labels(tmp_path / "missing") == {}


def test_recolour_turns_the_main_colour_to_the_asked_hue_and_keeps_the_shape(kitchen):
    _, pizza = image_of(kitchen, "🍕")
    blue = next(m for m in VOCAB["colour"] if m.key == "blue")
    before, after = dominant_hue(pizza), dominant_hue(recolour(pizza, blue.rgb))
    assert not colour_found(pizza, blue) and colour_found(recolour(pizza, blue.rgb), blue)
    assert abs(before[0] - after[0]) > math.radians(90)
    assert torch.equal(recolour(pizza, blue.rgb)[3], pizza[3])  # the silhouette is untouched


def test_a_face_lands_on_the_thing_and_an_accessory_on_top(kitchen):
    group, pizza = image_of(kitchen, "🍕")
    with_face = kitchen.compose(pizza, Modifiers.of("crying"))
    changed = (with_face - pizza).abs().sum(0) > 0.2
    top, bottom, left, right = content_box(pizza)
    ys, xs = changed.nonzero(as_tuple=True)
    assert changed.sum() > 100
    assert top <= ys.float().mean() <= bottom and left <= xs.float().mean() <= right
    assert kitchen.takes(group, VOCAB["expression"][0])


def test_held_out_pairs_are_never_made_for_training(kitchen):
    rng = random.Random(0)
    made = set()
    for _ in range(2000):
        group = rng.randrange(len(kitchen.groups))
        for mod in kitchen.random_modifiers(group, rng).named():
            made.add((group, mod.key))
    held = {(g, m.key) for g, m in kitchen.held_out_pairs()}
    assert made and held  # both splits exist even on ten emoji
    assert not made & held
    assert all(is_held_out(kitchen.groups[g], key) for g, key in held)
    assert not any(is_held_out(kitchen.groups[g], key) for g, key in made)


def test_every_composite_stays_a_clean_premultiplied_image(kitchen):
    rng = random.Random(1)
    for group in range(len(kitchen.groups)):
        mods = kitchen.random_modifiers(group, rng, two=1.0)
        out = kitchen.compose(kitchen.images[kitchen.members[group][0]], mods)
        assert out.shape == (4, 72, 72)
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        assert bool((out[:3] <= out[3:] + 1e-5).all())  # colour never exceeds alpha
        frame = np.concatenate([out[3, :2].flatten(), out[3, -2:].flatten()])
        assert frame.mean() < 0.5, mods


def test_dominant_hue_is_none_for_grey_things():
    grey = torch.zeros(4, 72, 72)
    grey[:, 10:60, 10:60] = 0.5
    grey[3, 10:60, 10:60] = 1.0
    assert dominant_hue(grey) is None
    assert torch.equal(recolour(grey, (0, 0, 255)), grey)
