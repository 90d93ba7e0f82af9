"""Checkers of notebook 01 · Forward and backward propagation: log-softmax, cross-entropy, a linear
layer's backward pass on sequences. The references are PyTorch's (autograd, ``F.cross_entropy``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.checks._core import as_sequence, attempt, expect_close, passed

__all__ = ["check_batch_cross_entropy", "check_linear_backward", "check_log_softmax"]


def check_log_softmax(log_softmax: Callable[[np.ndarray], np.ndarray]) -> None:
    """``log_softmax(z)`` on rows of logits, stable for logits in the thousands."""
    rng = np.random.default_rng(1)
    cases = {
        "small logits": rng.normal(size=(4, 5)),
        "large logits": np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]]),
        "rows far apart": np.array([[1000.0, 1001.0], [-1000.0, -999.0]]),  # needs each row's own max
        "a single row": np.array([[3.0, -2.0, 0.5, 0.5]]),
    }
    for name, z in cases.items():
        got = attempt(log_softmax, z.copy())
        expect_close(f"log_softmax on {name}", got, torch.log_softmax(torch.from_numpy(z), dim=-1))
    passed("log-softmax via the log-sum-exp trick matches torch.log_softmax, even for huge logits.")


def check_linear_backward(
    linear_backward: Callable[
        [np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]
    ],
) -> None:
    """``linear_backward(dout, X, W)`` for ``out = X @ W + b`` applied along the last axis of ``X``
    must return ``(dX, dW, db)``, for ``X`` of shape ``(N, C)`` and ``(B, T, C)`` alike."""
    rng = np.random.default_rng(2)
    cases = {"a batch of vectors (N, C) = (5, 3)": (5,), "a batch of sequences (B, T, C) = (2, 4, 3)": (2, 4)}
    names = ("dX", "dW", "db")
    for case, leading in cases.items():
        X, W, b, dout = (
            rng.normal(size=(*leading, 3)),
            rng.normal(size=(3, 6)),
            rng.normal(size=6),
            rng.normal(size=(*leading, 6)),
        )
        Xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (X, W, b))
        (Xt @ Wt + bt).backward(torch.from_numpy(dout))
        got = as_sequence(
            f"linear_backward result on {case}",
            attempt(linear_backward, dout.copy(), X.copy(), W.copy()),
            names,
        )
        for name, value, reference in zip(names, got, (Xt.grad, Wt.grad, bt.grad), strict=True):
            expect_close(f"{name} on {case}", value, reference)
    passed("dX = dout W^T, and dW and db add up the contributions of every position, as autograd says.")


def check_batch_cross_entropy(batch_cross_entropy: Callable[[np.ndarray, np.ndarray], float]) -> None:
    """``batch_cross_entropy(logits, y)``: mean cross-entropy from logits, stable."""
    rng = np.random.default_rng(3)
    cases = {
        "random logits": (rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)),
        # The true class of row 0 is 800 below the top logit: its probability underflows to 0.
        "large logits": (np.array([[0.0, 800.0], [500.0, 0.0]]), np.array([0, 1])),
    }
    for name, (logits, y) in cases.items():
        got = attempt(batch_cross_entropy, logits.copy(), y.copy())
        want = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
        expect_close(f"batch_cross_entropy on {name}", got, want)
    passed("the mean cross-entropy from logits matches F.cross_entropy.")
