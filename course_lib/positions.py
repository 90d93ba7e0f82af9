"""Positional information: sinusoidal and learned absolute positions, RoPE, ALiBi, and the RoPE
scalings used to extend the context (position interpolation, NTK-aware base, a larger base).

Vaswani et al. 2017 (sinusoidal); Su et al. 2021, "RoFormer" (RoPE); Press et al. 2022, "Train
short, test long" (ALiBi); Chen et al. 2023, "Extending context window ... via positional
interpolation"; bloc97 2023, "NTK-aware scaled RoPE"; Xiong et al. 2023, "Effective long-context
scaling of foundation models" (LLaMA 2 Long: a larger base, "ABF").

RoPE acts on queries and keys of shape ``(..., T, D)`` and is given to attention as its
``rotary(x, positions)`` hook; ALiBi is an additive ``score_bias`` of shape ``(H, T, S)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib._validate import check_positive_int, check_tensor


def _check_even(value: int, name: str) -> int:
    check_positive_int(value, name)
    if value % 2:
        raise ValueError(f"{name}: expected an even number (dimensions come in pairs), got {value}")
    return value


def sinusoidal_encoding(n_positions: int, d_model: int) -> torch.Tensor:
    """``(n_positions, d_model)``: ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``.

    Sines and cosines are interleaved as in Vaswani et al. (2017), section 3.5.
    """
    check_positive_int(n_positions, "n_positions")
    _check_even(d_model, "d_model")
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (d/2,)
    angles = position * inv_freq  # (P, d/2)
    encoding = torch.empty(n_positions, d_model)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)
    return encoding


def rope_inv_freq(head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """The ``head_dim / 2`` rotation speeds ``theta_i = base^(-2i / head_dim)``, fastest first."""
    _check_even(head_dim, "head_dim")
    if not base > 1:
        raise ValueError(f"base: expected a number > 1, got {base!r}")
    return base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def _rope_angles(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Angles ``(T, D/2)`` in at least float32 (float64 for float64 inputs)."""
    check_tensor(positions, "positions", ndim=1)
    dtype = torch.promote_types(dtype, torch.float32)
    return positions.to(dtype)[:, None] * inv_freq.to(device=positions.device, dtype=dtype)


def _check_rope_input(x: torch.Tensor, positions: torch.Tensor) -> None:
    """``x (..., T, D)`` with an even ``D`` and one position per row: ``positions (T,)``."""
    check_tensor(x, "x", dtypes=(torch.float16, torch.bfloat16, torch.float32, torch.float64))
    if x.ndim < 2:
        raise ValueError(f"x: expected shape (..., T, D), got {tuple(x.shape)}")
    if positions.shape != (x.shape[-2],):
        raise ValueError(
            f"positions: expected shape ({x.shape[-2]},) for x of shape {tuple(x.shape)}, "
            f"got {tuple(positions.shape)}"
        )
    _check_even(x.shape[-1], "x.shape[-1] (head_dim)")


def _rotate(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    _check_rope_input(x, positions)
    angles = _rope_angles(positions.to(x.device), inv_freq, x.dtype)  # (T, D/2)
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1).to(x.dtype)  # (T, D)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1).to(x.dtype)  # (T, D)
    return x * cos + rotate_half(x) * sin


def apply_rope(
    x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0, scale: float = 1.0
) -> torch.Tensor:
    """Rotate each pair ``(x[i], x[i + D/2])`` of ``x (..., T, D)`` by ``positions[t] / scale * theta_i``.

    The rotate-half convention of GPT-NeoX and Llama: dimension ``i`` is paired with ``i + D/2``.
    ``scale > 1`` is position interpolation (positions shrunk by ``L_train / L_new = 1 / scale``).
    """
    return _rotate(x, positions / scale, rope_inv_freq(x.shape[-1], base))


def apply_rope_interleaved(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE in the interleaved convention of RoFormer and GPT-J: pairs ``(x[2i], x[2i + 1])``."""
    _check_rope_input(x, positions)
    angles = _rope_angles(positions.to(x.device), rope_inv_freq(x.shape[-1], base), x.dtype)  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # (T, D/2)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def interleaved_to_half(head_dim: int) -> torch.Tensor:
    """The permutation ``p`` with ``x[..., p]`` turning interleaved pairs into rotate-half pairs.

    ``[0, 2, 4, ..., 1, 3, 5, ...]``: pair ``(2i, 2i + 1)`` lands on ``(i, i + D/2)``.
    """
    _check_even(head_dim, "head_dim")
    return torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])


def ntk_scaled_base(base: float, scale: float, head_dim: int) -> float:
    """NTK-aware RoPE: ``base * scale^(D / (D - 2))``, which slows the slowest pair by exactly ``scale``
    while leaving the fastest nearly unchanged."""
    _check_even(head_dim, "head_dim")
    return base * scale ** (head_dim / (head_dim - 2))


class RotaryEmbedding(nn.Module):
    """RoPE as a module, to pass as attention's ``rotary`` hook: ``rope(x, positions)``.

    ``scale`` is position interpolation, ``base`` can be raised (ABF) or NTK-scaled; the rotation
    speeds are a derived, non-persistent buffer, so ``.to(device)`` moves them and checkpoints
    stay clean.
    """

    def __init__(self, head_dim: int, base: float = 10000.0, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("inv_freq", rope_inv_freq(head_dim, base), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``x (..., T, head_dim)`` rotated for ``positions (T,)``."""
        return _rotate(x, positions / self.scale, self.inv_freq)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """``(n_heads,)`` head slopes of ALiBi: ``2^(-8 i / n)`` for ``i = 1..n`` when ``n`` is a power of 2.

    Otherwise (Press et al., 2022, appendix): the slopes of the closest smaller power of two ``m``,
    followed by every other slope of ``2m`` heads, until there are ``n_heads``.
    """
    check_positive_int(n_heads, "n_heads")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * i / n) for i in range(1, n + 1)]

    closest = 2 ** int(math.floor(math.log2(n_heads)))
    slopes = power_of_two(closest)
    if closest < n_heads:
        slopes += power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes)


def alibi_bias(n_heads: int, n: int, n_keys: int | None = None) -> torch.Tensor:
    """``(n_heads, n, n_keys)`` additive scores: ``-slope_h * |i - j|``.

    Zero on the diagonal and ``-slope * distance`` to earlier tokens; later tokens get the same
    penalty by distance (they are masked anyway in a causal model). With ``n_keys > n`` the
    queries are the last ``n`` positions (decoding with a cache).
    """
    check_positive_int(n, "n")
    n_keys = n if n_keys is None else check_positive_int(n_keys, "n_keys")
    queries = torch.arange(n_keys - n, n_keys)[:, None]
    distance = (queries - torch.arange(n_keys)[None, :]).abs()  # (n, n_keys)
    return -alibi_slopes(n_heads)[:, None, None] * distance
