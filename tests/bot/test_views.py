"""The result message without Discord: which buttons a result shows, what they name, what files it posts."""

from __future__ import annotations

import io
import re

from PIL import Image

from bot.results import ResultRecord, SaveKind
from bot.views import BUTTON_TEMPLATE, FALLBACK_TAG, Result, render_files, result_embed, result_view
from model import Drawing

GUILD = 1111


def drawn(count: int = 1, *, guild_id: int | None = GUILD, tag: str = "🎉", parts=None, **fields) -> Result:
    record = ResultRecord(7, guild_id, 42, "축하해", 5, count, False, "cvae · base")
    images = [Image.new("RGBA", (72, 72), (40 * i, 90, 200, 255)) for i in range(count)]
    return Result(record, Drawing(images, tag, parts), **fields)


def buttons(result: Result) -> list:
    """The view's buttons (each ResultButton wraps one ``discord.ui.Button``)."""
    return [item.item for item in result_view(result).children]


def labels(result: Result) -> list[str]:
    return [button.label for button in buttons(result)]


def test_candidates_get_pick_buttons_and_no_save_buttons_until_one_is_picked():
    result = drawn(3)

    assert labels(result) == ["Pick 1", "Pick 2", "Pick 3", "Reroll"]
    assert result.chosen is None and not result.decided
    picked = drawn(3, pick=1)
    assert labels(picked) == ["Reroll", "Add as server emoji", "Add as sticker"]
    assert picked.chosen is picked.images[1]


def test_every_button_names_its_action_candidate_and_stored_result():
    ids = [button.custom_id for button in buttons(drawn(2))]

    assert ids == ["emoji:pick:1:7", "emoji:pick:2:7", "emoji:reroll:0:7"]
    assert all(re.fullmatch(BUTTON_TEMPLATE, custom_id) for custom_id in ids)  # what ResultButton parses
    assert [button.custom_id for button in buttons(drawn(2, pick=1))][1:] == [
        "emoji:save-emoji:2:7",
        "emoji:save-sticker:2:7",
    ]


def test_a_saved_image_shows_a_disabled_added_label():
    result = drawn(1, saved={SaveKind.EMOJI: ":chukhahae:"})

    by_label = {button.label: button for button in buttons(result)}
    assert by_label["Added :chukhahae:"].disabled
    assert not by_label["Add as sticker"].disabled


def test_no_save_buttons_in_direct_messages():
    assert labels(drawn(1, guild_id=None)) == ["Reroll"]


def test_the_embed_names_seed_model_and_mashup():
    fields = {f.name: f.value for f in result_embed(drawn(1, parts=("고양이", "왕관"))).fields}

    assert fields == {"Seed": "5", "Model": "cvae · base", "Mashup": "고양이 + 왕관"}
    assert "Mashup" not in {f.name for f in result_embed(drawn(1)).fields}
    assert "pick one" in result_embed(drawn(2)).fields[-1].value


def test_files_are_the_sticker_sized_image_then_the_72_px_original():
    result = drawn(1)
    (big_name, big), (small_name, small) = render_files(result)

    assert (big_name, small_name) == (f"{result.name}.png", f"{result.name}_72.png")
    assert Image.open(io.BytesIO(big)).size == (320, 320)
    assert Image.open(io.BytesIO(small)).size == (72, 72)
    grid, *singles = render_files(drawn(3))
    assert grid[0].endswith("_grid.png") and len(singles) == 3


def test_the_sticker_tag_falls_back_when_the_model_found_none():
    assert drawn(1, tag="").tag == FALLBACK_TAG
    assert drawn(1).tag == "🎉"
