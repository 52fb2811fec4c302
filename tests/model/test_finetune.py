"""Fine-tuning a checkpoint on new (name, image) pairs: the names become drawable emoji."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from model.augment import augment, to_premultiplied_tensor
from model.cli import main as emoji_train
from model.finetune import FinetuneCancelled, finetune, read_examples
from model.sample import Generator


def badge(colour: str, shape: str) -> Image.Image:
    image = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    (draw.ellipse if shape == "circle" else draw.rectangle)([8, 8, 88, 88], fill=colour)
    return image


EXAMPLES = [("party parrot", badge("green", "circle")), ("우리팀 마스코트", badge("purple", "square"))]


def test_new_names_are_understood_and_the_checkpoint_loads(tiny_checkpoint, tmp_path):
    seen = []
    result = finetune(
        EXAMPLES, tmp_path / "server.pt", base=tiny_checkpoint, steps=25, device="cpu", progress=seen.append
    )
    assert result["names"] == 2 and result["steps"] == 25
    assert [p.step for p in seen] == list(range(1, 26)) and seen[-1].eta_s == 0
    gen = Generator.load(tmp_path / "server.pt", "cpu")
    assert gen.meta.custom_names == sorted(n for n, _ in EXAMPLES)
    probs = gen.group_probs(["party parrot", "우리팀 마스코트"])
    picked = [gen.meta.groups[int(i)] for i in probs.argmax(-1)]
    assert picked == ["custom:party parrot", "custom:우리팀 마스코트"]
    base = Generator.load(tiny_checkpoint, "cpu")
    assert len(gen.group_emoji) == len(base.group_emoji) + 2  # every group keeps a sticker tag
    if gen.arch == "maskgit":  # v2 can start drawing the new emoji from their own codes
        new_rows = gen.model.bank_groups[base.model.bank_size :].tolist()
        assert sorted(new_rows) == [base.model.cfg.num_groups, base.model.cfg.num_groups + 1]


def test_cancel_leaves_no_file(tiny_checkpoint, tmp_path):
    with pytest.raises(FinetuneCancelled):
        finetune(
            EXAMPLES,
            tmp_path / "x.pt",
            base=tiny_checkpoint,
            steps=50,
            device="cpu",
            should_stop=lambda: True,
        )
    assert not (tmp_path / "x.pt").exists()


def test_no_examples_is_an_error(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError):
        finetune([], tmp_path / "x.pt", base=tiny_checkpoint)


def test_augmentation_keeps_images_premultiplied_and_close():
    import torch

    x = torch.stack([to_premultiplied_tensor(im) for _, im in EXAMPLES])
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and (y[:, :3] <= y[:, 3:] + 1e-6).all()
    assert 0 < (y - x).abs().mean() < 0.1


def test_cli_reads_a_folder_named_by_text_and_a_csv(tiny_checkpoint, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    EXAMPLES[0][1].save(folder / "party_parrot.png")
    EXAMPLES[1][1].save(folder / "우리팀_마스코트.png")
    (tmp_path / "list.csv").write_text("party parrot,imgs/party_parrot.png\n", encoding="utf-8")
    assert sorted(t for t, _ in read_examples(folder)) == ["party parrot", "우리팀 마스코트"]
    assert [t for t, _ in read_examples(tmp_path / "list.csv")] == ["party parrot"]
    (tmp_path / "bad.csv").write_text("ghost,imgs/missing.png\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing.png"):
        read_examples(tmp_path / "bad.csv")
    out = tmp_path / "my.pt"
    assert (
        emoji_train(
            [
                "finetune",
                "--images",
                str(folder),
                "--out",
                str(out),
                "--base",
                str(tiny_checkpoint),
                "--steps",
                "5",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    images = Generator.load(out, "cpu").generate(["party parrot"], 1, seed=0)[0]
    assert np.asarray(images[0]).shape == (72, 72, 4)
