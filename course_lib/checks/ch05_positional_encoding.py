"""Checkers of notebook 05 · Positional encoding: ALiBi slopes (Press et al. 2022), converting
Meta's interleaved RoPE weights to the rotate-half layout (Hugging Face's ``permute``), and T5's
relative-position buckets (Raffel et al. 2020), against ``course_lib.positions`` and a reference."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib import positions
from course_lib.checks._core import as_float64, attempt, expect, expect_close, passed, seeded_randn

__all__ = ["check_alibi_slopes", "check_permute_for_rotate_half", "check_t5_relative_bias"]


def check_alibi_slopes(alibi_slopes: Callable[[int], torch.Tensor]) -> None:
    """``alibi_slopes(n_heads)``, including head counts that are not powers of two."""
    for n_heads in (1, 4, 8, 12, 6):
        got = attempt(alibi_slopes, n_heads)
        expect_close(f"alibi_slopes({n_heads})", got, positions.alibi_slopes(n_heads))
    passed(
        "2^(-8h/H) for H heads, H a power of two; otherwise the slopes of the closest smaller power "
        "of two H', then every other slope of 2H' heads."
    )


def _heads(x: torch.Tensor, W: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``x (T, C)`` through ``W (H * D, C)``, split into heads: ``(H, T, D)``."""
    return (x @ W.T).view(x.shape[0], n_heads, -1).transpose(0, 1)


def check_permute_for_rotate_half(
    permute_for_rotate_half: Callable[[torch.Tensor, int], torch.Tensor],
) -> None:
    """``permute_for_rotate_half(W, n_heads)``: the rows of ``W (H * D, C)`` reordered so that
    rotate-half RoPE on the new queries and keys gives the scores of interleaved RoPE on the old."""
    for n_heads, D, C in ((4, 8, 16), (2, 16, 12)):  # several heads first: a permutation across heads fails
        W_q, W_k = seeded_randn(n_heads * D, C, seed=51), seeded_randn(n_heads * D, C, seed=52)
        x, pos = seeded_randn(10, C, seed=53), torch.arange(10) + 3
        converted = []
        for name, W in (("W_q", W_q), ("W_k", W_k)):
            what = f"permute_for_rotate_half({name} of shape {(n_heads * D, C)}, n_heads={n_heads})"
            got = as_float64(what, attempt(permute_for_rotate_half, W.clone(), n_heads))
            expect(got.shape == W.shape, f"{what} shape", tuple(W.shape), tuple(got.shape))
            converted.append(got)
        meta_q = positions.apply_rope_interleaved(_heads(x, W_q, n_heads), pos)  # (H, T, D)
        meta_k = positions.apply_rope_interleaved(_heads(x, W_k, n_heads), pos)
        hf_q = positions.apply_rope(_heads(x, converted[0], n_heads), pos)
        hf_k = positions.apply_rope(_heads(x, converted[1], n_heads), pos)
        expect_close(
            f"{n_heads} heads of size {D}: the scores q . k of rotate-half RoPE on your converted W_q, W_k "
            "(interleaved RoPE on the originals is the reference)",
            hf_q @ hf_k.transpose(-2, -1),
            meta_q @ meta_k.transpose(-2, -1),
        )
    passed(
        "within each head, the rows of pair i (2i and 2i + 1) move to rows i and i + D/2, as in "
        "Hugging Face's `permute`; the scores do not change."
    )


def _t5_buckets(distance: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5's causal buckets of ``distance = m - n`` (query minus key position; negative: bucket 0)."""
    distance = distance.clamp(min=0)
    max_exact = num_buckets // 2
    log_ratio = torch.log(distance.clamp(min=1).double() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return torch.where(distance < max_exact, distance, large)


def check_t5_relative_bias(t5_relative_bias: Callable[[torch.Tensor, int, int], torch.Tensor]) -> None:
    """``t5_relative_bias(table, T, max_distance)``: ``table (num_buckets, H)`` gathered into the
    ``(H, T, T)`` bias of a causal model, ``bias[h, m, n] = table[bucket(m - n), h]``."""
    for num_buckets, n_heads, T, max_distance in ((32, 4, 200, 128), (16, 2, 60, 40)):
        table = seeded_randn(num_buckets, n_heads, seed=60 + num_buckets)
        what = (
            f"t5_relative_bias(table of shape {(num_buckets, n_heads)}, T={T}, max_distance={max_distance})"
        )
        got = as_float64(what, attempt(t5_relative_bias, table.clone(), T, max_distance))
        expect(got.shape == (n_heads, T, T), f"{what} shape", (n_heads, T, T), tuple(got.shape))
        pos = torch.arange(T)
        buckets = _t5_buckets(pos[:, None] - pos[None, :], num_buckets, max_distance)  # (T, T)
        want = table[buckets].permute(2, 0, 1)  # (H, T, T)
        wrong = ~torch.isclose(got, want, rtol=0, atol=1e-6)  # NaN included
        if wrong.any():
            h, m, n = wrong.nonzero()[0].tolist()
            where = f"{what}[{h}, {m}, {n}] (distance m - n = {m - n}, bucket {buckets[m, n].item()})"
            expect(False, where, f"{want[h, m, n].item():.6g}", f"{got[h, m, n].item():.6g}")
    passed(
        "distances below num_buckets // 2 get a bucket each, longer ones share log-spaced buckets, "
        "and every distance from max_distance on shares the last one."
    )
