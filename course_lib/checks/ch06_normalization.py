"""Checkers of notebook 06 · Normalization: DeepNorm's constants for an encoder-decoder (Wang et al.
2022, table 1), a LayerNorm's gain and bias folded into the next linear layer, and LayerNorm's
backward pass (Ba et al. 2016) against autograd.

The backward pass is also checked on rows where ``eps`` matters (a nearly constant row, a row of
tiny values): there, forgetting ``eps`` or adding it outside the square root (``std + eps``) gives
a clearly different answer.
"""

from __future__ import annotations

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

__all__ = ["check_deepnorm_encoder_decoder", "check_fold_norm_into_linear", "check_layer_norm_backward"]

C = 8  # the normalized (last) dimension of every case


def _deepnorm_encoder_decoder(n_encoder_layers: int, n_decoder_layers: int) -> tuple[float, ...]:
    """Wang et al. (2022), table 1, encoder-decoder row: N = encoder blocks, M = decoder blocks."""
    depth = n_encoder_layers**4 * n_decoder_layers
    return (
        0.81 * depth ** (1 / 16),
        0.87 * depth ** (-1 / 16),
        (3 * n_decoder_layers) ** 0.25,
        (12 * n_decoder_layers) ** -0.25,
    )


def check_deepnorm_encoder_decoder(deepnorm_encoder_decoder: Callable[[int, int], tuple[float, ...]]) -> None:
    """``deepnorm_encoder_decoder(n_encoder_layers, n_decoder_layers)``: the encoder's
    ``(alpha, beta)``, then the decoder's."""
    names = ("encoder_alpha", "encoder_beta", "decoder_alpha", "decoder_beta")
    for n_encoder_layers, n_decoder_layers in ((6, 6), (12, 6), (6, 12), (100, 100), (1, 1000)):
        what = f"deepnorm_encoder_decoder({n_encoder_layers}, {n_decoder_layers})"
        got = as_sequence(what, attempt(deepnorm_encoder_decoder, n_encoder_layers, n_decoder_layers), names)
        want = _deepnorm_encoder_decoder(n_encoder_layers, n_decoder_layers)
        for name, value, expected in zip(names, got, want, strict=True):
            expect_number(f"{what} {name}", value, expected, rtol=1e-6)  # float32 will do
    passed(
        "the decoder's constants count its three sublayers per block (3 and 12 where one stack has "
        "2 and 8), and the encoder's depend on the decoder's depth too."
    )


def check_fold_norm_into_linear(
    fold_norm_into_linear: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """``fold_norm_into_linear(norm_weight, norm_bias, W, W_bias) -> (W_folded, W_bias_folded)`` such
    that a LayerNorm without gain and bias followed by the folded linear layer computes the same as
    the LayerNorm with them followed by the original linear layer."""
    norm_weight, norm_bias = seeded_randn(C, seed=21) + 1, seeded_randn(C, seed=22)
    x = seeded_randn(3, 4, C, seed=23) * 3 + 1  # (B, T, C)
    for n_out in (C, 5):  # square first: scaling the rows instead of the columns fails with a message
        W, W_bias = seeded_randn(n_out, C, seed=24), seeded_randn(n_out, seed=25)
        what = f"fold_norm_into_linear(norm_weight, norm_bias, W of shape {(n_out, C)}, W_bias)"
        answer = attempt(
            fold_norm_into_linear, norm_weight.clone(), norm_bias.clone(), W.clone(), W_bias.clone()
        )
        folded = as_sequence(what, answer, ("W_folded", "W_bias_folded"))
        W_folded = as_float64(f"{what} W_folded", folded[0])
        W_bias_folded = as_float64(f"{what} W_bias_folded", folded[1])
        expect(W_folded.shape == W.shape, f"{what} W_folded shape", tuple(W.shape), tuple(W_folded.shape))
        expect(
            W_bias_folded.shape == W_bias.shape,
            f"{what} W_bias_folded shape",
            (n_out,),
            tuple(W_bias_folded.shape),
        )
        want = F.linear(F.layer_norm(x, (C,), norm_weight, norm_bias), W, W_bias)
        got = F.linear(F.layer_norm(x, (C,)), W_folded, W_bias_folded)
        expect_close(f"{what}: the folded layer applied to LayerNorm without gain and bias", got, want)
    passed("the gain scales W's columns, and the norm's bias becomes W @ bias in the next bias.")


def _norm_cases(seed: int) -> dict[str, torch.Tensor]:
    """Inputs ``(..., C)`` in float64: ordinary rows, then rows whose variance is comparable to eps."""
    return {
        "random rows": seeded_randn(3, 4, C, seed=seed) * 5 + 2,
        "a nearly constant row (3 + 1e-4 * noise)": 3.0 + 1e-4 * seeded_randn(2, C, seed=seed + 100),
        "a row of tiny values (~1e-3)": 1e-3 * seeded_randn(2, C, seed=seed + 200),
    }


def _layer_norm_gradients(
    x: torch.Tensor, weight: torch.Tensor, dout: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dx, dweight, dbias)`` of ``F.layer_norm`` by autograd, for the upstream gradient ``dout``."""
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    bias = torch.zeros_like(weight, requires_grad=True)
    out = F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
    dx, dweight, dbias = torch.autograd.grad(out, (x, weight, bias), dout)
    return dx, dweight, dbias


def check_layer_norm_backward(layer_norm_backward: Callable[..., tuple[torch.Tensor, ...]]) -> None:
    """``layer_norm_backward(x, weight, dout, eps) -> (dx, dweight, dbias)`` over the last dimension,
    as autograd computes them for ``F.layer_norm``."""
    weight, eps = seeded_randn(C, seed=31) + 1, 1e-5
    for name, x in _norm_cases(seed=30).items():
        dout = seeded_randn(*x.shape, seed=32)
        what = f"layer_norm_backward on {name}, eps={eps:g}"
        answer = attempt(layer_norm_backward, x.clone(), weight.clone(), dout.clone(), eps)
        got = as_sequence(what, answer, ("dx", "dweight", "dbias"))
        want = _layer_norm_gradients(x, weight, dout, eps)
        for grad_name, value, expected in zip(("dx", "dweight", "dbias"), got, want, strict=True):
            expect_close(f"{what}: {grad_name}", value, expected, atol=1e-5)
    passed(
        "dx flows three ways (directly, through the mean, through the variance); "
        "dweight and dbias sum over the tokens."
    )
