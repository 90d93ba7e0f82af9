"""Checkers of notebook 04 · Multi-head attention: counting MHA/GQA parameters, one decoding step
with a KV cache, and grouped-query attention without copying the K/V heads (Ainslie et al. 2023)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.attention import MultiHeadAttention
from course_lib.checks._core import as_sequence, attempt, expect_close, expect_number, passed, seeded_randn

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


def check_grouped_query_attention(grouped_query_attention: Callable[..., torch.Tensor]) -> None:
    """``grouped_query_attention(q, k, v)`` against ``F.scaled_dot_product_attention(enable_gqa=True)``.

    The cases have ``T != S`` (a transposed score matrix fails) and groups of 2 to 4 query heads, where
    repeating the K/V heads with ``repeat`` (tile) instead of ``repeat_interleave`` gives other numbers.
    """
    cases = ((2, 4, 2, 3, 5, 4), (1, 6, 3, 4, 2, 8), (1, 8, 2, 2, 3, 4))  # (B, H, H_kv, T, S, D)
    for seed, (B, H, H_kv, T, S, D) in enumerate(cases):
        q = seeded_randn(B, H, T, D, seed=3 * seed)
        k, v = seeded_randn(B, H_kv, S, D, seed=3 * seed + 1), seeded_randn(B, H_kv, S, D, seed=3 * seed + 2)
        want = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # (B, H, T, D)
        call = f"grouped_query_attention with H={H} query heads, H_kv={H_kv} K/V heads, T={T}, S={S}"
        expect_close(call, attempt(grouped_query_attention, q, k, v), want)
    passed("each group of H / H_kv query heads shares one K/V head, exactly as enable_gqa=True.")
