"""Attention: scaled dot-product attention, boolean masks, and multi-head attention with
grouped K/V heads (MHA, GQA, MQA) and a KV cache.

Vaswani et al. 2017, "Attention is all you need" (scaled dot-product and multi-head attention);
Shazeer 2019, "Fast transformer decoding" (multi-query attention); Ainslie et al. 2023, "GQA".

Conventions used everywhere in the course:
- A mask is boolean and ``True`` means "may attend". It is turned into an additive mask
  (``0`` or ``-inf``) only inside this module.
- Inside attention, tensors are ``(B, H, T, D)``: batch, heads, positions, head dimension.
  Outside, ``(B, T, C)`` with ``C = d_model``.
- Positions enter through hooks, so this module needs nothing from later chapters: an additive
  ``score_bias`` (e.g. ALiBi) and a ``rotary(x, positions)`` function applied to queries and
  keys (e.g. RoPE).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validate import check_heads, check_positive_int, check_probability, check_tensor, describe

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
Rotary = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B, H, T, D), positions (T,)) -> x


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(x, name, dtypes=FLOATS)
        if x.ndim < 2:
            raise ValueError(f"{name}: expected shape (..., T, D), got {tuple(x.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k: expected the same last dimension, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v: expected the same number of positions, got {k.shape[-2]} and {v.shape[-2]}"
        )


def _check_scores_operand(
    x: torch.Tensor, name: str, scores_shape: torch.Size, device: torch.device, dtypes: tuple
) -> None:
    """``x`` (a mask or a score bias) on ``device``, broadcasting to the scores without changing them.

    Broadcasting lines shapes up from the right, so an operand with more dimensions than the
    scores, or with a size that does not fit, would make other scores or an error: both are
    refused here. (A mask whose leading size lands on another dimension, ``(B, 1, S)`` on
    ``(B, H, T, S)`` read as ``(H, T, S)``, broadcasts cleanly when ``B == H``: the rank rule in
    ``_check_mask_and_bias`` refuses it.)
    """
    check_tensor(x, name, dtypes=dtypes)
    if x.device != device:
        raise ValueError(f"{name}: expected a tensor on {device} (where q is), got one on {x.device}")
    try:
        broadcast = torch.broadcast_shapes(x.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"{name}: expected a shape that broadcasts to the scores {tuple(scores_shape)} without "
            f"changing it, got {tuple(x.shape)} (padding masks are (B, 1, 1, S), causal masks (T, S))"
        )


def _check_mask_and_bias(
    mask: torch.Tensor | None, score_bias: torch.Tensor | None, scores_shape: torch.Size, device: torch.device
) -> None:
    if mask is not None:
        _check_scores_operand(mask, "mask", scores_shape, device, (torch.bool,))
        if 2 < mask.ndim < len(scores_shape):  # (B, T, S) on (B, H, T, S) would read B as H
            raise ValueError(
                f"mask: a {mask.ndim}-D mask on {len(scores_shape)}-D scores {tuple(scores_shape)} is "
                f"ambiguous (its first dimension would be read as the heads, not the batch); got "
                f"{tuple(mask.shape)}: give it the scores' rank, e.g. (B, 1, T, S) or (B, 1, 1, S)"
            )
    if score_bias is not None:
        _check_scores_operand(score_bias, "score_bias", scores_shape, device, FLOATS)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    score_bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T / sqrt(d_k) + score_bias) v``, with the attention weights.

    Args:
        q: queries ``(..., Tq, D)``; k: keys ``(..., Tk, D)``; v: values ``(..., Tk, Dv)``.
        mask: boolean, broadcastable to ``(..., Tq, Tk)`` without changing that shape (padding:
            ``(B, 1, 1, Tk)``, causal: ``(Tq, Tk)``); ``True`` = may attend.
        score_bias: added to the scaled scores, broadcastable to ``(..., Tq, Tk)`` (ALiBi); the sum
            keeps the dtype of ``q``.
        dropout_p: dropout on the weights (use only while training).

    Returns:
        ``out`` of shape ``(..., Tq, Dv)`` and ``weights`` of shape ``(..., Tq, Tk)``; each row
        of the weights sums to one over the allowed keys. A query with no allowed key gets
        all-zero weights and an all-zero output (as ``F.scaled_dot_product_attention`` in
        PyTorch >= 2.5), never NaN.
    """
    _check_qkv(q, k, v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    _check_mask_and_bias(mask, score_bias, scores.shape, q.device)
    if score_bias is not None:
        scores = (scores + score_bias).to(scores.dtype)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:  # a row with no allowed key is all -inf: softmax gives NaN there
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    score_bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """The same output as ``scaled_dot_product_attention``, from PyTorch's fused kernel.

    No weights are returned: the fast kernels never build the full ``(Tq, Tk)`` matrix. ``k`` and
    ``v`` may have fewer heads than ``q`` (dim -3, GQA/MQA): each shared head serves its
    contiguous group of query heads (``enable_gqa=True``), without copying it in the kernels that
    support it (the CPU and CUDA flash kernels); PyTorch's math fallback (taken, for example, with
    dropout on a CPU) repeats the K/V heads internally. A query with no allowed key gets a zero
    output, as in ``scaled_dot_product_attention``.
    """
    _check_qkv(q, k, v)
    _check_mask_and_bias(mask, score_bias, torch.Size((*q.shape[:-1], k.shape[-2])), q.device)
    attn_mask = mask
    if score_bias is not None:
        bias = score_bias.to(q.dtype)
        attn_mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
    grouped = q.ndim >= 3 and k.ndim >= 3 and q.shape[-3] != k.shape[-3]
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, enable_gqa=grouped
    )


def causal_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(n, n)`` boolean mask: query ``i`` may attend to keys ``j <= i``."""
    check_positive_int(n, "n")
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def prefix_lm_mask(n: int, prefix_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(n, n)`` boolean mask of a prefix LM (GLM, T5's prefix LM, UniLM).

    Every query may attend to the whole prefix ``j < prefix_len`` (bidirectional there), and
    to the earlier positions ``j <= i`` (causal after it).
    """
    check_positive_int(n, "n")
    if isinstance(prefix_len, bool) or not isinstance(prefix_len, int):
        raise TypeError(f"prefix_len: expected an int, got {describe(prefix_len)}")
    if not 0 <= prefix_len <= n:
        raise ValueError(f"prefix_len: expected 0..n={n}, got {prefix_len}")
    mask = causal_mask(n, device)
    mask[:, :prefix_len] = True
    return mask


def sliding_window_mask(n: int, window: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(n, n)`` boolean mask of causal sliding-window attention (Beltagy et al. 2020, Longformer;
    Jiang et al. 2023, Mistral 7B).

    Query ``i`` may attend to the ``window`` most recent keys, itself included:
    ``i - window < j <= i``, as Hugging Face's Mistral (``kv_idx > q_idx - sliding_window``).
    ``window >= n`` gives the causal mask.
    """
    check_positive_int(n, "n")
    check_positive_int(window, "window")
    query = torch.arange(n, device=device)[:, None]
    key = torch.arange(n, device=device)[None, :]
    return (key <= query) & (key > query - window)


def padding_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, 1, 1, n)`` boolean mask for a padded batch: key ``j`` is allowed when ``j < lengths[b]``.

    The two dimensions of size 1 broadcast over heads and queries, so the mask means the same for
    ``(B, H, T, n)`` scores whatever ``B`` and ``H`` are, and combines with a ``(T, n)`` causal
    mask by ``&`` into ``(B, 1, T, n)``. It is made on ``lengths.device``.
    """
    check_tensor(lengths, "lengths", ndim=1, dtypes=(torch.int64, torch.int32))
    check_positive_int(n, "n")
    if lengths.numel() and (lengths.min() < 0 or lengths.max() > n):
        raise ValueError(f"lengths: expected values in 0..n={n}, got {lengths.tolist()}")
    keys = torch.arange(n, device=lengths.device)
    return (keys[None, :] < lengths[:, None])[:, None, None, :]  # (B, n) -> (B, 1, 1, n)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat each K/V head ``n_rep`` times along dim 1: ``(B, Hkv, T, D) -> (B, Hkv*n_rep, T, D)``.

    Contiguous blocks, as in Llama: query head ``j`` reads K/V head ``j // n_rep``::

        K/V heads:    k0        k1
        query heads:  q0 q1 q2  q3 q4 q5      (n_rep = 3: repeat_interleave, not tile)
    """
    check_tensor(x, "x", ndim=4)
    check_positive_int(n_rep, "n_rep")
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def kv_cache_bytes(
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    seq_len: int = 1,
    batch_size: int = 1,
    bytes_per_value: int = 2,
) -> int:
    """Memory of a KV cache: ``2 (K and V) * layers * K/V heads * head_dim * tokens * bytes``.

    ``bytes_per_value`` is 2 for fp16/bf16, 4 for fp32. With the defaults it is the cost of one token.
    """
    for name, value in (
        ("n_layers", n_layers),
        ("n_kv_heads", n_kv_heads),
        ("head_dim", head_dim),
        ("seq_len", seq_len),
        ("batch_size", batch_size),
        ("bytes_per_value", bytes_per_value),
    ):
        check_positive_int(value, name)
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_value


@dataclass
class KVCache:
    """Keys and values of the positions seen so far, for step-by-step decoding.

    ``k`` and ``v`` have shape ``(B, Hkv, T_seen, D)``; both are ``None`` before the first step.
    """

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new positions' ``k, v`` ``(B, Hkv, T_new, D)``; return all of them."""
        check_tensor(k, "k", ndim=4, dtypes=FLOATS)
        check_tensor(v, "v", ndim=4, dtypes=FLOATS)
        if k.shape[:-1] != v.shape[:-1]:
            raise ValueError(
                f"k and v: expected the same (B, Hkv, T_new), got {tuple(k.shape)} and {tuple(v.shape)}"
            )
        for name, new, seen in (("k", k, self.k), ("v", v, self.v)):
            if seen is not None and (new.shape[:2] != seen.shape[:2] or new.shape[-1] != seen.shape[-1]):
                raise ValueError(
                    f"{name}: expected (B, Hkv, T_new, D) = ({seen.shape[0]}, {seen.shape[1]}, T_new, "
                    f"{seen.shape[-1]}) like the cached positions, got {tuple(new.shape)}"
                )
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """Multi-head attention with ``n_kv_heads`` K/V heads shared by groups of query heads.

    ``n_kv_heads = n_heads`` (default) is MHA, ``n_kv_heads = 1`` is MQA, and anything between
    that divides ``n_heads`` is GQA. Self-attention by default; pass ``context`` for
    cross-attention (keys and values from the encoder).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.head_dim = check_heads(d_model, n_heads, n_kv_heads)
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        self.dropout = check_probability(dropout, "dropout")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.q_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: torch.Tensor, n_heads: int) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, n_heads, self.head_dim).transpose(1, 2)  # (B, T, H*D) -> (B, H, T, D)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        *,
        score_bias: torch.Tensor | None = None,
        rotary: Rotary | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``x`` to ``context`` (default: ``x`` itself).

        Args:
            x: queries' input ``(B, T, C)``.
            context: keys' and values' input ``(B, S, C)`` for cross-attention.
            mask: boolean, ``(T, S)``, ``(B, T, S)`` or ``(B, 1 or H, T, S)`` (padding: ``(B, 1, 1, S)``);
                True = may attend.
            score_bias: additive, broadcastable to ``(B, H, T, S)`` (e.g. ALiBi).
            rotary: ``rotary(x, positions)`` applied to queries and keys ``(B, H, T, D)``
                (self-attention only).
            cache: a ``KVCache`` for self-attention decoding; new positions continue after it.
            need_weights: also return the weights ``(B, H, T, S)`` (slower reference path).

        Returns:
            ``out`` of shape ``(B, T, C)`` and the weights (or ``None``).
        """
        for name, value in (("x", x), ("context", context)):
            if value is not None:
                check_tensor(value, name, ndim=3, dtypes=FLOATS)
                if value.shape[-1] != self.d_model:
                    raise ValueError(
                        f"{name}: expected shape (B, T, d_model={self.d_model}), got {tuple(value.shape)}"
                    )
        if context is not None and cache is not None:
            raise ValueError("cache: a KV cache is for self-attention; got a context as well")
        if context is not None and rotary is not None:
            raise ValueError(
                "rotary: RoPE encodes the distance between a query and a key of the same sequence; "
                "in cross-attention the keys come from another sequence (the context), so there is "
                "no distance to encode. Use rotary only in self-attention."
            )
        source = x if context is None else context
        q = self._split_heads(self.q_proj(x), self.n_heads)  # (B, H, T, D)
        k = self._split_heads(self.k_proj(source), self.n_kv_heads)  # (B, Hkv, S, D)
        v = self._split_heads(self.v_proj(source), self.n_kv_heads)  # (B, Hkv, S, D)
        if rotary is not None:
            offset = cache.length if cache is not None else 0
            positions = torch.arange(offset, offset + x.shape[1], device=x.device)
            q, k = rotary(q, positions), rotary(k, positions)
        if cache is not None:
            k, v = cache.append(k, v)
        if mask is not None and mask.ndim == 3:
            mask = mask[:, None]  # (B, T, S) -> (B, 1, T, S): the same for every head
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            n_rep = self.n_heads // self.n_kv_heads
            k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, Hkv, S, D) -> (B, H, S, D)
            out, weights = scaled_dot_product_attention(
                q, k, v, mask, score_bias=score_bias, dropout_p=dropout_p
            )
        else:  # enable_gqa: no copy in the flash kernels (PyTorch's math fallback repeats)
            out, weights = fused_attention(q, k, v, mask, score_bias=score_bias, dropout_p=dropout_p), None
        out = out.transpose(1, 2).reshape(x.shape)  # (B, H, T, D) -> (B, T, C)
        return self.out_proj(out), weights
