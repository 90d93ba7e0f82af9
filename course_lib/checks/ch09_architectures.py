"""Checkers of notebook 09 · Architectures of large models: the parameters of a decoder block from
its config, Llama's SwiGLU width (Touvron et al. 2023; the ``multiple_of`` and
``ffn_dim_multiplier`` of Meta's reference code), and Switch-style top-1 routing with an expert
capacity (Fedus et al. 2021, section 2.2).

The block count is compared with a ``TransformerBlock`` built on the ``meta`` device (shapes only,
nothing drawn from the random generator).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib.blocks import TransformerBlock
from course_lib.checks._core import (
    as_sequence,
    as_tensor,
    attempt,
    expect,
    expect_close,
    expect_equal,
    expect_number,
    passed,
    seeded_randn,
)
from course_lib.llama import SwiGLU

__all__ = ["check_block_parameters", "check_swiglu_width", "check_switch_routing"]


def _built_block_parameters(config: dict) -> int:
    """Parameters of the course's block for ``config``, built on the meta device."""
    c = config
    with torch.device("meta"):
        ffn = SwiGLU(c["d_model"], c["d_ff"]) if c["ffn"] == "swiglu" else None
        block = TransformerBlock(
            c["d_model"],
            c["n_heads"],
            c["d_ff"],
            n_kv_heads=c["n_kv_heads"],
            bias=c["bias"],
            norm=c["norm"],
            ffn=ffn,
        )
    return sum(p.numel() for p in block.parameters())


def check_block_parameters(block_parameters: Callable[[dict], int]) -> None:
    """``block_parameters(config) -> int``: the parameters of one Pre-norm decoder block."""
    configs = [  # GPT-2 small's block, then Llama-like ones with GQA and SwiGLU, then mixes
        {
            "d_model": 768,
            "n_heads": 12,
            "n_kv_heads": 12,
            "d_ff": 3072,
            "ffn": "mlp",
            "bias": True,
            "norm": "layer",
        },
        {
            "d_model": 64,
            "n_heads": 8,
            "n_kv_heads": 2,
            "d_ff": 172,
            "ffn": "swiglu",
            "bias": False,
            "norm": "rms",
        },
        {
            "d_model": 96,
            "n_heads": 6,
            "n_kv_heads": 1,
            "d_ff": 256,
            "ffn": "swiglu",
            "bias": False,
            "norm": "rms",
        },
        {
            "d_model": 48,
            "n_heads": 4,
            "n_kv_heads": 2,
            "d_ff": 100,
            "ffn": "mlp",
            "bias": True,
            "norm": "rms",
        },
        {
            "d_model": 32,
            "n_heads": 4,
            "n_kv_heads": 4,
            "d_ff": 64,
            "ffn": "mlp",
            "bias": False,
            "norm": "layer",
        },
    ]
    for config in configs:
        got = attempt(block_parameters, dict(config))
        expect_equal(f"block_parameters({config})", got, _built_block_parameters(config))
    passed(
        "Q and O are C x C, K and V only C x (H_kv D); the MLP has two C x d_ff matrices, SwiGLU "
        "three; LayerNorm has a weight and a bias, RMSNorm a weight; biases add one per output."
    )


def _swiglu_width(d_model: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    hidden = int(2 * 4 * d_model / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * math.ceil(hidden / multiple_of)


def check_swiglu_width(swiglu_width: Callable[..., int]) -> None:
    """``swiglu_width(d_model, multiple_of, ffn_dim_multiplier=None) -> int``: Llama's ``d_ff``."""
    cases = [  # Llama 2 7B, 13B, 70B, Llama 3 8B, and small ones
        (4096, 256, None, 11008),
        (5120, 256, None, 13824),
        (8192, 4096, 1.3, 28672),
        (4096, 1024, 1.3, 14336),
        (64, 32, None, 192),
        (300, 64, 1.5, 1216),
    ]
    for d_model, multiple_of, multiplier, published in cases:
        want = _swiglu_width(d_model, multiple_of, multiplier)
        assert want == published  # the reference reproduces the released configs
        what = f"swiglu_width({d_model}, {multiple_of}, ffn_dim_multiplier={multiplier})"
        got = attempt(swiglu_width, d_model, multiple_of, ffn_dim_multiplier=multiplier)
        expect_number(what, got, want, rtol=0)
    passed(
        "2/3 of 4C keeps the parameters of a 4C MLP; the multiplier scales it, and rounding UP to "
        "a multiple keeps the matrices friendly to the hardware (11008 for Llama 2 7B)."
    )


def _switch_route(logits: torch.Tensor, capacity: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    probs = torch.softmax(logits, dim=-1)  # (N, E)
    gate, expert = probs.max(dim=-1)  # (N,), (N,)
    one_hot = torch.nn.functional.one_hot(expert, logits.shape[-1])  # (N, E)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1  # place in its expert's queue
    return expert, gate, position < capacity


def check_switch_routing(switch_routing: Callable[..., tuple[torch.Tensor, ...]]) -> None:
    """``switch_routing(logits, capacity) -> (expert, gate, kept)``: top-1 routing of ``N`` tokens
    in order, each expert taking at most ``capacity`` of them."""
    names = ("expert", "gate", "kept")
    for N, E, capacity, seed in ((6, 3, 2, 1), (12, 4, 2, 2), (10, 2, 6, 3), (9, 5, 1, 4), (8, 4, 8, 5)):
        logits = 2 * seeded_randn(N, E, seed=900 + seed).float()
        what = f"switch_routing(<logits of shape ({N}, {E})>, capacity={capacity})"
        got = as_sequence(what, attempt(switch_routing, logits.clone(), capacity), names)
        want = _switch_route(logits, capacity)
        expert, gate, kept = (
            as_tensor(f"{what}: {name}", value) for name, value in zip(names, got, strict=True)
        )
        for name, value in (("expert", expert), ("gate", gate), ("kept", kept)):
            expect(tuple(value.shape) == (N,), f"{what}: {name}'s shape", (N,), tuple(value.shape))
        expect(torch.equal(expert.long(), want[0]), f"{what}: expert", want[0].tolist(), expert.tolist())
        expect_close(f"{what}: gate", gate, want[1], atol=1e-6)
        expect(torch.equal(kept.bool(), want[2]), f"{what}: kept", want[2].tolist(), kept.tolist())
    passed(
        "each token goes to its most probable expert with that probability as its gate; a running "
        "count per expert keeps the first `capacity` tokens in order and drops the rest."
    )
