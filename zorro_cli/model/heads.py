"""Per-output classifier heads and the contrastive projectors.

Legend: B batch, D width, C classes, P projection width.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


def module_key(name: str) -> str:
    """A submodule name for an output: ``global`` is a Python keyword, which breaks FX/ONNX code generation."""
    return f"{name}_" if keyword.iskeyword(name) else name


class ClassifierHeads(nn.Module):
    """One linear head per output (o_A, o_V, o_F, o_G): ``{name: [B, D]} -> {name: [B, C]}``."""

    def __init__(self, dim: int, num_classes: int, outputs: Sequence[str]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({module_key(o): nn.Linear(dim, num_classes) for o in outputs})

    def forward(self, feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {name: self.heads[module_key(name)](x) for name, x in feats.items()
                if module_key(name) in self.heads}


class Projector(nn.Sequential):
    """Two-layer MLP projector ``[B, D] -> [B, P]`` for the contrastive loss ([choice]: D -> D -> P)."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, out_dim))


class Projectors(nn.Module):
    """The three contrastive projectors (audio, video, fusion) and the temperature τ.

    τ is stored as ``log τ``; it is a trained parameter only when ``learn_temperature`` is set
    (paper value τ = 0.08, fixed).
    """

    def __init__(self, dim: int, out_dim: int, names: Sequence[str], temperature: float = 0.08,
                 learn_temperature: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.projectors = nn.ModuleDict({n: Projector(dim, out_dim) for n in names})
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)), requires_grad=learn_temperature)

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.exp()

    def forward(self, feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {n: p(feats[n]) for n, p in self.projectors.items() if n in feats}
