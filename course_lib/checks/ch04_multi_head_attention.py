"""Checkers of notebook 04 · Multi-head attention: counting MHA/GQA parameters, KV-cache memory,
and which K/V head a query head reads (Ainslie et al. 2023, grouped-query attention)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib.attention import MultiHeadAttention, repeat_kv
from course_lib.attention import kv_cache_bytes as kv_cache_reference
from course_lib.checks._core import as_number, attempt, expect, expect_number, passed

__all__ = ["check_count_attention_parameters", "check_kv_cache_bytes", "check_kv_head_for"]


def check_count_attention_parameters(count_attention_parameters: Callable[..., int]) -> None:
    """``count_attention_parameters(d_model, n_heads, n_kv_heads, bias)`` of ``MultiHeadAttention``."""
    for args in ((64, 8, 8, True), (64, 8, 2, True), (64, 8, 1, False), (4096, 32, 8, False)):
        got = attempt(count_attention_parameters, *args)
        with torch.device("meta"):  # shapes only: no memory, no initialisation, no random numbers
            module = MultiHeadAttention(*args[:3], bias=args[3])
        want = sum(p.numel() for p in module.parameters())
        expect_number(f"count_attention_parameters{args}", got, want)
    passed("Q and output: d_model^2 each; K and V: d_model * n_kv_heads * head_dim each (+ biases).")


def check_kv_cache_bytes(kv_cache_bytes: Callable[..., int]) -> None:
    """``kv_cache_bytes(n_layers=, n_kv_heads=, head_dim=, seq_len=, bytes_per_value=)`` for a batch of 1.

    The function is called with keyword arguments, so both the exercise's
    ``kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value)`` and
    ``course_lib.attention.kv_cache_bytes`` (which also takes ``batch_size``) can be checked.
    """
    for n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value in (
        (32, 32, 128, 1, 2),
        (32, 8, 128, 4096, 2),
        (80, 8, 128, 1000, 2),
        (2, 1, 16, 7, 4),
    ):
        kwargs = {
            "n_layers": n_layers,
            "n_kv_heads": n_kv_heads,
            "head_dim": head_dim,
            "seq_len": seq_len,
            "bytes_per_value": bytes_per_value,
        }
        call = "kv_cache_bytes(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
        expect_number(call, attempt(kv_cache_bytes, **kwargs), kv_cache_reference(**kwargs))
    passed("K and V, for every layer, K/V head, channel of a head and token: 2*L*Hkv*D*T*bytes.")


def check_kv_head_for(kv_head_for: Callable[[int, int, int], int]) -> None:
    """``kv_head_for(j, n_heads, n_kv_heads)``: the K/V head that query head ``j`` reads."""
    for n_heads, n_kv_heads in ((8, 8), (8, 2), (8, 1), (6, 3)):
        probe = torch.arange(n_kv_heads).view(1, n_kv_heads, 1, 1)
        want = repeat_kv(probe, n_heads // n_kv_heads).flatten().tolist()
        got = [
            as_number(
                f"kv_head_for({j}, {n_heads}, {n_kv_heads})", attempt(kv_head_for, j, n_heads, n_kv_heads)
            )
            for j in range(n_heads)
        ]
        expect(got == want, f"K/V heads for {n_heads} query heads and {n_kv_heads} K/V heads", want, got)
    passed("contiguous groups, as in Llama: query head j reads K/V head j // (n_heads // n_kv_heads).")
