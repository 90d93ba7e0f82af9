"""Checkers of notebook 02 · Attention: the causal mask, masked softmax, scaled dot-product attention.

The reference is PyTorch's ``F.scaled_dot_product_attention`` (Vaswani et al. 2017, eq. 1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.checks._core import (
    as_sequence,
    attempt,
    expect,
    expect_close,
    expect_equal,
    passed,
    seeded_randn,
    to_cpu,
)

__all__ = ["check_attend", "check_causal_mask", "check_masked_softmax"]


def check_causal_mask(causal_mask: Callable[[int], torch.Tensor]) -> None:
    """``causal_mask(n)``: ``(n, n)`` booleans, True where key ``j <= `` query ``i``."""
    for n in (1, 2, 5):
        got = to_cpu(f"causal_mask({n})", attempt(causal_mask, n))
        expect(
            isinstance(got, torch.Tensor) and got.dtype == torch.bool,
            f"causal_mask({n}) type",
            "a torch.bool tensor",
            f"{type(got).__name__} of dtype {got.dtype}" if hasattr(got, "dtype") else type(got).__name__,
        )
        expect_equal(f"causal_mask({n})", got, torch.ones(n, n, dtype=torch.bool).tril())
    passed("query i may attend to keys 0..i: the lower triangle, diagonal included.")


def check_masked_softmax(masked_softmax: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``masked_softmax(scores, mask)``: softmax over allowed keys, zeros elsewhere and on empty rows."""
    scores = seeded_randn(2, 4, 4, seed=4)
    mask = torch.tensor(
        [
            [True, False, True, False],
            [False, False, False, False],
            [True, True, True, True],
            [False, True, False, False],
        ]
    )
    got = attempt(masked_softmax, scores.clone(), mask.clone())
    want = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).nan_to_num(0.0)
    expect_close("masked_softmax", got, want)
    passed("masked keys get weight 0, allowed keys share 1, and a row with no allowed key is all 0.")


def check_attend(attend: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``attend(q, k, v, mask)`` returns ``(out, weights)`` of scaled dot-product attention."""
    q, k, v = seeded_randn(2, 5, 8, seed=5), seeded_randn(2, 6, 8, seed=6), seeded_randn(2, 6, 3, seed=7)
    mask = torch.ones(5, 6, dtype=torch.bool).tril(diagonal=1)
    for name, m in (("without a mask", None), ("with a mask", mask)):
        got = attempt(attend, q.clone(), k.clone(), v.clone(), m)
        out, weights = as_sequence(f"attend {name}", got, ("out", "weights"))
        expect_close(f"out {name}", out, F.scaled_dot_product_attention(q, k, v, attn_mask=m))
        scores = q @ k.transpose(-2, -1) / 8**0.5
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        expect_close(f"weights {name}", weights, torch.softmax(scores, dim=-1))
    passed("your attention equals torch.nn.functional.scaled_dot_product_attention.")
