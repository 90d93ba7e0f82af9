"""Checkers of notebook 06 · Normalization: LayerNorm (Ba et al. 2016), RMSNorm (Zhang and
Sennrich 2019) against PyTorch's fused kernels, and DeepNorm's constants (Wang et al. 2022).

Besides ordinary rows, the norms are checked on rows where ``eps`` matters (a nearly constant
row, a row of tiny values): there, forgetting ``eps`` or adding it outside the square root
(``std + eps``) gives a clearly different answer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib import blocks
from course_lib.checks._core import as_sequence, attempt, expect_close, expect_number, passed, seeded_randn

__all__ = ["check_deepnorm_constants", "check_layer_norm", "check_rms_norm"]

D = 8  # the normalized (last) dimension of every case


def _norm_cases(seed: int) -> dict[str, torch.Tensor]:
    """Inputs ``(..., D)`` in float64: ordinary rows, then rows whose variance is comparable to eps."""
    return {
        "random rows": seeded_randn(3, 4, D, seed=seed) * 5 + 2,
        "a nearly constant row (3 + 1e-4 * noise)": 3.0 + 1e-4 * seeded_randn(2, D, seed=seed + 100),
        "a row of tiny values (~1e-3)": 1e-3 * seeded_randn(2, D, seed=seed + 200),
    }


def check_layer_norm(layer_norm: Callable[..., torch.Tensor]) -> None:
    """``layer_norm(x, weight, bias, eps)`` over the last dimension, as ``F.layer_norm``."""
    weight, bias = seeded_randn(D, seed=11), seeded_randn(D, seed=12)
    eps = 1e-5
    for name, x in _norm_cases(seed=10).items():
        got = attempt(layer_norm, x.clone(), weight.clone(), bias.clone(), eps)
        expect_close(f"layer_norm on {name}, eps={eps:g}", got, F.layer_norm(x, (D,), weight, bias, eps))
    passed("subtract the mean, divide by the standard deviation (biased), then scale and shift.")


def check_rms_norm(rms_norm: Callable[..., torch.Tensor]) -> None:
    """``rms_norm(x, weight, eps)`` over the last dimension, as ``torch.nn.RMSNorm``."""
    weight = seeded_randn(D, seed=14)
    eps = 1e-6
    for name, x in _norm_cases(seed=13).items():
        got = attempt(rms_norm, x.clone(), weight.clone(), eps)
        expect_close(f"rms_norm on {name}, eps={eps:g}", got, F.rms_norm(x, (D,), weight, eps))
    passed("divide by the root mean square, then scale: no mean, no bias.")


def check_deepnorm_constants(deepnorm_constants: Callable[[int], tuple[float, float]]) -> None:
    """``deepnorm_constants(n_layers)`` of a decoder-only (or encoder-only) stack: ``(alpha, beta)``."""
    for n_layers in (1, 6, 24, 1000):
        what = f"deepnorm_constants({n_layers})"
        got = as_sequence(what, attempt(deepnorm_constants, n_layers), ("alpha", "beta"))
        for name, value, want in zip(
            ("alpha", "beta"), got, blocks.deepnorm_constants(n_layers), strict=True
        ):
            expect_number(f"{what} {name}", value, want, rtol=1e-6)  # float32 will do
    passed("alpha = (2N)^(1/4) up-weights the residual, beta = (8N)^(-1/4) shrinks the initial updates.")
