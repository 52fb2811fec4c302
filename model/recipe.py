"""The training recipe: everything `emoji-train base` was asked for, as one typed record.

The CLI fills it from its flags (their defaults are these); the trainers read it; the checkpoint records
`argv`, the arguments `main()` was given, so a model says how to make it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path("data/dataset.npz")


@dataclass(frozen=True)
class TrainConfig:
    out: Path = Path("checkpoints/base.pt")
    arch: str = "cvae"
    size: str = "base"
    label: str = "base"
    argv: tuple[str, ...] = ()  # the emoji-train arguments, recorded in the checkpoint
    # budget and saves
    minutes: float = 60.0
    max_steps: int = 0  # 0: time only
    save_every: float = 5.0  # minutes between resumable saves
    resume: bool = False
    half: bool = True  # final weights as fp16
    seed: int = 0
    # text phase (both archs)
    text_from: str | None = None  # reuse this checkpoint's text encoder and skip the text phase
    init_from: str | None = None  # start from this checkpoint's weights where names and shapes match
    text_share: float = 0.12
    text_batch: int = 256
    text_lr: float = 3e-3
    # image phases
    batch_size: int = 64
    lr: float = 2e-3
    ema: float = 0.998
    posterior_share: float = 0.25  # cvae: share of each batch on the VAE path
    beta: float = 1.0  # cvae: KL weight
    prior_weight: float = 1.0  # cvae: weight of the best-of-group loss on prior samples
    ae_share: float = 0.3  # maskgit: budget share of the tokeniser
    tf_batch: int = 48  # maskgit: transformer batch size
    tf_lr: float = 1e-3  # maskgit: transformer learning rate
    compose_share: float = 0.5  # composer: share of each batch made by the data kitchen
    bank: int = 12000  # composer: kitchen combinations made up front (each with its group's images)
    # data and device
    data: str = str(DEFAULT_CACHE)
    font: str | None = None
    cldr: str | None = None
    device: str = "auto"

    @property
    def command(self) -> str:
        """The arguments as one line: what the checkpoint's meta records as its recipe."""
        return " ".join(self.argv)
