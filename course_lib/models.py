"""Small language models built from the course's blocks (notebooks 05 and 06, and later).

``TinyLM`` is a decoder-only (causal) Transformer over token ids whose positional information and
normalization placement are chosen by its config, so that experiments change one thing at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validate import (
    check_heads,
    check_number,
    check_positive_int,
    check_probability,
    check_tensor,
    describe,
)
from course_lib.attention import KVCache, causal_mask
from course_lib.blocks import PLACEMENTS, TransformerBlock, deepnorm_constants
from course_lib.norms import NORMS, make_norm
from course_lib.positions import RotaryEmbedding, alibi_bias, sinusoidal_encoding

POSITIONS = ("none", "sinusoidal", "learned", "rope", "alibi")
# GPT-2's initialisation: weights and embeddings from N(0, 0.02) (Radford et al. 2019).
EMBEDDING_STD = 0.02


def init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation (Radford et al. 2019), for ``model.apply(init_weights)``: every
    ``nn.Linear`` and ``nn.Embedding`` weight from ``N(0, EMBEDDING_STD)``, zero biases. BERT
    (``initializer_range`` 0.02) and Llama (Hugging Face's ``LlamaPreTrainedModel``) use the same."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=EMBEDDING_STD)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


@dataclass(frozen=True)
class TinyLMConfig:
    vocab_size: int  # number of token ids
    d_model: int = 64  # width of the residual stream
    n_layers: int = 2  # Transformer blocks
    n_heads: int = 4  # query heads per attention layer
    n_kv_heads: int | None = None  # K/V heads (None: as many as query heads)
    d_ff: int = 256  # hidden width of the feed-forward network
    max_len: int = 512  # longest sequence (size of learned/sinusoidal/ALiBi tables)
    position: str = "learned"  # "none", "sinusoidal", "learned", "rope" or "alibi"
    rope_base: float = 10000.0  # RoPE base (raise it for "ABF")
    rope_scale: float = 1.0  # RoPE position interpolation factor (> 1 squeezes positions)
    placement: str = "pre"  # "post", "pre", "sandwich" or "deepnorm"
    norm: str = "layer"  # "layer" or "rms"
    dropout: float = 0.0  # dropout on attention weights and sublayer outputs

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layers", "d_ff", "max_len"):
            check_positive_int(getattr(self, name), name)
        check_heads(self.d_model, self.n_heads, self.n_kv_heads, rope=self.position == "rope")
        if not check_number(self.rope_base, "rope_base") > 1:
            raise ValueError(f"rope_base: expected a number > 1, got {self.rope_base!r}")
        if not check_number(self.rope_scale, "rope_scale") > 0:
            raise ValueError(f"rope_scale: expected a number > 0, got {self.rope_scale!r}")
        check_probability(self.dropout, "dropout")
        if self.norm not in NORMS:
            raise ValueError(f"norm: expected one of {tuple(NORMS)}, got {self.norm!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"position: expected one of {POSITIONS}, got {self.position!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement: expected one of {PLACEMENTS}, got {self.placement!r}")


class TinyLM(nn.Module):
    """Token embedding (+ absolute positions) -> ``n_layers`` blocks -> (final norm) -> logits.

    The sinusoidal table is scaled by ``EMBEDDING_STD``. Vaswani et al. (2017, section 3.4) multiply
    the embeddings by ``sqrt(d_model)``, which (with embeddings drawn from ``N(0, 1/d_model)``, as in
    their tensor2tensor code) gives tokens unit RMS next to a table of RMS ``1/sqrt(2)``. Our tokens
    are drawn from ``N(0, EMBEDDING_STD)`` (GPT-2), so we scale the table instead: the same 1 : 0.71
    ratio, and the residual stream starts at the same size for every position scheme (a learned
    table is drawn from ``N(0, EMBEDDING_STD)`` too). Unscaled, positions outweigh tokens ~35:1.
    """

    def __init__(self, config: TinyLMConfig) -> None:
        super().__init__()
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        if c.position == "learned":
            self.position_embedding = nn.Embedding(c.max_len, c.d_model)
        if c.position == "sinusoidal":
            table = EMBEDDING_STD * sinusoidal_encoding(c.max_len, c.d_model)
            self.register_buffer("sinusoidal", table, persistent=False)
        if c.position == "alibi":
            self.register_buffer("alibi", alibi_bias(c.n_heads, c.max_len), persistent=False)
        self.rope = (
            RotaryEmbedding(c.d_model // c.n_heads, c.rope_base, c.rope_scale)
            if c.position == "rope"
            else None
        )
        alpha, beta = deepnorm_constants(c.n_layers)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                c.d_ff,
                placement=c.placement,
                norm=c.norm,
                n_kv_heads=c.n_kv_heads,
                dropout=c.dropout,
                deepnorm_alpha=alpha if c.placement == "deepnorm" else 1.0,
            )
            for _ in range(c.n_layers)
        )
        # Post-LN and DeepNorm end on a norm already; Pre-LN and Sandwich-LN need a final one.
        self.final_norm = (
            make_norm(c.norm, c.d_model) if c.placement in ("pre", "sandwich") else nn.Identity()
        )
        self.head = nn.Linear(c.d_model, c.vocab_size)
        self.apply(init_weights)
        if c.placement == "deepnorm":
            for block in self.blocks:
                block.init_deepnorm(beta)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        caches: list[KVCache] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, T, vocab)`` for token ids ``idx (B, T)``, and the mean cross-entropy with
        ``targets (B, T)`` when they are given.

        ``caches``: one ``KVCache`` per block, for generating step by step. The new tokens continue
        after the ``offset = caches[0].length`` positions already cached: they get the positions
        ``offset .. offset + T - 1`` and attend to the cached keys and to each other causally. The
        caches grow by ``T`` positions.
        """
        check_tensor(idx, "idx", ndim=2, dtypes=(torch.int64, torch.int32))
        B, T = idx.shape
        c = self.config
        offset = self._cache_offset(caches)
        if c.position in ("learned", "sinusoidal", "alibi") and c.max_len < offset + T:
            raise ValueError(
                f"idx: {c.position} positions go up to max_len={c.max_len}, got {T} tokens"
                + (f" after {offset} cached ones" if offset else "")
            )
        x = self.token_embedding(idx)  # (B, T, C)
        if c.position == "learned":
            x = x + self.position_embedding(torch.arange(offset, offset + T, device=idx.device))
        elif c.position == "sinusoidal":
            x = x + self.sinusoidal[offset : offset + T]
        # (H, T, offset + T): the rows of the new queries, the columns of every key so far
        score_bias = self.alibi[:, offset : offset + T, : offset + T] if c.position == "alibi" else None
        if offset == 0:
            mask = causal_mask(T, device=idx.device)
        else:  # query i sits at position offset + i: it may attend keys j <= offset + i
            mask = torch.ones(T, offset + T, dtype=torch.bool, device=idx.device).tril(diagonal=offset)
        for i, block in enumerate(self.blocks):
            cache = None if caches is None else caches[i]
            x = block(x, mask, rotary=self.rope, score_bias=score_bias, cache=cache)
        logits = self.head(self.final_norm(x))  # (B, T, vocab)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def _cache_offset(self, caches: list[KVCache] | None) -> int:
        """The number of positions cached so far (0 without caches); checks one cache per block."""
        if caches is None:
            return 0
        if not isinstance(caches, (list, tuple)) or not all(isinstance(x, KVCache) for x in caches):
            got = (
                [type(x).__name__ for x in caches] if isinstance(caches, (list, tuple)) else describe(caches)
            )
            raise TypeError(f"caches: expected a list of KVCache, one per block, got {got}")
        if len(caches) != len(self.blocks):
            raise ValueError(
                f"caches: expected one KVCache per block ({len(self.blocks)}), got {len(caches)}"
            )
        lengths = {cache.length for cache in caches}
        if len(lengths) > 1:
            raise ValueError(f"caches: expected caches of one length, got lengths {sorted(lengths)}")
        return lengths.pop()


def lm_loss(model: TinyLM, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The loss function for ``course_lib.train.train``: batch ``(x, y)`` of token ids."""
    return model(*batch)[1]
