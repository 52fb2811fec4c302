"""Model configs: the fields every arch shares, and the checkpoint layout of an arch's own section.

Each arch subclasses `ModelConfig` with its own fields (networks.CVAEConfig, maskgit.MaskGITConfig). A
checkpoint stores `{"arch": name, name: {fields}}`; the shipped checkpoints predate that and store one flat
dict with every arch's fields, which `section_of` reads too (their files are never rewritten).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Self


@dataclass(frozen=True)
class ModelConfig:
    """What every arch has: the text encoder, the group table's size, the image size."""

    arch: ClassVar[str] = ""
    num_groups: int = 1654
    text_buckets: int = 1 << 15
    text_dim: int = 128
    text_embed_dim: int = 192
    width: int = 32  # image network channels at 36x36; doubled at 18x18 and 9x9
    image_size: int = 72

    def to_dict(self) -> dict:
        """The checkpoint layout: the arch's name and its own section."""
        return {"arch": self.arch, self.arch: asdict(self)}

    @classmethod
    def from_section(cls, section: dict) -> Self:
        """This arch's config from its saved section; fields it does not have (other archs') are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items() if k in known})


def arch_of(saved: dict) -> str:
    return str(saved.get("arch", "cvae"))


def section_of(saved: dict) -> dict:
    """An arch's section of a saved config: the new layout's own dict, or the old flat one."""
    section = saved.get(arch_of(saved))
    return section if isinstance(section, dict) else saved


# `--size` presets: the shared fields here, each arch adds its own (networks.SIZES, maskgit.SIZES)
SHARED_SIZES: dict[str, dict] = {
    "tiny": dict(text_buckets=1 << 12, text_dim=32, text_embed_dim=32, width=8),
    "small": dict(text_buckets=1 << 14, text_dim=96, text_embed_dim=128, width=24),
    "base": dict(),
}
