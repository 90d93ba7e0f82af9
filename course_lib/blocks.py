"""The Transformer block, with the four placements of normalization (notebook 06).

- Post-LN (Vaswani et al. 2017): ``x = LN(x + F(x))``.
- Pre-LN (Xiong et al. 2020, "On layer normalization in the Transformer architecture"):
  ``x = x + F(LN(x))``, and one more LN after the last block.
- Sandwich-LN (Ding et al. 2021, "CogView"): ``x = x + LN(F(LN(x)))``.
- DeepNorm (Wang et al. 2022, "DeepNet"): ``x = LN(alpha * x + F(x))``, with the FFN, value and
  output projections initialised with gain ``beta``.

``F`` is attention for the first sublayer and the feed-forward network for the second.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib._validate import check_positive_int
from course_lib.attention import KVCache, MultiHeadAttention, Rotary
from course_lib.norms import make_norm

PLACEMENTS = ("post", "pre", "sandwich", "deepnorm")


def deepnorm_constants(n_layers: int) -> tuple[float, float]:
    """``(alpha, beta)`` of DeepNorm for an encoder-only or decoder-only stack of ``n_layers``:
    ``alpha = (2N)^(1/4)``, ``beta = (8N)^(-1/4)`` (Wang et al. 2022, table 1)."""
    check_positive_int(n_layers, "n_layers")
    return (2 * n_layers) ** 0.25, (8 * n_layers) ** -0.25


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU with the tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, as in
    GPT-2's code (Hugging Face calls it ``"gelu_new"``)."""
    return nn.functional.gelu(x, approximate="tanh")


# ReLU in Vaswani et al. 2017 (section 3.3); GELU (Hendrycks and Gimpel 2016) in BERT (exact, erf)
# and GPT-2 (tanh approximation).
ACTIVATIONS = {"gelu": nn.functional.gelu, "gelu_tanh": gelu_tanh, "relu": nn.functional.relu}


class FeedForward(nn.Module):
    """Position-wise ``Linear(d_model, d_ff) -> activation -> Linear(d_ff, d_model)``.

    ``activation`` is ``"gelu"`` (default, exact), ``"gelu_tanh"`` (GPT-2's) or ``"relu"`` (the
    original Transformer's).
    """

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = True, *, activation: str = "gelu"
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C)`` -> ``(B, T, C)``."""
        return self.dropout(self.down(ACTIVATIONS[self.activation](self.up(x))))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


class TransformerBlock(nn.Module):
    """Attention and feed-forward sublayers with residuals, normalized as ``placement`` says.

    ``activation`` goes to the ``FeedForward``; ``ffn`` replaces it by another module mapping
    ``(B, T, C) -> (B, T, C)`` (Llama's ``SwiGLU``); ``norm_eps`` defaults to the norm's own.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        placement: str = "pre",
        norm: str = "layer",
        n_kv_heads: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        deepnorm_alpha: float = 1.0,
        activation: str = "gelu",
        ffn: nn.Module | None = None,
        norm_eps: float | None = None,
    ) -> None:
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement: expected one of {PLACEMENTS}, got {placement!r}")
        self.placement, self.alpha = placement, deepnorm_alpha
        self.attn = MultiHeadAttention(d_model, n_heads, n_kv_heads, bias=bias, dropout=dropout)
        self.ffn = (
            FeedForward(d_model, d_ff, dropout, bias=bias, activation=activation) if ffn is None else ffn
        )
        self.resid_dropout = nn.Dropout(dropout)
        self.norm1, self.norm2 = make_norm(norm, d_model, norm_eps), make_norm(norm, d_model, norm_eps)
        if placement == "sandwich":  # a second norm on each sublayer's output
            self.norm1_out = make_norm(norm, d_model, norm_eps)
            self.norm2_out = make_norm(norm, d_model, norm_eps)

    def init_deepnorm(self, beta: float) -> None:
        """DeepNorm's initialisation: Xavier-normal, with gain ``beta`` on the FFN, V and output."""
        for layer in (self.attn.q_proj, self.attn.k_proj):
            nn.init.xavier_normal_(layer.weight)
        for layer in (self.attn.v_proj, self.attn.out_proj, self.ffn.up, self.ffn.down):
            nn.init.xavier_normal_(layer.weight, gain=beta)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        rotary: Rotary | None = None,
        score_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """``x (B, T, C)`` -> ``(B, T, C)``; the keyword arguments go to the attention sublayer."""

        def attend(h: torch.Tensor) -> torch.Tensor:
            out, _ = self.attn(h, mask=mask, rotary=rotary, score_bias=score_bias, cache=cache)
            return self.resid_dropout(out)

        shortcut = x
        if self.placement == "post":
            x = self.norm1(shortcut + attend(x))
            shortcut = x
            x = self.norm2(shortcut + self.ffn(x))
        elif self.placement == "pre":
            x = shortcut + attend(self.norm1(x))
            shortcut = x
            x = shortcut + self.ffn(self.norm2(x))
        elif self.placement == "sandwich":
            x = shortcut + self.norm1_out(attend(self.norm1(x)))
            shortcut = x
            x = shortcut + self.norm2_out(self.ffn(self.norm2(x)))
        else:  # deepnorm
            x = self.norm1(self.alpha * shortcut + attend(x))
            shortcut = x
            x = self.norm2(self.alpha * shortcut + self.ffn(x))
        return x


class ParallelBlock(nn.Module):
    """Attention and feed-forward side by side on the same normalized input (GPT-J, PaLM):
    ``x + Attn(LN(x)) + FFN(LN(x))``.

    Wang and Komatsuzaki 2021 (GPT-J) and Chowdhery et al. 2022 (PaLM, section 2, "parallel
    layers") share one norm; ``shared_norm=False`` gives each sublayer its own, as GPT-NeoX does.
    The serial Pre-LN block feeds the attention's output into the FFN's norm; here both read
    ``x``, so their input projections (``W_q``, ``W_k``, ``W_v`` and the FFN's ``up``) can run as
    one matrix product. ``ffn`` replaces the ``FeedForward`` as in ``TransformerBlock``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        norm: str = "layer",
        shared_norm: bool = True,
        n_kv_heads: int | None = None,
        bias: bool = True,
        activation: str = "gelu",
        ffn: nn.Module | None = None,
        norm_eps: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(shared_norm, bool):
            raise TypeError(f"shared_norm: expected a bool, got {shared_norm!r}")
        self.attn = MultiHeadAttention(d_model, n_heads, n_kv_heads, bias=bias)
        self.ffn = FeedForward(d_model, d_ff, bias=bias, activation=activation) if ffn is None else ffn
        self.norm1 = make_norm(norm, d_model, norm_eps)
        self.norm2 = self.norm1 if shared_norm else make_norm(norm, d_model, norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        rotary: Rotary | None = None,
        score_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """``x (B, T, C)`` -> ``(B, T, C)``; the keyword arguments go to the attention sublayer."""
        h = self.norm1(x)
        g = h if self.norm2 is self.norm1 else self.norm2(x)  # a shared norm runs once
        attended, _ = self.attn(h, mask=mask, rotary=rotary, score_bias=score_bias, cache=cache)
        return x + attended + self.ffn(g)
