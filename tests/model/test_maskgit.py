"""Generator v2 (image tokens + masked transformer): its pieces behave; `--arch maskgit` trains end to end."""

import pytest
import torch

from model.checkpoint import load_model, read_checkpoint
from model.cli import main as emoji_train
from model.data import load_or_build
from model.maskgit import (
    FSQ,
    GRID,
    SIZES,
    EmojiMaskGIT,
    MaskGITConfig,
    masked_code_loss,
    sample_codes,
    seed_codes,
)
from model.sample import Generator


def tiny_model() -> EmojiMaskGIT:
    torch.manual_seed(0)
    return EmojiMaskGIT(MaskGITConfig(num_groups=5, **SIZES["tiny"])).eval()


def test_fsq_codes_and_values_agree():
    fsq = FSQ((8, 5, 5, 5))
    quantised, codes = fsq(torch.randn(3, 4, GRID, GRID) * 3)
    assert fsq.size == 1000 and codes.min() >= 0 and codes.max() < 1000
    assert torch.allclose(fsq.values(codes), quantised)
    assert len(torch.unique(fsq(torch.randn(64, 4, GRID, GRID) * 3)[1])) > 200  # codes are not collapsed


def test_sampling_fills_every_code_and_depends_only_on_each_samples_rng():
    model = tiny_model()
    tf = model.transformer
    text = torch.nn.functional.normalize(torch.randn(3, model.cfg.text_embed_dim), dim=-1)
    groups = model.groups(torch.tensor([0, 1, 2]))

    def draw(seeds, init=None):
        cond = tf.condition(text, groups, 3)
        return sample_codes(model, cond, [torch.Generator().manual_seed(s) for s in seeds], init=init)

    codes = draw([1, 2, 3])
    assert codes.shape == (3, GRID * GRID) and (codes != tf.mask_id).all() and codes.max() < model.vocab
    assert torch.equal(draw([1, 2, 3]), codes)
    assert not torch.equal(draw([4, 5, 6]), codes)

    init = torch.full_like(codes, tf.mask_id)
    init[:, :40] = codes[:, :40]  # inpainting keeps what is given
    assert torch.equal(draw([7, 8, 9], init)[:, :40], codes[:, :40])


def test_masked_code_loss_learns_a_fixed_batch():
    model = tiny_model().train()
    codes = torch.randint(0, model.vocab, (8, GRID * GRID))
    text = torch.randn(8, model.cfg.text_embed_dim)
    groups = torch.arange(8) % 5
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        loss = masked_code_loss(model, codes, text, groups, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5


def test_text_from_reuses_the_text_encoder_and_records_the_arch(tiny_dataset_path, tmp_path):
    common = ["--size", "tiny", "--data", str(tiny_dataset_path), "--device", "cpu", "--minutes", "5"]
    cvae, v2 = tmp_path / "cvae.pt", tmp_path / "v2.pt"
    assert emoji_train(["base", "--out", str(cvae), "--max-steps", "20", "--text-share", "0.5", *common]) == 0
    argv = ["base", "--arch", "maskgit", "--out", str(v2), "--max-steps", "12", "--text-from", str(cvae)]
    assert emoji_train([*argv, *common]) == 0
    payload = read_checkpoint(v2)
    assert payload["config"]["arch"] == "maskgit"
    v1_model, _ = load_model(cvae)
    v2_model, _ = load_model(v2)
    v2_text = v2_model.text.state_dict()
    for name, weights in v1_model.text.state_dict().items():
        assert torch.allclose(weights, v2_text[name], atol=1e-2), name  # fp16 storage
    images = Generator.load(v2, "cpu").generate(["고양이"], 2, seed=0)[0]
    assert [im.size for im in images] == [(72, 72)] * 2 and images[0].mode == "RGBA"
    # the code bank holds every training image's codes, under that image's group
    dataset = load_or_build(tiny_dataset_path)
    assert v2_model.bank_size == len(dataset.images)
    assert v2_model.bank_groups.tolist() == dataset.image_group.tolist()


def test_sampling_can_start_from_a_bank_emoji_and_redraw_a_share():
    model = tiny_model()
    bank = torch.randint(0, model.vocab, (3, GRID * GRID))
    model.set_bank(bank, torch.tensor([0, 0, 2]))
    members = model.bank_members()
    assert members[0] == [0, 1] and members[2] == [2] and members[1] == []
    rngs = [torch.Generator().manual_seed(s) for s in range(3)]
    start = seed_codes(model, [2, 1, 0], rngs, remask=0.25, members=members)
    mask_id = model.transformer.mask_id
    assert torch.equal(start[0][start[0] != mask_id], bank[2][start[0] != mask_id])
    assert (start[0] == mask_id).sum() == round(0.25 * GRID * GRID)
    assert (start[1] == mask_id).all()  # a group without bank rows starts from scratch
    assert seed_codes(model, [0], rngs[:1], remask=1.0, members=members) is None


def test_text_from_a_checkpoint_of_other_groups_is_refused(tiny_dataset_path, tmp_path):
    from model.checkpoint import SHIPPED_CHECKPOINT

    if not SHIPPED_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint")
    argv = ["base", "--arch", "maskgit", "--out", str(tmp_path / "x.pt"), "--size", "tiny"]
    argv += ["--text-from", str(SHIPPED_CHECKPOINT), "--data", str(tiny_dataset_path), "--device", "cpu"]
    with pytest.raises(SystemExit, match="other emoji groups"):
        emoji_train(argv)


def test_a_v2_run_resumes_after_its_code_bank_exists(tiny_dataset_path, tmp_path):
    out = tmp_path / "v2.pt"
    argv = ["base", "--arch", "maskgit", "--size", "tiny", "--data", str(tiny_dataset_path)]
    argv += ["--out", str(out)]
    argv += ["--device", "cpu", "--text-share", "0.3", "--save-every", "0", "--tf-batch", "8"]
    assert emoji_train([*argv, "--max-steps", "20"]) == 0  # ends in the transformer phase: bank saved
    assert emoji_train([*argv, "--max-steps", "30", "--resume"]) == 0
    payload = read_checkpoint(out)
    assert payload["meta"]["step"] == 30
    assert payload["meta"]["recipe"] == " ".join([*argv, "--max-steps", "30", "--resume"])  # main's argv
    assert len(payload["state_dict"]["bank_codes"]) == len(load_or_build(tiny_dataset_path).images)
