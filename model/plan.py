"""What a sampler is handed: one drawing's text, the group sampled for it and its own RNG.

Generator plans (text -> group, seed -> RNG); each arch's `sample` turns plans into pixels (model.archs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Plan:
    """One drawing: its text, the group sampled for it, its own RNG and its modifier ids (model.modifiers:
    colour, face, accessory; 0 = none), which only an arch that composes (v3) reads."""

    text: str
    group: int
    rng: torch.Generator
    modifiers: tuple[int, int, int] = (0, 0, 0)
