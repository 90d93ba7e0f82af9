"""Checkers of notebook 02 · Attention: a sliding-window mask, masked softmax, additive attention.

The masked softmax follows PyTorch's ``F.scaled_dot_product_attention`` (a query with no allowed
key gets zeros, from torch 2.5 on); additive attention is Bahdanau et al. (2015), section 3.1 and
appendix A.1.2.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

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

__all__ = ["check_additive_attention", "check_masked_softmax", "check_sliding_window_mask"]


def check_sliding_window_mask(sliding_window_mask: Callable[[int, int], torch.Tensor]) -> None:
    """``sliding_window_mask(T, window)``: ``(T, T)`` booleans, True where ``i - window < j <= i``."""
    for T, window in ((1, 1), (5, 1), (6, 2), (6, 3), (4, 10)):
        what = f"sliding_window_mask({T}, {window})"
        got = to_cpu(what, attempt(sliding_window_mask, T, window))
        expect(
            isinstance(got, torch.Tensor) and got.dtype == torch.bool,
            f"{what} type",
            "a torch.bool tensor",
            f"{type(got).__name__} of dtype {got.dtype}" if hasattr(got, "dtype") else type(got).__name__,
        )
        query, key = torch.arange(T)[:, None], torch.arange(T)[None, :]
        expect_equal(what, got, (key <= query) & (key > query - window))
    passed("query i sees itself and the window - 1 keys before it, never a later one.")


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference: softmax over the allowed keys, an all-zero row where none is allowed."""
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).nan_to_num(0.0)


def _mask_with_empty_row(T: int, S: int) -> torch.Tensor:
    """A ``(T, S)`` mask with one allowed key in row 0, none in row 1, all in the last row."""
    mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=1)
    mask[0] = False
    mask[0, 2] = True
    mask[1] = False
    return mask


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
    expect_close("masked_softmax", got, _masked_softmax(scores, mask))
    passed("masked keys get weight 0, allowed keys share 1, and a row with no allowed key is all 0.")


def check_additive_attention(additive_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``additive_attention(q, k, v, W_q, W_k, w, mask)`` returns ``(out, weights)``.

    Scores ``tanh(q_i W_q + k_j W_k) . w`` for ``q (..., T, d_q)``, ``k (..., S, d_k)``,
    ``W_q (d_q, h)``, ``W_k (d_k, h)``, ``w (h,)``; then a masked softmax over the keys.
    """
    q, k, v = seeded_randn(2, 4, 3, seed=5), seeded_randn(2, 5, 6, seed=6), seeded_randn(2, 5, 2, seed=7)
    W_q, W_k, w = seeded_randn(3, 7, seed=8), seeded_randn(6, 7, seed=9), seeded_randn(7, seed=10)
    scores = torch.tanh((q @ W_q)[..., :, None, :] + (k @ W_k)[..., None, :, :]) @ w  # (2, 4, 5)
    for name, mask in (("without a mask", None), ("with a mask", _mask_with_empty_row(4, 5))):
        args = (q.clone(), k.clone(), v.clone(), W_q.clone(), W_k.clone(), w.clone(), mask)
        got = attempt(additive_attention, *args)
        out, weights = as_sequence(f"additive_attention {name}", got, ("out", "weights"))
        want = torch.softmax(scores, dim=-1) if mask is None else _masked_softmax(scores, mask)
        expect_close(f"weights {name}", weights, want)
        expect_close(f"out {name}", out, want @ v)
    passed("a small tanh network scores every (query, key) pair; the rest is the same soft lookup.")
