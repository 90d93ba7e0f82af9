"""Exercise checkers: one friendly line on success, a helpful ``AssertionError`` otherwise.

Each exercise asks for a function; its checker calls that function on cases the learner has not
seen and compares with a reference (a PyTorch built-in where one exists). A function whose body
is still ``raise NotImplementedError()`` (the student version) gets ``ExerciseNotDone``, an
``AssertionError`` that says which function to write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course_lib import blocks, positions
from course_lib.attention import MultiHeadAttention, repeat_kv, scaled_dot_product_attention
from course_lib.attention import kv_cache_bytes as kv_cache_reference
from course_lib.data import CharTokenizer
from course_lib.toy import retrieval_batch


class ExerciseNotDone(AssertionError):
    """The exercise's function still raises ``NotImplementedError``."""


def attempt(fn: Callable[..., Any], *args: Any) -> Any:
    """Call the learner's ``fn``; turn ``NotImplementedError`` into ``ExerciseNotDone``."""
    if not callable(fn):
        raise AssertionError(f"expected a function, got {type(fn).__name__} {fn!r:.60}")
    try:
        return fn(*args)
    except NotImplementedError:
        name = getattr(fn, "__name__", "your function")
        raise ExerciseNotDone(
            f"`{name}` is not written yet: replace `raise NotImplementedError()` in its cell "
            "with your code, run that cell, then run this check again."
        ) from None


def expect(ok: bool, what: str, expected: object, got: object) -> None:
    """Raise ``AssertionError("<what>: expected <expected>, got <got>")`` unless ``ok``."""
    if not ok:
        raise AssertionError(f"{what}: expected {expected}, got {got}")


def _as_float64(value: object) -> torch.Tensor:
    """A float64 CPU tensor of a tensor (on any device, with or without grad), array or number."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64)
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def expect_close(what: str, got: object, expected: np.ndarray | torch.Tensor, atol: float = 1e-6) -> None:
    """Check shape first (the commonest mistake), then values within ``atol`` (+ 1e-5 relative)."""
    expected_t = _as_float64(expected)
    try:
        got_t = _as_float64(got)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError(f"{what}: expected an array, got {type(got).__name__}") from None
    expect(got_t.shape == expected_t.shape, f"{what} shape", tuple(expected_t.shape), tuple(got_t.shape))
    expect(bool(torch.isfinite(got_t).all()), f"{what}", "finite values", "NaN or inf")
    worst = (got_t - expected_t).abs().max().item() if got_t.numel() else 0.0
    ok = torch.allclose(got_t, expected_t, atol=atol, rtol=1e-5)
    expect(ok, f"{what} values", f"the reference within {atol:g}", f"a largest difference of {worst:.3g}")


def passed(message: str) -> None:
    print(f"✅ Correct: {message}")


# --- 00 · Orientation ----------------------------------------------------------------------


def check_build_vocabulary(build_vocabulary: Callable[[str], list[str]]) -> None:
    """``build_vocabulary(text)`` must return the sorted list of distinct characters."""
    for text in ("hello world", "To be, or not to be", "aaaa", "Zebra 123!"):
        got = attempt(build_vocabulary, text)
        expect(isinstance(got, list), f"build_vocabulary({text!r}) type", "a list", type(got).__name__)
        want = list(CharTokenizer.from_text(text).chars)
        expect(got == want, f"build_vocabulary({text!r})", want, got)
    passed("the vocabulary is the sorted set of characters, as CharTokenizer builds it.")


def check_shift_targets(shift_targets: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``shift_targets(ids)`` must return ``(ids[:-1], ids[1:])``."""
    for ids in (torch.tensor([5, 1, 4, 1, 5, 9]), torch.arange(10, 20), torch.tensor([7, 3])):
        got = attempt(shift_targets, ids.clone())
        expect(
            isinstance(got, tuple) and len(got) == 2,
            "shift_targets result",
            "a pair (x, y)",
            type(got).__name__,
        )
        x, y = got
        expect(torch.equal(torch.as_tensor(x), ids[:-1]), f"x for {ids.tolist()}", ids[:-1].tolist(), x)
        expect(torch.equal(torch.as_tensor(y), ids[1:]), f"y for {ids.tolist()}", ids[1:].tolist(), y)
    passed("each target is the token that follows its input: next-token prediction.")


def check_count_parameters(count_parameters: Callable[[torch.nn.Module], int]) -> None:
    """``count_parameters(model)`` must count every trainable number in the model."""
    models = {
        "nn.Linear(3, 4)": torch.nn.Linear(3, 4),
        "nn.Linear(3, 4, bias=False)": torch.nn.Linear(3, 4, bias=False),
        "a 2-layer MLP": torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)),
        "nn.Embedding(65, 16)": torch.nn.Embedding(65, 16),
    }
    for name, model in models.items():
        got = attempt(count_parameters, model)
        want = sum(p.numel() for p in model.parameters())
        expect(got == want, f"count_parameters({name})", want, got)
    passed("a weight matrix (out, in) has out*in numbers and a bias has out.")


# --- 01 · Forward and backward propagation -------------------------------------------------


def check_log_softmax(log_softmax: Callable[[np.ndarray], np.ndarray]) -> None:
    """``log_softmax(z)`` on rows of logits, stable for logits in the thousands."""
    rng = np.random.default_rng(1)
    cases = {
        "small logits": rng.normal(size=(4, 5)),
        "large logits": np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]]),
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
    """``linear_backward(dout, X, W)`` for ``out = X @ W + b`` must return ``(dX, dW, db)``."""
    rng = np.random.default_rng(2)
    X, W, b, dout = (
        rng.normal(size=(5, 3)),
        rng.normal(size=(3, 4)),
        rng.normal(size=4),
        rng.normal(size=(5, 4)),
    )
    Xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (X, W, b))
    (Xt @ Wt + bt).backward(torch.from_numpy(dout))
    got = attempt(linear_backward, dout.copy(), X.copy(), W.copy())
    expect(
        isinstance(got, tuple) and len(got) == 3, "linear_backward result", "(dX, dW, db)", type(got).__name__
    )
    for name, value, reference in zip(("dX", "dW", "db"), got, (Xt.grad, Wt.grad, bt.grad), strict=True):
        expect_close(name, value, reference)
    passed("dX = dout W^T, dW = X^T dout, db = the sum of dout over the batch, as autograd says.")


def check_batch_cross_entropy(batch_cross_entropy: Callable[[np.ndarray, np.ndarray], float]) -> None:
    """``batch_cross_entropy(logits, y)``: mean cross-entropy from logits, stable."""
    rng = np.random.default_rng(3)
    cases = {
        "random logits": (rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)),
        "large logits": (np.array([[500.0, 0.0], [0.0, 800.0]]), np.array([1, 1])),
    }
    for name, (logits, y) in cases.items():
        got = attempt(batch_cross_entropy, logits.copy(), y.copy())
        want = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
        expect_close(f"batch_cross_entropy on {name}", got, want)
    passed("the mean cross-entropy from logits matches F.cross_entropy.")


# --- 02 · Attention --------------------------------------------------------------------------


def _random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def check_causal_mask(causal_mask: Callable[[int], torch.Tensor]) -> None:
    """``causal_mask(n)``: ``(n, n)`` booleans, True where key ``j <= `` query ``i``."""
    for n in (1, 2, 5):
        got = attempt(causal_mask, n)
        want = torch.ones(n, n, dtype=torch.bool).tril()
        expect(
            isinstance(got, torch.Tensor) and got.dtype == torch.bool,
            f"causal_mask({n}) type",
            "a torch.bool tensor",
            getattr(got, "dtype", type(got).__name__),
        )
        expect(tuple(got.shape) == (n, n), f"causal_mask({n}) shape", (n, n), tuple(got.shape))
        expect(torch.equal(got, want), f"causal_mask({n})", want.int().tolist(), got.int().tolist())
    passed("query i may attend to keys 0..i: the lower triangle, diagonal included.")


def check_masked_softmax(masked_softmax: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``masked_softmax(scores, mask)``: softmax over allowed keys, zeros elsewhere and on empty rows."""
    scores = _random(2, 4, 4, seed=4)
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
    q, k, v = _random(2, 5, 8, seed=5), _random(2, 6, 8, seed=6), _random(2, 6, 3, seed=7)
    mask = torch.ones(5, 6, dtype=torch.bool).tril(diagonal=1)
    for name, m in (("without a mask", None), ("with a mask", mask)):
        got = attempt(attend, q.clone(), k.clone(), v.clone(), m)
        expect(
            isinstance(got, tuple) and len(got) == 2, f"attend {name}", "(out, weights)", type(got).__name__
        )
        expect_close(f"out {name}", got[0], F.scaled_dot_product_attention(q, k, v, attn_mask=m))
        scores = q @ k.transpose(-2, -1) / 8**0.5
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        expect_close(f"weights {name}", got[1], torch.softmax(scores, dim=-1))
    passed("your attention equals torch.nn.functional.scaled_dot_product_attention.")


# --- 03 · Self-attention ---------------------------------------------------------------------


def _self_attention_case(seed: int) -> tuple[torch.Tensor, ...]:
    X = _random(2, 5, 6, seed=seed)  # (B, T, C)
    return X, _random(6, 4, seed=seed + 1), _random(6, 4, seed=seed + 2), _random(6, 3, seed=seed + 3)


def _reference_self_attention(
    X: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor, W_v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    return scaled_dot_product_attention(X @ W_q, X @ W_k, X @ W_v, mask)


def _check_self_attention_fn(fn: Callable[..., Any], name: str, mask: torch.Tensor | None) -> None:
    X, W_q, W_k, W_v = _self_attention_case(seed=8)
    got = attempt(fn, X.clone(), W_q.clone(), W_k.clone(), W_v.clone())
    expect(isinstance(got, tuple) and len(got) == 2, f"{name} result", "(out, weights)", type(got).__name__)
    out, weights = _reference_self_attention(X, W_q, W_k, W_v, mask)
    expect_close(f"{name} weights", got[1], weights)
    expect_close(f"{name} out", got[0], out)


def check_self_attention(self_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``self_attention(X, W_q, W_k, W_v)``: ``X (B, T, C)`` -> ``(out (B, T, d_v), weights (B, T, T))``."""
    _check_self_attention_fn(self_attention, "self_attention", None)
    passed("Q, K and V are three projections of the same X; the rest is scaled dot-product attention.")


def check_causal_self_attention(
    causal_self_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Like ``check_self_attention``, with position ``t`` attending only to positions ``<= t``."""
    _check_self_attention_fn(
        causal_self_attention, "causal_self_attention", torch.ones(5, 5, dtype=torch.bool).tril()
    )
    passed("with a causal mask, token t only mixes the values of tokens 0..t.")


def check_lookup(lookup: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``lookup(keys, values, queries)``: the value paired with each query key, shape ``(B, Q)``."""
    for n_queries in (1, 3):
        batch = retrieval_batch(50, 6, 9, 5, n_queries, generator=torch.Generator().manual_seed(n_queries))
        got = attempt(lookup, batch.keys.clone(), batch.values.clone(), batch.queries.clone())
        expect(isinstance(got, torch.Tensor), "lookup result", "a tensor", type(got).__name__)
        expect(
            tuple(got.shape) == tuple(batch.targets.shape),
            "lookup shape",
            tuple(batch.targets.shape),
            tuple(got.shape),
        )
        wrong = int((got != batch.targets).sum())
        expect(
            wrong == 0, f"lookup with {n_queries} queries per sample", "every answer right", f"{wrong} wrong"
        )
    passed("a hard lookup: find the position of the query key, read the value there.")


# --- 04 · Multi-head attention ---------------------------------------------------------------


def check_count_attention_parameters(count_attention_parameters: Callable[..., int]) -> None:
    """``count_attention_parameters(d_model, n_heads, n_kv_heads, bias)`` of ``MultiHeadAttention``."""
    for args in ((64, 8, 8, True), (64, 8, 2, True), (64, 8, 1, False), (4096, 32, 8, False)):
        got = attempt(count_attention_parameters, *args)
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            module = MultiHeadAttention(*args[:3], bias=args[3])
        want = sum(p.numel() for p in module.parameters())
        expect(got == want, f"count_attention_parameters{args}", want, got)
    passed("Q and output: d_model^2 each; K and V: d_model * n_kv_heads * head_dim each (+ biases).")


def check_kv_cache_bytes(kv_cache_bytes: Callable[..., int]) -> None:
    """``kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value)`` for a batch of 1."""
    for args in ((32, 32, 128, 1, 2), (32, 8, 128, 4096, 2), (80, 8, 128, 1000, 2), (2, 1, 16, 7, 4)):
        n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value = args
        got = attempt(kv_cache_bytes, *args)
        want = kv_cache_reference(
            n_layers, n_kv_heads, head_dim, seq_len=seq_len, bytes_per_value=bytes_per_value
        )
        expect(got == want, f"kv_cache_bytes{args}", want, got)
    passed("K and V, for every layer, K/V head, channel of a head and token: 2*L*Hkv*D*T*bytes.")


def check_kv_head_for(kv_head_for: Callable[[int, int, int], int]) -> None:
    """``kv_head_for(j, n_heads, n_kv_heads)``: the K/V head that query head ``j`` reads."""
    for n_heads, n_kv_heads in ((8, 8), (8, 2), (8, 1), (6, 3)):
        probe = torch.arange(n_kv_heads).view(1, n_kv_heads, 1, 1)
        want = repeat_kv(probe, n_heads // n_kv_heads).flatten().tolist()
        got = [attempt(kv_head_for, j, n_heads, n_kv_heads) for j in range(n_heads)]
        expect(got == want, f"K/V heads for {n_heads} query heads and {n_kv_heads} K/V heads", want, got)
    passed("contiguous groups, as in Llama: query head j reads K/V head j // (n_heads // n_kv_heads).")


# --- 05 · Positional encoding ----------------------------------------------------------------


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
    passed("2^(-8i/n) for a power of two; otherwise the closest power of two, then every other slope of 2m.")


def check_apply_rope(apply_rope: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``apply_rope(x, positions)``: rotate-half RoPE with base 10000 on ``x (..., T, D)``."""
    x = _random(2, 3, 7, 8, seed=9)
    for pos in (torch.arange(7), torch.arange(7) + 100):
        got = attempt(apply_rope, x.clone(), pos)
        expect_close(
            f"apply_rope at positions {pos[0].item()}..{pos[-1].item()}", got, positions.apply_rope(x, pos)
        )
    passed("each pair (x_i, x_{i+D/2}) is rotated by the angle position * base^(-2i/D).")


# --- 06 · Normalization ----------------------------------------------------------------------


def check_layer_norm(layer_norm: Callable[..., torch.Tensor]) -> None:
    """``layer_norm(x, weight, bias, eps)`` over the last dimension, as ``F.layer_norm``."""
    x = _random(3, 4, 8, seed=10) * 5 + 2
    weight, bias = _random(8, seed=11), _random(8, seed=12)
    got = attempt(layer_norm, x.clone(), weight.clone(), bias.clone(), 1e-5)
    expect_close("layer_norm", got, F.layer_norm(x, (8,), weight, bias, 1e-5))
    passed("subtract the mean, divide by the standard deviation (biased), then scale and shift.")


def check_rms_norm(rms_norm: Callable[..., torch.Tensor]) -> None:
    """``rms_norm(x, weight, eps)`` over the last dimension, as ``torch.nn.RMSNorm``."""
    x = _random(3, 4, 8, seed=13) * 5 + 2
    weight = _random(8, seed=14)
    got = attempt(rms_norm, x.clone(), weight.clone(), 1e-6)
    reference = torch.nn.RMSNorm(8, eps=1e-6).double()
    with torch.no_grad():
        reference.weight.copy_(weight)
    expect_close("rms_norm", got, reference(x))
    passed("divide by the root mean square, then scale: no mean, no bias.")


def check_deepnorm_constants(deepnorm_constants: Callable[[int], tuple[float, float]]) -> None:
    """``deepnorm_constants(n_layers)`` of a decoder-only (or encoder-only) stack: ``(alpha, beta)``."""
    for n_layers in (1, 6, 24, 1000):
        got = attempt(deepnorm_constants, n_layers)
        want = blocks.deepnorm_constants(n_layers)
        expect(
            isinstance(got, tuple) and len(got) == 2, f"deepnorm_constants({n_layers})", "(alpha, beta)", got
        )
        close = all(abs(g - w) < 1e-9 * max(1.0, abs(w)) for g, w in zip(got, want, strict=True))
        expect(close, f"deepnorm_constants({n_layers})", want, got)
    passed("alpha = (2N)^(1/4) up-weights the residual, beta = (8N)^(-1/4) shrinks the initial updates.")
