"""Checkers of notebook 04 · Multi-head attention: counting MHA/GQA parameters, one decoding step
with a KV cache, and grouped-query attention without copying the K/V heads (Ainslie et al. 2023)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from course_lib.attention import MultiHeadAttention
from course_lib.checks._core import (
    as_sequence,
    attempt,
    expect,
    expect_close,
    expect_number,
    passed,
    seeded_randn,
)

__all__ = ["check_count_attention_parameters", "check_decode_step", "check_grouped_query_attention"]


def check_count_attention_parameters(count_attention_parameters: Callable[..., int]) -> None:
    """``count_attention_parameters(d_model, n_heads, n_kv_heads, bias)`` of ``MultiHeadAttention``."""
    for args in ((64, 8, 8, True), (64, 8, 2, True), (64, 8, 1, False), (4096, 32, 8, False)):
        got = attempt(count_attention_parameters, *args)
        with torch.device("meta"):  # shapes only: no memory, no initialisation, no random numbers
            module = MultiHeadAttention(*args[:3], bias=args[3])
        want = sum(p.numel() for p in module.parameters())
        expect_number(f"count_attention_parameters{args}", got, want)
    passed("Q and output: C * C each; K and V: C * H_kv * D each (+ biases), with C = d_model.")


def check_decode_step(decode_step: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
    """``decode_step(q, k_new, v_new, k_cache, v_cache) -> (out, k_cache, v_cache)``, step by step.

    A prompt's keys and values fill the cache, then each call decodes one more token; every output
    must equal the causal attention of the whole sequence at that position
    (``F.scaled_dot_product_attention(..., is_causal=True)``), and every cache must hold the keys
    and values of all tokens so far.
    """
    for seed, (B, H, T, D, prompt) in enumerate(((1, 2, 5, 4, 2), (2, 3, 4, 8, 0))):
        q, k, v = (seeded_randn(B, H, T, D, seed=10 * seed + i) for i in range(3))  # (B, H, T, D)
        full = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        k_cache, v_cache = k[:, :, :prompt], v[:, :, :prompt]  # (B, H, S, D) with S = prompt
        for t in range(prompt, T):
            step = slice(t, t + 1)
            call = f"decode step of token {t} (B={B}, H={H}, D={D}, S={t} cached)"
            answer = attempt(decode_step, q[:, :, step], k[:, :, step], v[:, :, step], k_cache, v_cache)
            out, k_cache, v_cache = as_sequence(call, answer, ("out", "k_cache", "v_cache"))
            expect_close(f"k_cache after the {call}", k_cache, k[:, :, : t + 1])
            expect_close(f"v_cache after the {call}", v_cache, v[:, :, : t + 1])
            expect_close(f"out of the {call}", out, full[:, :, step])
    passed("append the new key and value first, then the new token attends to every cached one.")


class _AllocationLog(TorchDispatchMode):
    """Records, for every ATen op run inside it, the op's name and the size of each new tensor.

    The size is that of the output's storage (in elements), so a view (``unsqueeze``, ``expand``,
    ``view``) counts as the tensor it views, and only a real copy counts as a new, larger one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor) and tensor.layout == torch.strided:
                self.ops.append(
                    (func.overloadpacket.__name__, tensor.untyped_storage().nbytes() // tensor.element_size())
                )
        return out


def check_grouped_query_attention(grouped_query_attention: Callable[..., torch.Tensor]) -> None:
    """``grouped_query_attention(q, k, v)`` against ``F.scaled_dot_product_attention(enable_gqa=True)``.

    The cases have ``T != S`` (a transposed score matrix fails) and groups of 2 to 4 query heads, where
    repeating the K/V heads with ``repeat`` (tile) instead of ``repeat_interleave`` gives other numbers.
    Every op the answer runs is logged (a ``TorchDispatchMode``): a tensor with as many numbers as
    K or V repeated for all ``H`` query heads, ``B * H * S * D``, is such a copy and fails, and so
    does a call of PyTorch's attention kernel. The cases keep ``T < S`` and ``T < D``, so that the
    scores ``(B, H, T, S)`` and the output ``(B, H, T, D)`` of a right answer are smaller than that.
    """
    cases = ((2, 4, 2, 3, 5, 4), (1, 6, 2, 2, 4, 8), (1, 8, 2, 2, 3, 4))  # (B, H, H_kv, T, S, D)
    for seed, (B, H, H_kv, T, S, D) in enumerate(cases):
        q = seeded_randn(B, H, T, D, seed=3 * seed)
        k, v = seeded_randn(B, H_kv, S, D, seed=3 * seed + 1), seeded_randn(B, H_kv, S, D, seed=3 * seed + 2)
        want = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # (B, H, T, D)
        call = f"grouped_query_attention with H={H} query heads, H_kv={H_kv} K/V heads, T={T}, S={S}, D={D}"
        with _AllocationLog() as log:
            got = attempt(grouped_query_attention, q, k, v)
        expect_close(call, got, want)
        fused = [name for name, _ in log.ops if "scaled_dot_product" in name]
        expect(
            not fused,
            call,
            "attention written with your own matrix products, not F.scaled_dot_product_attention",
            f"a call of PyTorch's kernel ({fused[0] if fused else ''})",
        )
        copy_size = B * H * S * D  # K (or V) with one copy of each K/V head per query head
        copies = [(name, size) for name, size in log.ops if size >= copy_size]
        expect(
            not copies,
            call,
            f"no tensor as large as K or V repeated for all {H} query heads (B*H*S*D = {copy_size} "
            "numbers): repeat_interleave, repeat, expand(...).reshape and a torch.matmul that "
            "broadcasts over a size-1 group axis each build one",
            f"a tensor of {copies[0][1]} numbers made by torch's `{copies[0][0]}`" if copies else "",
        )
    passed("each group of H / H_kv query heads reads its one K/V head, as enable_gqa=True does, uncopied.")
