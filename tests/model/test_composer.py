"""Generator v3 (arch "composer"): a thing plus modifiers in one drawing, built on v1's decoder."""

from __future__ import annotations

import pytest
import torch

from model.checkpoint import read_checkpoint
from model.cli import main
from model.composer import ComposerConfig, EmojiComposer
from model.modifiers import Modifiers
from model.networks import SIZES as CVAE_SIZES
from model.networks import CVAEConfig, EmojiCVAE
from model.sample import Generator


def tiny_pair() -> tuple[EmojiCVAE, EmojiComposer]:
    torch.manual_seed(0)
    v1 = EmojiCVAE(CVAEConfig(num_groups=5, **CVAE_SIZES["tiny"])).eval()
    v3 = EmojiComposer(ComposerConfig(num_groups=5, **CVAE_SIZES["tiny"])).eval()
    missing = v3.load_state_dict(v1.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(("modifiers.", "mix.")) for k in missing)
    return v1, v3


def test_a_fresh_composer_draws_exactly_what_its_v1_start_draws():
    v1, v3 = tiny_pair()
    z, groups = torch.randn(4, v1.cfg.z_dim), torch.tensor([0, 1, 2, 3])
    mods = torch.tensor([Modifiers.of("blue", "crown").ids()] * 4)
    with torch.no_grad():
        plain = v1.decode(z, v1.groups(groups))
        assert torch.equal(v3.decode(z, v3.condition(groups)), plain)
        assert torch.equal(v3.decode(z, v3.condition(groups, torch.zeros_like(mods))), plain)
        # the mixer starts at zero, but the modifier embeddings already move the condition
        assert not torch.equal(v3.condition(groups, mods), v3.condition(groups))


def test_rows_without_modifiers_do_not_depend_on_the_rows_beside_them():
    _, v3 = tiny_pair()
    torch.nn.init.normal_(v3.mix[-1].weight)  # as after training
    groups = torch.tensor([0, 1, 2])
    mixed = torch.tensor([[0, 0, 0], Modifiers.of("crying").ids(), [0, 0, 0]])
    with torch.no_grad():
        assert torch.equal(v3.condition(groups, mixed)[[0, 2]], v3.groups(groups)[[0, 2]])
        assert not torch.equal(v3.condition(groups, mixed)[1], v3.groups(groups)[1])


@pytest.fixture(scope="module")
def tiny_composer(tiny_dataset_path, tmp_path_factory):
    """A tiny v1 through `emoji-train base`, then a composer started from it (--init-from)."""
    folder = tmp_path_factory.mktemp("composer")
    common = ["--size", "tiny", "--data", str(tiny_dataset_path), "--device", "cpu", "--batch-size", "16"]
    v1 = folder / "v1.pt"
    assert main(["base", "--out", str(v1), "--max-steps", "40", "--text-share", "0.5", *common]) == 0
    v3 = folder / "v3.pt"
    args = ["base", "--arch", "composer", "--init-from", str(v1), "--out", str(v3), "--max-steps", "30"]
    assert main([*args, "--bank", "100", "--save-every", "0", *common]) == 0
    return v1, v3


def test_init_from_keeps_v1s_text_encoder_and_trains_the_modifiers(tiny_composer):
    v1, v3 = tiny_composer
    before, after = read_checkpoint(v1)["state_dict"], read_checkpoint(v3)["state_dict"]
    text = [k for k in before if k.startswith("text.")]
    assert text and all(torch.equal(before[k], after[k]) for k in text)  # copied and frozen
    assert after["mix.2.weight"].abs().sum() > 0  # the mixer learnt from the kitchen's composites
    assert read_checkpoint(v3)["config"]["arch"] == "composer"


def test_the_generator_draws_a_thing_with_its_modifier_in_one_pass(tiny_composer):
    _, v3 = tiny_composer
    gen = Generator.load(v3, "cpu")
    assert gen.composes and gen.arch == "composer"
    [blue_cat, cat] = gen.draw([("파란 고양이", 2, 7), ("고양이", 2, 7)])
    assert blue_cat.parts == ("고양이", "파란")
    assert cat.parts is None
    assert blue_cat.images[0].tobytes() != cat.images[0].tobytes()
    again = gen.draw([("파란 고양이", 2, 7)])[0]
    assert [im.tobytes() for im in again.images] == [im.tobytes() for im in blue_cat.images]


def test_a_plus_part_that_is_no_modifier_still_gets_the_badge(tiny_composer):
    _, v3 = tiny_composer
    [drawing] = Generator.load(v3, "cpu").draw([("고양이 + 피자", 1, 0)])
    assert drawing.parts == ("고양이", "피자")


def test_resume_continues_a_composer_run(tiny_dataset_path, tmp_path, tiny_composer):
    v1, _ = tiny_composer
    out = tmp_path / "v3.pt"
    common = ["--size", "tiny", "--data", str(tiny_dataset_path), "--device", "cpu", "--batch-size", "8"]
    args = ["base", "--arch", "composer", "--init-from", str(v1), "--out", str(out), "--bank", "50"]
    assert main([*args, "--max-steps", "6", *common]) == 0
    state = read_checkpoint(out.with_name("v3.pt.train"))
    assert state["extra"]["step"] == 6
    assert main([*args, "--max-steps", "10", "--resume", *common]) == 0
    assert read_checkpoint(out.with_name("v3.pt.train"))["extra"]["step"] == 10


def test_a_servers_own_emoji_combines_with_a_base_modifier(tiny_composer, tmp_path):
    """ "우리팀 마스코트 + 파란": the fine-tuned name is the thing, the modifier is v3's own."""
    from PIL import Image, ImageDraw

    from model.finetune import finetune

    _, v3 = tiny_composer
    mascot = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    ImageDraw.Draw(mascot).ellipse([8, 8, 88, 88], fill=(240, 200, 40, 255))
    finetune([("우리팀 마스코트", mascot)], tmp_path / "server.pt", base=v3, steps=20, device="cpu")
    gen = Generator.load(tmp_path / "server.pt", "cpu")
    assert gen.composes
    plans, sampler = [], gen.sampler
    gen.sampler = lambda model, batch, vector: plans.extend(batch) or sampler(model, batch, vector)
    [plain, blue] = gen.draw([("우리팀 마스코트", 1, 3), ("우리팀 마스코트 + 파란", 1, 3)])
    assert blue.parts == ("우리팀 마스코트", "파란")
    assert [p.modifiers for p in plans] == [(0, 0, 0), Modifiers.of("blue").ids()]  # one pass, no badge
    assert plans[0].group == plans[1].group  # the same thing: the server's mascot
    assert gen.meta.groups[int(gen.group_probs(["우리팀 마스코트"])[0].argmax())] == "custom:우리팀 마스코트"
    assert plain.images[0].tobytes() != blue.images[0].tobytes()
