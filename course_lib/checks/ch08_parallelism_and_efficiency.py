"""Checkers of notebook 08 · Parallelism and efficiency: a training run's length from the ``6 N``
rule (Kaplan et al. 2020), merging two partial softmax results (the step of online softmax,
Milakov & Gimelshein 2018, and of attention split across devices), and the loss scales that make
data parallelism over shards of unequal size reproduce the full-batch gradient.

The merge is checked on scores spread wide enough that the two parts' maxima differ a lot: there,
forgetting to rescale a part to the common maximum gives a clearly different answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.checks._core import (
    as_float64,
    as_sequence,
    attempt,
    expect,
    expect_close,
    expect_number,
    passed,
    seeded_randn,
)

__all__ = ["check_training_days", "check_merge_softmax_parts", "check_ddp_loss_scales"]

SECONDS_PER_DAY = 24 * 60 * 60


def check_training_days(training_days: Callable[..., float]) -> None:
    """``training_days(n_params, n_tokens, n_devices, flops_per_second, utilization)``: the days of
    training at ``6 N`` FLOPs per token on ``n_devices`` that each reach ``utilization`` of
    ``flops_per_second``."""
    cases = [  # N, tokens, devices, FLOP/s per device, utilization
        (1e9, 1e9, 1, 1e15, 1.0),
        (7e9, 2e12, 1024, 312e12, 0.4),
        (70e9, 1.4e12, 2048, 989e12, 0.35),
        (125e6, 3e11, 8, 100e12, 0.5),
    ]
    for n_params, n_tokens, n_devices, flops_per_second, utilization in cases:
        what = (
            f"training_days({n_params:g}, {n_tokens:g}, {n_devices}, {flops_per_second:g}, {utilization:g})"
        )
        got = attempt(training_days, n_params, n_tokens, n_devices, flops_per_second, utilization)
        seconds = 6 * n_params * n_tokens / (n_devices * flops_per_second * utilization)
        expect_number(what, got, seconds / SECONDS_PER_DAY, rtol=1e-6)
    passed(
        "6 N FLOPs per token (forward 2 N, backward 4 N) times the tokens, divided by what the "
        "devices really deliver per second."
    )


def _partial(scores: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(m, ell, o)`` of one part of the keys: scores ``(..., T, S_part)``, values ``(..., S_part, Dv)``."""
    m = scores.amax(dim=-1, keepdim=True)  # (..., T, 1)
    p = torch.exp(scores - m)
    ell = p.sum(dim=-1, keepdim=True)  # (..., T, 1)
    return m, ell, (p @ v) / ell  # o: (..., T, Dv), normalized


def check_merge_softmax_parts(merge_softmax_parts: Callable[..., tuple[torch.Tensor, ...]]) -> None:
    """``merge_softmax_parts(m1, ell1, o1, m2, ell2, o2) -> (m, ell, o)``: two parts' row maxima,
    sums of ``exp(score - m)`` and normalized outputs combined into those of all the keys."""
    B, H, T, S, D, Dv = 2, 3, 4, 11, 8, 5
    q, k, v = (
        seeded_randn(B, H, T, D, seed=81),
        seeded_randn(B, H, S, D, seed=82),
        seeded_randn(B, H, S, Dv, seed=83),
    )
    names = ("m", "ell", "o")
    for spread, split in ((1.0, 5), (1.0, 1), (6.0, 7)):  # spread 6: the parts' maxima differ by ~10
        scores = spread * q @ k.transpose(-2, -1) / math.sqrt(D)  # (B, H, T, S)
        first = _partial(scores[..., :split], v[:, :, :split])
        second = _partial(scores[..., split:], v[:, :, split:])
        what = f"merge_softmax_parts(...) of keys [0, {split}) and [{split}, {S}), scores x {spread:g}"
        answer = attempt(merge_softmax_parts, *(x.clone() for x in first + second))
        got = as_sequence(what, answer, names)
        want = _partial(scores, v)
        torch.testing.assert_close(want[2], F.scaled_dot_product_attention(q * spread, k, v))  # our reference
        for name, value, expected in zip(names, got, want, strict=True):
            expect_close(f"{what}: {name}", value, expected, atol=1e-6)
    passed(
        "both parts are rescaled to the larger maximum, exp(m_i - m), before their sums and "
        "outputs are added; the output is then renormalized by the merged sum."
    )


def _shard_gradient(
    weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """The gradient of ``scale *`` the mean squared error of ``x @ weight`` against ``y``."""
    weight = weight.clone().requires_grad_()
    loss = scale * ((x @ weight - y) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, weight)
    return grad


def check_ddp_loss_scales(ddp_loss_scales: Callable[[list[int]], torch.Tensor]) -> None:
    """``ddp_loss_scales(tokens_per_rank) -> (G,)``: the factors that make the mean over ``G`` ranks
    of the gradients of ``scale_g * mean loss of rank g`` equal the gradient of the mean loss over
    all tokens."""
    n_in, n_out = 3, 2
    weight = seeded_randn(n_in, n_out, seed=91)
    for tokens_per_rank in ([4, 4], [5, 3], [1, 6, 2, 7], [9]):
        G, total = len(tokens_per_rank), sum(tokens_per_rank)
        x, y = seeded_randn(total, n_in, seed=92 + G), seeded_randn(total, n_out, seed=93 + G)
        what = f"ddp_loss_scales({tokens_per_rank})"
        scales = as_float64(what, attempt(ddp_loss_scales, list(tokens_per_rank)))
        expect(scales.shape == (G,), f"{what} shape", (G,), tuple(scales.shape))
        expect(bool(torch.isfinite(scales).all()), what, "finite values", scales.tolist())
        shards = zip(x.split(tokens_per_rank), y.split(tokens_per_rank), scales, strict=True)
        averaged = sum(_shard_gradient(weight, xr, yr, scale) for xr, yr, scale in shards) / G  # DDP's mean
        full = _shard_gradient(weight, x, y, torch.tensor(1.0, dtype=torch.float64))
        expect_close(
            f"{what}: DDP's average of the ranks' scaled gradients vs the full-batch gradient", averaged, full
        )
    passed(
        "rank g's mean loss is weighted by G * M_g / M: DDP divides the sum by G, and each token "
        "must count 1 / M."
    )
