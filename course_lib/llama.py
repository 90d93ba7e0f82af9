"""A Llama-style decoder: the modern block (notebook 09).

Touvron et al. 2023, "Llama 2: open foundation and fine-tuned chat models"; the pieces it puts
together: RMSNorm before each sublayer (Zhang and Sennrich 2019, "Root mean square layer
normalization"), rotary positions in the rotate-half convention (Su et al. 2021, "RoFormer"),
grouped-query attention (Ainslie et al. 2023, "GQA"), no biases, and a SwiGLU feed-forward
network (Shazeer 2020, "GLU variants improve Transformer").

``load_hf_llama_state_dict`` is the one place that knows Hugging Face's ``LlamaForCausalLM`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validate import check_heads, check_number, check_positive_int, check_tensor
from course_lib.attention import causal_mask
from course_lib.blocks import TransformerBlock
from course_lib.models import init_weights
from course_lib.norms import RMSNorm
from course_lib.positions import RotaryEmbedding


class GatedFeedForward(nn.Module):
    """``down(act(gate(x)) * up(x))``, no biases: a GLU variant (Shazeer 2020, equation 6).

    ``act`` is SiLU for SwiGLU (Llama) and GELU for GeGLU. Three ``(C, d_ff)`` matrices instead of
    two, so Llama takes ``d_ff`` about ``8/3 * C`` to keep the parameter count of a ``4 * C`` MLP.
    Subclasses set ``activation``.
    """

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(d_ff, "d_ff")
        self.gate = nn.Linear(d_model, d_ff, bias=False)
        self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C)`` -> ``(B, T, C)``."""
        return self.down(self.activation(self.gate(x)) * self.up(x))  # (B, T, d_ff) -> (B, T, C)


class SwiGLU(GatedFeedForward):
    """``down(silu(gate(x)) * up(x))``: Llama's feed-forward network."""

    activation = staticmethod(F.silu)


class GeGLU(GatedFeedForward):
    """``down(gelu(gate(x)) * up(x))``: the GELU-gated variant (Shazeer 2020; Gemma)."""

    activation = staticmethod(F.gelu)


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int = 32000  # number of token ids (Llama 2's SentencePiece vocabulary)
    d_model: int = 4096  # width of the residual stream (HF: hidden_size)
    n_layers: int = 32  # Transformer blocks (HF: num_hidden_layers)
    n_heads: int = 32  # query heads (HF: num_attention_heads)
    n_kv_heads: int | None = None  # K/V heads, None: as many as query heads (HF: num_key_value_heads)
    d_ff: int = 11008  # hidden width of the SwiGLU network (HF: intermediate_size)
    max_len: int = 4096  # longest sequence it was trained on (RoPE has no table to outgrow)
    rope_base: float = 10000.0  # RoPE base (HF: rope_theta)
    norm_eps: float = 1e-5  # epsilon of every RMSNorm (HF: rms_norm_eps)
    tie_embeddings: bool = False  # head shares the token embedding's weight (Llama 2: no)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layers", "d_ff", "max_len"):
            check_positive_int(getattr(self, name), name)
        check_heads(self.d_model, self.n_heads, self.n_kv_heads, rope=True)
        if not check_number(self.rope_base, "rope_base") > 1:
            raise ValueError(f"rope_base: expected a number > 1, got {self.rope_base!r}")
        if not check_number(self.norm_eps, "norm_eps") > 0:
            raise ValueError(f"norm_eps: expected a number > 0, got {self.norm_eps!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"tie_embeddings: expected a bool, got {self.tie_embeddings!r}")

    @property
    def kv_heads(self) -> int:
        """``n_kv_heads``, or ``n_heads`` (plain multi-head attention) when it is ``None``."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads


class Llama(nn.Module):
    """Token embedding -> ``n_layers`` Pre-RMSNorm blocks (RoPE, GQA, SwiGLU) -> RMSNorm -> head."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_base)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                c.d_ff,
                placement="pre",
                norm="rms",
                n_kv_heads=c.kv_heads,
                bias=False,
                ffn=SwiGLU(c.d_model, c.d_ff),
                norm_eps=c.norm_eps,
            )
            for _ in range(c.n_layers)
        )
        self.final_norm = RMSNorm(c.d_model, eps=c.norm_eps)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.head.weight = self.token_embedding.weight
        self.apply(init_weights)  # N(0, 0.02), as HF's LlamaPreTrainedModel

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, T, vocab)`` for token ids ``idx (B, T)``, and the mean cross-entropy with
        ``targets (B, T)`` (``-100`` ignored) when they are given."""
        check_tensor(idx, "idx", ndim=2, dtypes=(torch.int64, torch.int32))
        B, T = idx.shape
        x = self.token_embedding(idx)  # (B, T, C)
        mask = causal_mask(T, device=idx.device)  # (T, T)
        for block in self.blocks:
            x = block(x, mask, rotary=self.rope)
        logits = self.head(self.final_norm(x))  # (B, T, C) -> (B, T, vocab)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def load_hf_llama_state_dict(model: Llama, hf_state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy the weights of a Hugging Face ``LlamaForCausalLM`` into ``model``.

    The projections have ``nn.Linear``'s layout already; only the names differ (``o_proj`` is our
    ``out_proj``, ``input_layernorm`` and ``post_attention_layernorm`` are ``norm1`` and ``norm2``).
    Raises ``ValueError`` if a weight is missing or left over (``lm_head.weight`` may be absent
    when the embeddings are tied).
    """
    c = model.config
    theirs = dict(hf_state_dict)
    if c.tie_embeddings:
        theirs.pop("lm_head.weight", None)

    def take(name: str) -> torch.Tensor:
        if name not in theirs:
            raise ValueError(f"hf_state_dict: expected a weight {name} for a {c.n_layers}-layer Llama")
        return theirs.pop(name)

    ours = {
        "token_embedding.weight": take("model.embed_tokens.weight"),
        "final_norm.weight": take("model.norm.weight"),
    }
    ours["head.weight"] = ours["token_embedding.weight"] if c.tie_embeddings else take("lm_head.weight")
    names = {
        "self_attn.q_proj": "attn.q_proj",
        "self_attn.k_proj": "attn.k_proj",
        "self_attn.v_proj": "attn.v_proj",
        "self_attn.o_proj": "attn.out_proj",
        "mlp.gate_proj": "ffn.gate",
        "mlp.up_proj": "ffn.up",
        "mlp.down_proj": "ffn.down",
        "input_layernorm": "norm1",
        "post_attention_layernorm": "norm2",
    }
    for i in range(c.n_layers):
        for theirs_name, ours_name in names.items():
            ours[f"blocks.{i}.{ours_name}.weight"] = take(f"model.layers.{i}.{theirs_name}.weight")
    if theirs:
        raise ValueError(
            f"hf_state_dict: weights with no place in a {c.n_layers}-layer Llama: {sorted(theirs)}"
        )
    model.load_state_dict(ours, strict=True)
