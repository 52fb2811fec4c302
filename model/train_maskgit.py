"""Generator v2's trainer (`emoji-train base --arch maskgit`) and fine-tune task; the arch registry's
trainer module for "maskgit" (model.archs). Three phases in one time budget:

text phase        the text encoder, exactly as for the CVAE (skipped with --text-from CKPT)
tokeniser phase   FSQ autoencoder: image -> 81 codes -> image (L1 colour + alpha BCE)
transformer phase every image's codes are fixed; the transformer learns masked codes given the group
                  embedding and the text vector of one of the group's (chat-dressed) training texts
"""

from __future__ import annotations

import logging
import random

import torch

from model.augment import augment
from model.chat import chatify
from model.maskgit import masked_code_loss, sample_codes
from model.networks import pixel_loss
from model.sample import Generator
from model.text import to_device
from model.train import Trainer, lr_at

log = logging.getLogger("emoji-train")


class MaskGITTrainer(Trainer):
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        m, a = self.model, self.recipe
        tf_params = list(m.transformer.parameters()) + list(m.groups.parameters())
        ae_params = list(m.encoder.parameters()) + list(m.decoder.parameters())
        return {
            "text_opt": torch.optim.AdamW(m.text.parameters(), lr=a.text_lr, weight_decay=0.0),
            "ae_opt": torch.optim.AdamW(ae_params, lr=a.lr, weight_decay=1e-4),
            "tf_opt": torch.optim.AdamW(tf_params, lr=a.tf_lr, betas=(0.9, 0.98), weight_decay=0.01),
        }

    def phase_bounds(self) -> tuple[float, float]:
        """Fractions of the budget where the tokeniser and the transformer phases start."""
        ae_start = self.text_share
        return ae_start, ae_start + (1 - ae_start) * self.recipe.ae_share

    def train_step(self, fraction: float) -> dict[str, float]:
        ae_start, tf_start = self.phase_bounds()
        if fraction < ae_start:
            return {"text_loss": self.text_step(fraction / ae_start)}
        if not self.text_ready:
            self.finish_text_phase()
        if fraction < tf_start:
            return self.tokeniser_step((fraction - ae_start) / (tf_start - ae_start))
        if not hasattr(self, "codes"):
            self.freeze_tokeniser()
        return self.transformer_step((fraction - tf_start) / (1 - tf_start))

    # -- phase 2 --------------------------------------------------------------------------------------
    def tokeniser_step(self, fraction: float) -> dict[str, float]:
        opt = self.opts["ae_opt"]
        for group in opt.param_groups:
            group["lr"] = lr_at(fraction, self.recipe.lr)
        idx = torch.tensor([self.rng.randrange(len(self.images)) for _ in range(self.recipe.batch_size)])
        x = self.images[idx].to(self.device, non_blocking=True)
        loss = pixel_loss(self.model.reconstruct(x), x).mean() / 1000
        self.image_update(opt, loss)
        return {"recon": loss.item()}

    @torch.no_grad()
    def freeze_tokeniser(self) -> None:
        """The EMA tokeniser becomes *the* tokeniser; every image's 81 codes are computed once."""
        for name in ("encoder", "decoder"):
            getattr(self.model, name).load_state_dict(getattr(self.ema, name).state_dict())
            getattr(self.model, name).requires_grad_(False)
        self.model.eval()
        codes = [
            self.model.tokenize(self.images[i : i + 256].to(self.device))
            for i in range(0, len(self.images), 256)
        ]
        self.codes = torch.cat(codes)
        groups = torch.from_numpy(self.dataset.image_group)
        for model in (self.model, self.ema):
            model.set_bank(self.codes, groups)
        recon = self.model.decode_codes(self.codes[:256])
        err = (recon - self.images[:256].to(self.device)).abs().mean().item()
        used = len(torch.unique(self.codes))
        log.info("tokeniser frozen: %d of %d codes in use, mean abs error %.4f", used, self.model.vocab, err)
        self.model.train()

    # -- phase 3 --------------------------------------------------------------------------------------
    def condition_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image ids, group ids, text vectors): one group at a time mostly, so people do not dominate;
        the text is one of that group's own training texts, dressed up as chat."""
        image_ids, texts = [], []
        nonempty = [g for g, idx in enumerate(self.group_image_index) if len(idx)]
        for _ in range(n):
            if self.rng.random() < 0.7:
                g = self.rng.choice(nonempty)
                i = int(self.rng.choice(self.group_image_index[g].tolist()))
            else:
                i = self.rng.randrange(len(self.images))
                g = int(self.dataset.image_group[i])
            own = self.pairs.by_group[g]
            text = self.pairs.texts[self.rng.choice(own)] if own else self.dataset.groups[g]
            image_ids.append(i)
            texts.append(chatify(text, self.rng))
        with torch.no_grad():
            vectors = self.model.text.embed(to_device(self.tok.encode(texts), self.device))
        groups = torch.from_numpy(self.dataset.image_group[image_ids]).to(self.device)
        return torch.tensor(image_ids), groups, vectors

    def transformer_step(self, fraction: float) -> dict[str, float]:
        opt = self.opts["tf_opt"]
        for group in opt.param_groups:
            group["lr"] = lr_at(fraction, self.recipe.tf_lr)
        image_ids, groups, vectors = self.condition_batch(self.recipe.tf_batch)
        loss = masked_code_loss(self.model, self.codes[image_ids.to(self.device)], vectors, groups)
        self.image_update(opt, loss)
        return {"code_loss": loss.item()}


class MaskGITImages:
    """Generator v2's image side: the transformer learns the codes of the new (augmented) images given
    the new group and the name's text vector, and replays base emoji from the code bank (or codes the frozen
    teacher draws), so the base emoji keep their looks. The new emoji join the code bank. The tokeniser stays
    frozen."""

    TUNED = "transformer"  # what model.finetune tunes besides the new rows (see model.delta)
    LR = 2e-4

    REPLAY = 192

    def __init__(self, model, teacher, images, members, dev, trng, gen: Generator, names: dict[int, str]):
        self.model, self.images, self.members, self.dev, self.trng = model, images, members, dev, trng
        self.gen, self.names = gen, names
        model.encoder.requires_grad_(False)
        model.decoder.requires_grad_(False)
        with torch.no_grad():  # the new emoji join the code bank: sampling can start from them
            rows = [i for g in sorted(members) for i in members[g]]
            new_codes = model.tokenize(images[torch.tensor(rows)].to(dev))
            new_groups = torch.tensor([g for g in sorted(members) for _ in members[g]])
            model.set_bank(
                torch.cat([model.bank_codes, new_codes.to(model.bank_codes.device).to(torch.int16)]),
                torch.cat([model.bank_groups.cpu(), new_groups]),
            )
        self.replay_groups, self.replay_codes = self._replay_bank(teacher)
        texts = [meta_name(gen, int(g)) for g in self.replay_groups]
        self.replay_vectors = torch.stack([gen.text_vector(t) for t in texts])

    @torch.no_grad()
    def _replay_bank(self, teacher) -> tuple[torch.Tensor, torch.Tensor]:
        """Base emoji to replay: rows of the teacher's code bank, or (no bank) codes the teacher draws."""
        if teacher.bank_size:
            rows = torch.randint(0, teacher.bank_size, (self.REPLAY,), generator=self.trng)
            return teacher.bank_groups[rows.to(self.dev)].cpu(), teacher.bank_codes[rows.to(self.dev)].long()
        groups = torch.randint(0, teacher.cfg.num_groups, (self.REPLAY,), generator=self.trng)
        vectors = torch.stack([self.gen.text_vector(meta_name(self.gen, int(g))) for g in groups])
        out = []
        for i in range(0, self.REPLAY, 16):
            g = groups[i : i + 16].to(self.dev)
            rngs = [torch.Generator().manual_seed(1000 + i + k) for k in range(len(g))]
            cond = teacher.transformer.condition(vectors[i : i + 16], teacher.groups(g), len(g))
            out.append(sample_codes(teacher, cond, rngs))
        return groups, torch.cat(out)

    def loss(self, rng: random.Random) -> torch.Tensor:
        model, dev = self.model, self.dev
        new_groups = [rng.choice(list(self.members)) for _ in range(16)]
        picks = [rng.choice(self.members[g]) for g in new_groups]
        with torch.no_grad():
            codes = model.tokenize(augment(self.images[torch.tensor(picks)], self.trng).to(dev))
            texts = [chatify(self.names[g], rng, 0.5) for g in new_groups]
            vectors = model.text.embed(to_device(self.gen.tokenizer.encode(texts), dev))
        new_loss = masked_code_loss(model, codes, vectors, torch.tensor(new_groups, device=dev), self.trng)
        idx = torch.randint(0, self.REPLAY, (16,), generator=self.trng)
        replay = masked_code_loss(
            model,
            self.replay_codes[idx.to(dev)],
            self.replay_vectors[idx],
            self.replay_groups[idx].to(dev),
            self.trng,
        )
        return 2 * new_loss + replay


def meta_name(gen: Generator, group: int) -> str:
    """A base group's name (its representative emoji's CLDR name) to condition replayed codes on."""
    emoji = gen.group_emoji[group]
    return gen.tokenizer.emoji_names.get(emoji) or gen.tokenizer.emoji_names.get(
        emoji.replace("\ufe0f", ""), emoji
    )


# the arch registry's names for this module (model.archs)
Trainer = MaskGITTrainer
FinetuneTask = MaskGITImages
