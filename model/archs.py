"""The arch registry: `cfg.arch` -> where that architecture's parts live.

An arch is two modules (or one, named twice):
    network module   exports Config (its ModelConfig section), Network, SIZES and sample (the sampler);
                     light: loading and sampling import only this one.
    trainer module   exports Trainer (emoji-train base) and FinetuneTask (the image side of fine-tuning).
A third arch is one new module plus one line in ARCHS. Modules are imported when first asked for, so a
checkpoint of one arch never imports another's code, and nothing here imports a trainer at load time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Arch:
    name: str
    network_module: str
    trainer_module: str

    @property
    def network(self) -> ModuleType:
        return importlib.import_module(self.network_module)

    @property
    def trainer(self) -> ModuleType:
        return importlib.import_module(self.trainer_module)


ARCHS: dict[str, Arch] = {
    "cvae": Arch("cvae", "model.networks", "model.train"),
    "maskgit": Arch("maskgit", "model.maskgit", "model.train_maskgit"),
    "composer": Arch("composer", "model.composer", "model.train_composer"),
}


class UnknownArch(ValueError):
    """A config names an architecture this version does not have."""


def get_arch(name: str) -> Arch:
    if name not in ARCHS:
        raise UnknownArch(f"unknown architecture {name!r} (known: {', '.join(ARCHS)})")
    return ARCHS[name]
