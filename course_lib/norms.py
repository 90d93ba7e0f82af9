"""Normalization layers: LayerNorm and RMSNorm, written out (notebook 06).

Ba, Kiros and Hinton 2016, "Layer normalization"; Zhang and Sennrich 2019, "Root mean square
layer normalization". Parameters are named like PyTorch's (``weight``, ``bias``), so state dicts
load into ``nn.LayerNorm`` / ``nn.RMSNorm`` and back.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib._validate import check_positive_int


class LayerNorm(nn.Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last dimension (biased variance)."""

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(check_positive_int(d, "d")))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., d)`` -> same shape."""
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight``: no centring, no bias (Llama's norm)."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(check_positive_int(d, "d")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., d)`` -> same shape."""
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


NORMS = {"layer": LayerNorm, "rms": RMSNorm}


def make_norm(kind: str, d: int) -> nn.Module:
    """``make_norm("layer" | "rms", d)``."""
    if kind not in NORMS:
        raise ValueError(f"norm: expected one of {sorted(NORMS)}, got {kind!r}")
    return NORMS[kind](d)
