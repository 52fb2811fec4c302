"""A server's model is a delta over its base: small, the same images as the whole fine-tuned model, and
refused by any other base."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.checkpoint import CheckpointError, read_checkpoint, save_checkpoint, write_atomically
from model.delta import BaseMismatch
from model.finetune import finetune
from model.sample import Generator
from tests.model.test_finetune import EXAMPLES, badge
from tests.support import BASE_CHECKPOINT, COMPOSER_CHECKPOINT, MASKGIT_CHECKPOINT

JOBS = [("party parrot", 2, 3), ("우리팀 마스코트", 2, 5), ("pizza", 1, 11)]


@pytest.fixture(scope="module")
def tuned(tiny_checkpoint, tmp_path_factory):
    """(base checkpoint, its server model's delta, the same fine-tune as a whole checkpoint)."""
    folder = tmp_path_factory.mktemp("delta")
    delta, whole = folder / "server.pt", folder / "whole.pt"
    finetune(EXAMPLES, delta, base=tiny_checkpoint, steps=6, device="cpu", full_out=whole)
    return tiny_checkpoint, delta, whole


def pixels(generator: Generator) -> list[np.ndarray]:
    return [np.asarray(im) for drawing in generator.draw(JOBS) for im in drawing.images]


def test_a_delta_draws_what_the_whole_fine_tuned_model_draws(tuned):
    base_path, delta, whole = tuned
    base = Generator.load(base_path, "cpu")

    served = Generator.load(delta, base=base)
    reference = Generator.load(whole, base=base)  # a whole per-server checkpoint (older bots') loads as it is

    assert served.meta.custom_names == ["party parrot", "우리팀 마스코트"]
    for mine, theirs in zip(pixels(served), pixels(reference), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert delta.stat().st_size < whole.stat().st_size / 4
    # the base's own tensors are shared, not copied: a loaded server model costs about its delta
    base_storage = {t.untyped_storage().data_ptr() for t in base.model.state_dict().values()}
    shared = [t for t in served.model.state_dict().values() if t.untyped_storage().data_ptr() in base_storage]
    assert sum(t.numel() for t in shared) > 0.5 * sum(p.numel() for p in base.model.parameters())


def test_without_its_base_a_delta_loads_the_file_it_was_trained_from(tuned):
    base_path, delta, whole = tuned

    alone = Generator.load(delta, "cpu")

    for mine, theirs in zip(pixels(alone), pixels(Generator.load(whole, "cpu")), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_a_delta_refuses_another_base_with_a_clear_error(tuned, tmp_path):
    base_path, delta, _ = tuned
    payload = read_checkpoint(base_path)
    relabelled = tmp_path / "other.pt"  # the same weights, other bytes: another base as far as anyone knows
    base = Generator.load(base_path, "cpu")
    save_checkpoint(relabelled, base.model, dataclasses.replace(base.meta, label="other"), half=True)
    assert payload["meta"]["label"] == "tiny"

    refused = r"fine-tuned from another base model \(tiny, sha256 [0-9a-f]{12}\)"
    with pytest.raises(BaseMismatch, match=refused):
        Generator.load(delta, base=Generator.load(relabelled, "cpu"))
    with pytest.raises(BaseMismatch):  # nor on top of another server model
        Generator.load(delta, base=Generator.load(delta, base=base))


def test_a_delta_whose_base_is_gone_says_which_base_it_needs(tuned, tmp_path, monkeypatch):
    _, delta, _ = tuned
    payload = torch.load(delta, weights_only=True)
    payload["base"]["path"] = str(tmp_path / "moved.pt")
    moved = tmp_path / "server.pt"
    write_atomically(moved, payload)
    monkeypatch.setattr("model.delta.SHIPPED_CHECKPOINT", tmp_path / "nothing.pt")

    with pytest.raises(BaseMismatch, match="fine-tuned from base model tiny .* not at .*moved.pt"):
        Generator.load(moved, "cpu")
    with pytest.raises(CheckpointError, match="server model"):
        read_checkpoint(moved)  # the whole-model reader says what the file is


def test_a_crash_while_writing_leaves_the_old_delta_serving(tuned, tmp_path, monkeypatch):
    base_path, delta, _ = tuned
    served_path = tmp_path / "run.pt"
    served_path.write_bytes(delta.read_bytes())
    base = Generator.load(base_path, "cpu")
    before = pixels(Generator.load(served_path, base=base))

    def dies_halfway(payload, fh):
        fh.write(b"half a delta")
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        finetune(EXAMPLES[:1], served_path, base=base_path, steps=1, device="cpu")
    monkeypatch.undo()

    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temp file left behind
    for mine, theirs in zip(pixels(Generator.load(served_path, base=base)), before, strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(
    "base_path",
    [BASE_CHECKPOINT, MASKGIT_CHECKPOINT, COMPOSER_CHECKPOINT],
    ids=["base.pt", "maskgit.pt", "composer.pt"],
)
def test_a_server_model_of_a_shipped_base_is_under_2_mb(base_path, tmp_path):
    if not base_path.exists():
        pytest.skip(f"{base_path.name} is not trained yet")
    names = [(f"mascot {i}", badge(colour, "circle")) for i, colour in enumerate(["red", "gold", "teal"])]

    finetune(names, tmp_path / "server.pt", base=base_path, steps=1, device="cpu")

    assert (tmp_path / "server.pt").stat().st_size <= 2 * 1024 * 1024
    served = Generator.load(tmp_path / "server.pt", base=Generator.load(base_path, "cpu"))
    assert served.meta.custom_names == ["mascot 0", "mascot 1", "mascot 2"]
