"""Networks, checkpoint I/O and training steps."""

import dataclasses

import torch

from model.checkpoint import CheckpointError, Meta, config_from, load_model, read_checkpoint, save_checkpoint
from model.data import EmojiDataset
from model.networks import SIZES, CVAEConfig, EmojiCVAE, vae_loss
from model.train_data import images_tensor


def tiny_model(groups: int = 5) -> EmojiCVAE:
    torch.manual_seed(0)
    return EmojiCVAE(CVAEConfig(num_groups=groups, **SIZES["tiny"]))


def test_shapes_of_a_training_and_a_sampling_pass():
    model = tiny_model()
    images, groups = torch.rand(3, 4, 72, 72), torch.tensor([0, 1, 4])
    logits, mean, logvar = model.reconstruct(images, groups)
    assert logits.shape == (3, 4, 72, 72)
    assert mean.shape == logvar.shape == (3, model.cfg.z_dim)
    out = model.decode(torch.randn(2, model.cfg.z_dim), model.groups(torch.tensor([2, 3])))
    assert out.shape == (2, 4, 72, 72)
    assert (out[:, :3] <= out[:, 3:] + 1e-6).all()  # premultiplied: colour never exceeds alpha


def test_checkpoint_round_trip_restores_config_and_weights(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path / "m.pt", model, Meta(groups=["a"] * 5, group_emoji=["🐱"] * 5, emoji_names={}))
    loaded, meta = load_model(tmp_path / "m.pt")
    assert loaded.cfg == model.cfg and meta.groups == ["a"] * 5
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.allclose(a, b), name
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file
    assert read_checkpoint(tmp_path / "m.pt")["config"] == {
        "arch": "cvae",
        "cvae": dataclasses.asdict(model.cfg),
    }


def test_a_flat_config_of_the_shipped_files_maps_to_the_arch_section():
    """The shipped checkpoints store every arch's fields in one dict; each arch takes its own."""
    flat = {"arch": "maskgit", "num_groups": 7, "z_dim": 32, "group_dim": 128, "tf_dim": 64, "bank_size": 3}
    cfg = config_from({"config": flat})
    assert (cfg.arch, cfg.num_groups, cfg.tf_dim) == ("maskgit", 7, 64)
    assert not hasattr(cfg, "z_dim") and not hasattr(cfg, "bank_size")
    assert config_from({"config": {"arch": "cvae", "z_dim": 8}}).z_dim == 8


def test_half_precision_checkpoint_is_close(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path / "h.pt", model, Meta([], [], {}), half=True)
    loaded, _ = load_model(tmp_path / "h.pt")
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        assert torch.allclose(a, b, atol=2e-3, rtol=1e-2)


def test_corrupt_and_missing_checkpoints_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for path, message in ((bad, "not a readable"), (tmp_path / "missing.pt", "not found")):
        try:
            read_checkpoint(path)
        except CheckpointError as exc:
            assert message in str(exc)
        else:
            raise AssertionError("no error")


def test_a_few_training_steps_lower_the_loss(tiny_dataset_path):
    ds = EmojiDataset.load(tiny_dataset_path)
    x, g = images_tensor(ds), torch.from_numpy(ds.image_group)
    model = tiny_model(ds.num_groups)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        logits, mean, logvar = model.reconstruct(x, g)
        loss, _ = vae_loss(logits, x, mean, logvar, beta=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.6 * sum(losses[:5])
