"""Positional information: sinusoidal and learned absolute positions, RoPE, ALiBi, and the RoPE
scalings used to extend the context (position interpolation, NTK-aware base, a larger base).

Vaswani et al. 2017 (sinusoidal); Su et al. 2021, "RoFormer" (RoPE); Press et al. 2022, "Train
short, test long" (ALiBi); Chen et al. 2023, "Extending context window ... via positional
interpolation"; bloc97 2023, "NTK-aware scaled RoPE"; Xiong et al. 2023, "Effective long-context
scaling of foundation models" (LLaMA 2 Long: a larger base, "ABF"); ChatGLM-6B's code (THUDM
2023, the GLM-130B family of Zeng et al. 2023) for the 2D RoPE of ``apply_rope_2d``.

RoPE acts on queries and keys of shape ``(..., T, D)`` and is given to attention as its
``rotary(x, positions)`` hook; ALiBi is an additive ``score_bias`` of shape ``(H, T, S)``.
Every table builder takes ``device=``; angles are computed in float32 (float64 for float64 inputs)
whatever the dtype of the model, because a position times a speed in bfloat16 is off by whole
hundredths of a radian past a few hundred positions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib._validate import check_number, check_positive_int, check_tensor

Device = torch.device | str | None


def _check_even(value: int, name: str) -> int:
    check_positive_int(value, name)
    if value % 2:
        raise ValueError(f"{name}: expected an even number (dimensions come in pairs), got {value}")
    return value


def sinusoidal_encoding(n_positions: int, d_model: int, device: Device = None) -> torch.Tensor:
    """``(n_positions, d_model)``: ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``.

    Sines and cosines are interleaved as in Vaswani et al. (2017), section 3.5.
    """
    check_positive_int(n_positions, "n_positions")
    _check_even(d_model, "d_model")
    position = torch.arange(n_positions, dtype=torch.float32, device=device)[:, None]  # (P, 1)
    exponents = torch.arange(0, d_model, 2, dtype=torch.float32, device=device) / d_model
    angles = position * 10000.0**-exponents  # (P, d/2)
    encoding = torch.empty(n_positions, d_model, device=device)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)
    return encoding


def _check_base(base: object) -> float:
    if not check_number(base, "base") > 1:
        raise ValueError(f"base: expected a number > 1, got {base!r}")
    return float(base)


def _check_scale(scale: object) -> float:
    if not check_number(scale, "scale") > 0:
        raise ValueError(f"scale: expected a number > 0 (positions are divided by it), got {scale!r}")
    return float(scale)


def rope_inv_freq(
    head_dim: int, base: float = 10000.0, *, dtype: torch.dtype = torch.float32, device: Device = None
) -> torch.Tensor:
    """The ``head_dim / 2`` rotation speeds ``theta_i = base^(-2i / head_dim)``, fastest first."""
    _check_even(head_dim, "head_dim")
    base = _check_base(base)
    return base ** (-torch.arange(0, head_dim, 2, dtype=dtype, device=device) / head_dim)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def _rope_angles(positions: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype) -> torch.Tensor:
    """Angles ``(T, D/2)`` = ``positions * theta_i``, in float32 (float64 for float64 inputs)."""
    dtype = torch.promote_types(dtype, torch.float32)
    inv_freq = rope_inv_freq(head_dim, base, dtype=dtype, device=positions.device)  # (D/2,)
    return positions.to(dtype)[:, None] * inv_freq


def _check_rope_input(x: torch.Tensor, positions: torch.Tensor) -> None:
    """``x (..., T, D)`` with an even ``D`` and one position per row: ``positions (T,)``."""
    check_tensor(x, "x", dtypes=(torch.float16, torch.bfloat16, torch.float32, torch.float64))
    check_tensor(positions, "positions", ndim=1)
    if x.ndim < 2:
        raise ValueError(f"x: expected shape (..., T, D), got {tuple(x.shape)}")
    if positions.shape != (x.shape[-2],):
        raise ValueError(
            f"positions: expected shape ({x.shape[-2]},) for x of shape {tuple(x.shape)}, "
            f"got {tuple(positions.shape)}"
        )
    _check_even(x.shape[-1], "x.shape[-1] (head_dim)")


def _rotate(x: torch.Tensor, positions: torch.Tensor, base: float, scale: float) -> torch.Tensor:
    """Rotate-half RoPE of ``x (..., T, D)`` at ``positions / scale``."""
    _check_rope_input(x, positions)
    angles = _rope_angles(positions.to(x.device), x.shape[-1], base, x.dtype) / scale  # (T, D/2)
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1).to(x.dtype)  # (T, D)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1).to(x.dtype)  # (T, D)
    return x * cos + rotate_half(x) * sin


def apply_rope(
    x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0, scale: float = 1.0
) -> torch.Tensor:
    """Rotate each pair ``(x[i], x[i + D/2])`` of ``x (..., T, D)`` by ``positions[t] / scale * theta_i``.

    The rotate-half convention of GPT-NeoX and Hugging Face's Llama: dimension ``i`` is paired with
    ``i + D/2``.
    ``scale > 1`` is position interpolation (positions shrunk by ``L_train / L_new = 1 / scale``).
    """
    return _rotate(x, positions, _check_base(base), _check_scale(scale))


def apply_rope_interleaved(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE in the interleaved convention of RoFormer, GPT-J and Meta's reference Llama code: pairs
    ``(x[2i], x[2i + 1])``."""
    _check_rope_input(x, positions)
    angles = _rope_angles(positions.to(x.device), x.shape[-1], _check_base(base), x.dtype)  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # (T, D/2)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def apply_rope_2d(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """ChatGLM's 2D RoPE: the first half of each head's dimensions rotated by ``positions[0]``, the
    second half by ``positions[1]``.

    ChatGLM-6B (THUDM 2023, in the GLM-130B family of Zeng et al. 2023) replaces GLM's two learned
    position tables (Du et al. 2022, "2D positional encoding") by rotations: for ``x (..., T, D)`` with ``D``
    a multiple of 4, ``x[..., :D/2]`` gets rotate-half RoPE (``apply_rope`` with head dimension ``D/2``) at
    ``positions[0]`` (the position in the corrupted text) and ``x[..., D/2:]`` at
    ``positions[1]`` (the position inside the span), as ChatGLM-6B's ``position_encoding_2d``
    does. A query-key score then depends only on the two offsets.

    Args:
        x: queries or keys ``(..., T, D)``, ``D % 4 == 0``.
        positions: ``(2, T)`` integer or float positions: one sequence's ``position_ids`` (from
            ``objectives.glm_example``). For a batch ``(B, 2, T)`` with its own positions per
            example, apply it per example.
        base: the RoPE base of both halves.
    """
    check_tensor(x, "x", dtypes=(torch.float16, torch.bfloat16, torch.float32, torch.float64))
    check_tensor(positions, "positions", ndim=2)
    if x.ndim < 2 or x.shape[-1] % 4:
        raise ValueError(
            "x: expected shape (..., T, D) with D a multiple of 4 (two halves of pairs), "
            f"got {tuple(x.shape)}"
        )
    if positions.shape[0] != 2:
        raise ValueError(f"positions: expected shape (2, T), got {tuple(positions.shape)}")
    base = _check_base(base)
    first, second = x.chunk(2, dim=-1)  # (..., T, D/2) each
    return torch.cat(
        [_rotate(first, positions[0], base, 1.0), _rotate(second, positions[1], base, 1.0)], dim=-1
    )


def interleaved_to_half(head_dim: int, device: Device = None) -> torch.Tensor:
    """The permutation ``p`` with ``x[..., p]`` turning interleaved pairs into rotate-half pairs.

    ``[0, 2, 4, ..., 1, 3, 5, ...]``: pair ``(2i, 2i + 1)`` lands on ``(i, i + D/2)``.
    """
    _check_even(head_dim, "head_dim")
    evens, odds = torch.arange(0, head_dim, 2, device=device), torch.arange(1, head_dim, 2, device=device)
    return torch.cat([evens, odds])


def ntk_scaled_base(base: float, scale: float, head_dim: int) -> float:
    """NTK-aware RoPE: ``base * scale^(D / (D - 2))``, which slows the slowest pair by exactly ``scale``
    while leaving the fastest nearly unchanged. Needs ``head_dim >= 4`` (with one pair, the fastest
    pair is the slowest)."""
    _check_even(head_dim, "head_dim")
    if head_dim < 4:
        raise ValueError(f"head_dim: expected an even number >= 4 (D / (D - 2) needs D > 2), got {head_dim}")
    base, scale = _check_base(base), _check_scale(scale)
    return base * scale ** (head_dim / (head_dim - 2))


class RotaryEmbedding(nn.Module):
    """RoPE as a module, to pass as attention's ``rotary`` hook: ``rope(x, positions)``.

    ``scale`` is position interpolation, ``base`` can be raised (ABF) or NTK-scaled. The module
    holds no tensors: the ``head_dim / 2`` rotation speeds are recomputed on each call in float32
    (float64 for float64 inputs), so ``.to(device)`` / ``.bfloat16()`` cannot degrade them and
    checkpoints stay clean.
    """

    def __init__(self, head_dim: int, base: float = 10000.0, scale: float = 1.0) -> None:
        super().__init__()
        self.head_dim = _check_even(head_dim, "head_dim")
        self.base, self.scale = _check_base(base), _check_scale(scale)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``x (..., T, head_dim)`` rotated for ``positions (T,)``."""
        if x.shape[-1:] != (self.head_dim,):
            raise ValueError(f"x: expected shape (..., T, head_dim={self.head_dim}), got {tuple(x.shape)}")
        return _rotate(x, positions, self.base, self.scale)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base:g}, scale={self.scale:g}"


def alibi_slopes(n_heads: int, device: Device = None) -> torch.Tensor:
    """``(n_heads,)`` head slopes of ALiBi: ``2^(-8 i / n)`` for ``i = 1..n`` when ``n`` is a power of 2.

    Otherwise (the authors' reference code, ``get_slopes``; the paper trains powers of two only):
    the slopes of the closest smaller power of two ``m``, followed by every other slope of ``2m``
    heads, until there are ``n_heads``.
    """
    check_positive_int(n_heads, "n_heads")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * i / n) for i in range(1, n + 1)]

    closest = 2 ** int(math.floor(math.log2(n_heads)))
    slopes = power_of_two(closest)
    if closest < n_heads:
        slopes += power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, device=device)


def alibi_bias(n_heads: int, n: int, n_keys: int | None = None, device: Device = None) -> torch.Tensor:
    """``(n_heads, n, n_keys)`` additive scores: ``-slope_h * |i - j|``.

    Zero on the diagonal and ``-slope * distance`` to earlier tokens; later tokens get the same
    penalty by distance (they are masked anyway in a causal model). With ``n_keys > n`` the
    queries are the last ``n`` positions (decoding with a cache).
    """
    check_positive_int(n, "n")
    n_keys = n if n_keys is None else check_positive_int(n_keys, "n_keys")
    if n_keys < n:
        raise ValueError(
            f"n_keys: expected n_keys >= n (the {n} queries are the last of the n_keys positions), "
            f"got n={n}, n_keys={n_keys}"
        )
    queries = torch.arange(n_keys - n, n_keys, device=device)[:, None]
    distance = (queries - torch.arange(n_keys, device=device)[None, :]).abs()  # (n, n_keys)
    return -alibi_slopes(n_heads, device=device)[:, None, None] * distance
