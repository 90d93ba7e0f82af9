"""GPT-2: a decoder-only Transformer trained to predict the next token (notebook 11).

Radford et al. 2019, "Language models are unsupervised multitask learners" (GPT-2): token
embeddings plus learned absolute positions, Pre-LN blocks (a LayerNorm before each sublayer, one
more after the last block), GELU with the tanh approximation, and an output head that shares its
weight with the token embedding (Press and Wolf 2017, "Using the output embedding to improve
language models").

``load_hf_gpt2_state_dict`` is the one place that knows Hugging Face's names (``c_attn`` holds
Q, K and V packed together; ``Conv1D`` stores weights transposed, ``(in, out)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validate import check_heads, check_positive_int, check_probability, check_tensor
from course_lib.attention import causal_mask
from course_lib.blocks import TransformerBlock
from course_lib.models import EMBEDDING_STD, init_weights
from course_lib.norms import LayerNorm


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 50257  # number of token ids (GPT-2's byte-level BPE)
    n_positions: int = 1024  # longest sequence (rows of the learned position table)
    d_model: int = 768  # width of the residual stream (HF: n_embd)
    n_layers: int = 12  # Transformer blocks (HF: n_layer)
    n_heads: int = 12  # attention heads (HF: n_head)
    d_ff: int | None = None  # hidden width of the feed-forward network (None: 4 * d_model)
    layer_norm_eps: float = 1e-5  # epsilon of every LayerNorm (HF: layer_norm_epsilon)
    dropout: float = 0.0  # dropout on embeddings, attention weights and sublayer outputs

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_positions", "n_layers"):
            check_positive_int(getattr(self, name), name)
        if self.d_ff is not None:
            check_positive_int(self.d_ff, "d_ff")
        check_heads(self.d_model, self.n_heads)
        check_probability(self.dropout, "dropout")

    @property
    def ffn_width(self) -> int:
        """``d_ff``, or ``4 * d_model`` as in GPT-2 when it is ``None``."""
        return 4 * self.d_model if self.d_ff is None else self.d_ff


class GPT(nn.Module):
    """Token + position embeddings -> ``n_layers`` Pre-LN blocks -> LayerNorm -> tied head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = nn.Embedding(c.n_positions, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                c.ffn_width,
                placement="pre",
                norm="layer",
                dropout=c.dropout,
                activation="gelu_tanh",
                norm_eps=c.layer_norm_eps,
            )
            for _ in range(c.n_layers)
        )
        self.final_norm = LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # tied: one (vocab, C) matrix, counted once
        self.apply(init_weights)
        # GPT-2 section 2.3: residual projections scaled by 1/sqrt(N), N = 2 * n_layers residual
        # additions (the value in Hugging Face's and nanoGPT's code: std 0.02 / sqrt(2 * n_layers)).
        for block in self.blocks:
            for layer in (block.attn.out_proj, block.ffn.down):
                nn.init.normal_(layer.weight, mean=0.0, std=EMBEDDING_STD / math.sqrt(2 * c.n_layers))

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, T, vocab)`` for token ids ``idx (B, T)``, and the mean cross-entropy with
        ``targets (B, T)`` (``-100`` ignored) when they are given."""
        check_tensor(idx, "idx", ndim=2, dtypes=(torch.int64, torch.int32))
        B, T = idx.shape
        if self.config.n_positions < T:
            raise ValueError(
                f"idx: GPT-2's positions go up to n_positions={self.config.n_positions}, got {T}"
            )
        positions = torch.arange(T, device=idx.device)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))  # (B, T, C)
        mask = causal_mask(T, device=idx.device)  # (T, T)
        for block in self.blocks:
            x = block(x, mask)
        logits = self.head(self.final_norm(x))  # (B, T, C) -> (B, T, vocab)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def load_hf_gpt2_state_dict(model: GPT, hf_state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy the weights of a Hugging Face ``GPT2LMHeadModel`` (or ``GPT2Model``) into ``model``.

    Hugging Face's ``Conv1D`` computes ``x @ W + b`` with ``W`` of shape ``(in, out)``, the
    transpose of ``nn.Linear``'s ``(out, in)``; ``c_attn`` packs ``[W_q | W_k | W_v]`` along ``out``.
    The head is tied to ``wte`` and needs nothing of its own. Raises ``ValueError`` if a weight is
    missing or left over (the causal-mask buffers ``attn.bias`` / ``attn.masked_bias`` of older
    versions are ignored).
    """
    c = model.config
    prefix = "transformer." if any(k.startswith("transformer.") for k in hf_state_dict) else ""
    theirs = {
        k.removeprefix(prefix): v
        for k, v in hf_state_dict.items()
        if k != "lm_head.weight" and not k.endswith((".attn.bias", ".attn.masked_bias"))
    }

    def take(name: str) -> torch.Tensor:
        if name not in theirs:
            raise ValueError(f"hf_state_dict: expected a weight {prefix}{name} for a {c.n_layers}-layer GPT")
        return theirs.pop(name)

    ours: dict[str, torch.Tensor] = {
        "token_embedding.weight": take("wte.weight"),
        "position_embedding.weight": take("wpe.weight"),
        "final_norm.weight": take("ln_f.weight"),
        "final_norm.bias": take("ln_f.bias"),
    }
    for i in range(c.n_layers):
        h, b = f"h.{i}.", f"blocks.{i}."
        q, k, v = take(h + "attn.c_attn.weight").t().split(c.d_model, dim=0)  # (3C, C) -> 3 x (C, C)
        q_bias, k_bias, v_bias = take(h + "attn.c_attn.bias").split(c.d_model)
        for name, weight, bias in (("q_proj", q, q_bias), ("k_proj", k, k_bias), ("v_proj", v, v_bias)):
            ours[f"{b}attn.{name}.weight"], ours[f"{b}attn.{name}.bias"] = weight, bias
        for theirs_name, ours_name in (
            ("attn.c_proj", "attn.out_proj"),
            ("mlp.c_fc", "ffn.up"),
            ("mlp.c_proj", "ffn.down"),
        ):
            ours[f"{b}{ours_name}.weight"] = take(f"{h}{theirs_name}.weight").t()  # (in, out) -> (out, in)
            ours[f"{b}{ours_name}.bias"] = take(f"{h}{theirs_name}.bias")
        for theirs_name, ours_name in (("ln_1", "norm1"), ("ln_2", "norm2")):
            for p in ("weight", "bias"):
                ours[f"{b}{ours_name}.{p}"] = take(f"{h}{theirs_name}.{p}")
    if theirs:
        raise ValueError(
            f"hf_state_dict: weights with no place in a {c.n_layers}-layer GPT: {sorted(theirs)}"
        )
    ours["head.weight"] = ours["token_embedding.weight"]
    model.load_state_dict(ours, strict=True)
