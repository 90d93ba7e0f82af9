"""Checkers of notebook 03 · Self-attention: a padded causal mask, causal self-attention, and a
hard key-value lookup (the task that ``course_lib.toy`` trains attention on)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from course_lib.attention import causal_mask, padding_mask, scaled_dot_product_attention
from course_lib.checks._core import (
    as_sequence,
    as_tensor,
    attempt,
    expect,
    expect_close,
    expect_equal,
    passed,
    seeded_randn,
    to_cpu,
)
from course_lib.toy import retrieval_batch

__all__ = ["check_causal_self_attention", "check_lookup", "check_padded_causal_mask"]


def check_padded_causal_mask(padded_causal_mask: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """``padded_causal_mask(lengths, T)``: ``(B, 1, T, T)`` booleans.

    True where query ``t`` may attend to key ``s``: ``s <= t`` and ``s < lengths[b]``.
    """
    for lengths, T in (([4, 2, 1], 4), ([5], 5), ([3, 6, 1, 2], 6)):
        what = f"padded_causal_mask(torch.tensor({lengths}), {T})"
        got = to_cpu(what, attempt(padded_causal_mask, torch.tensor(lengths), T))
        expect(
            isinstance(got, torch.Tensor) and got.dtype == torch.bool,
            f"{what} type",
            "a torch.bool tensor",
            f"{type(got).__name__} of dtype {got.dtype}" if hasattr(got, "dtype") else type(got).__name__,
        )
        shape = (len(lengths), 1, T, T)
        expect(tuple(got.shape) == shape, f"{what} shape", f"{shape} (B, 1, T, T)", tuple(got.shape))
        empty = (~got.any(dim=-1)).nonzero().tolist()  # [b, 0, t] of every query row with no key
        if empty:
            b, _, t = empty[0]
            raise AssertionError(
                f"{what}: expected at least one allowed key in every query row (a row without one "
                "gives NaN in a plain softmax): mask the padded keys, not the padded queries, and "
                f"keep s <= t; got no allowed key for query t={t} of sample b={b}"
            )
        expect_equal(what, got, padding_mask(torch.tensor(lengths), T) & causal_mask(T))
    passed("query t sees keys 0..t that are real tokens; a padded query still sees the real ones.")


def _self_attention_case(seed: int) -> tuple[torch.Tensor, ...]:
    X = seeded_randn(2, 5, 6, seed=seed)  # (B, T, C)
    W_q, W_k, W_v = (seeded_randn(6, d, seed=seed + i) for i, d in ((1, 4), (2, 4), (3, 3)))
    return X, W_q, W_k, W_v


def _check_self_attention_fn(fn: Callable[..., Any], name: str, mask: torch.Tensor | None) -> None:
    X, W_q, W_k, W_v = _self_attention_case(seed=8)
    got = attempt(fn, X.clone(), W_q.clone(), W_k.clone(), W_v.clone())
    got_out, got_weights = as_sequence(f"{name} result", got, ("out", "weights"))
    out, weights = scaled_dot_product_attention(X @ W_q, X @ W_k, X @ W_v, mask)
    expect_close(f"{name} weights", got_weights, weights)
    expect_close(f"{name} out", got_out, out)


def check_causal_self_attention(
    causal_self_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """``causal_self_attention(X, W_q, W_k, W_v)``: ``X (B, T, C)`` -> ``(out, weights)``.

    ``out (B, T, d_v)``, ``weights (B, T, T)``: position ``t`` attends only to positions ``<= t``.
    """
    _check_self_attention_fn(
        causal_self_attention, "causal_self_attention", torch.ones(5, 5, dtype=torch.bool).tril()
    )
    passed("with a causal mask, token t only mixes the values of tokens 0..t.")


def check_lookup(lookup: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``lookup(keys, values, queries)``: the value paired with each query key, shape ``(B, Q)``."""
    for n_queries in (1, 3):
        batch = retrieval_batch(50, 6, 9, 5, n_queries, generator=torch.Generator().manual_seed(n_queries))
        got = as_tensor(
            "lookup result", attempt(lookup, batch.keys.clone(), batch.values.clone(), batch.queries.clone())
        )
        want = batch.targets
        expect(tuple(got.shape) == tuple(want.shape), "lookup shape", tuple(want.shape), tuple(got.shape))
        expect(not got.is_complex(), "lookup result", "value ids", f"a tensor of dtype {got.dtype}")
        wrong = int((got.to(torch.float64) != want.to(torch.float64)).sum())
        expect(
            wrong == 0, f"lookup with {n_queries} queries per sample", "every answer right", f"{wrong} wrong"
        )
    passed("a hard lookup: find the position of the query key, read the value there.")
