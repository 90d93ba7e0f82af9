"""Checkers of notebook 05 · Positional encoding: sinusoidal (Vaswani et al. 2017), ALiBi slopes
(Press et al. 2022) and rotate-half RoPE (Su et al. 2021), against ``course_lib.positions``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib import positions
from course_lib.checks._core import attempt, expect_close, passed, seeded_randn

__all__ = ["check_alibi_slopes", "check_apply_rope", "check_sinusoidal_encoding"]


def check_sinusoidal_encoding(sinusoidal_encoding: Callable[[int, int], torch.Tensor]) -> None:
    """``sinusoidal_encoding(n_positions, d_model)`` with interleaved sines and cosines."""
    for n, d in ((10, 4), (50, 16), (3, 2)):
        got = attempt(sinusoidal_encoding, n, d)
        expect_close(f"sinusoidal_encoding({n}, {d})", got, positions.sinusoidal_encoding(n, d), atol=1e-5)
    passed("PE[p, 2i] = sin(p / 10000^(2i/d)) and PE[p, 2i+1] = cos(p / 10000^(2i/d)).")


def check_alibi_slopes(alibi_slopes: Callable[[int], torch.Tensor]) -> None:
    """``alibi_slopes(n_heads)``, including head counts that are not powers of two."""
    for n_heads in (1, 4, 8, 12, 6):
        got = attempt(alibi_slopes, n_heads)
        expect_close(f"alibi_slopes({n_heads})", got, positions.alibi_slopes(n_heads))
    passed(
        "2^(-8h/H) for H heads, H a power of two; otherwise the slopes of the closest smaller power "
        "of two H', then every other slope of 2H' heads."
    )


def check_apply_rope(apply_rope: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``apply_rope(x, positions)``: rotate-half RoPE with base 10000 on ``x (..., T, D)``."""
    x = seeded_randn(2, 3, 7, 8, seed=9)
    for pos in (torch.arange(7), torch.arange(7) + 100):
        got = attempt(apply_rope, x.clone(), pos.clone())
        expect_close(
            f"apply_rope at positions {pos[0].item()}..{pos[-1].item()}", got, positions.apply_rope(x, pos)
        )
    passed("each pair (x_i, x_{i+D/2}) is rotated by the angle position * base^(-2i/D).")
