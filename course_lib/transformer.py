"""The encoder-decoder Transformer (notebook 07), with greedy decoding and beam search.

Vaswani et al. 2017, "Attention is all you need". The encoder reads the whole source with
self-attention (padding masked); the decoder reads the target so far with *masked* (causal)
self-attention and looks at the encoder's output, the *memory*, with *cross-attention*: its
queries come from the target, its keys and values from the source. Each sublayer has a residual
connection and a LayerNorm, after the sum (Post-LN, the paper's) or before the sublayer (Pre-LN,
Xiong et al. 2020, which then needs one more LayerNorm at the end of each stack).

Shapes: ``B`` batch, ``S`` source positions, ``T`` target positions, ``C = d_model``, ``H`` heads,
``V`` vocabulary, ``L`` layers. Masks are boolean with ``True`` = may attend, as everywhere in the
course: source padding masks are ``(B, 1, 1, S)`` (``attention.padding_mask``), the decoder's
self-attention mask is ``attention.causal_mask(T)``.

``to_torch_transformer`` copies a model into ``torch.nn.Transformer``, so the two can be shown
equal; ``greedy_decode``, ``beam_search`` and ``sequence_log_prob`` generate and score outputs
(without a KV cache: each step re-runs the decoder on the whole prefix; notebook 08 caches).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from course_lib._validate import (
    check_heads,
    check_int,
    check_number,
    check_positive_int,
    check_probability,
    check_tensor,
)
from course_lib.attention import MultiHeadAttention, causal_mask
from course_lib.blocks import ACTIVATIONS, FeedForward
from course_lib.norms import LayerNorm
from course_lib.positions import sinusoidal_encoding

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PLACEMENTS = ("post", "pre")
IDS = (torch.int64, torch.int32)


def _check_placement(placement: str) -> str:
    if placement not in PLACEMENTS:
        raise ValueError(f"placement: expected one of {PLACEMENTS}, got {placement!r}")
    return placement


class EncoderLayer(nn.Module):
    """Self-attention over the source, then a feed-forward network; residuals and LayerNorms."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        placement: str = "post",
        dropout: float = 0.0,
        activation: str = "relu",
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.placement = _check_placement(placement)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation=activation)
        self.resid_dropout = nn.Dropout(dropout)
        eps = check_number(norm_eps, "norm_eps")  # 1e-5 as PyTorch's; BERT uses 1e-12
        self.norm1, self.norm2 = LayerNorm(d_model, eps=eps), LayerNorm(d_model, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, S, C)`` -> ``(B, S, C)``; ``mask`` is the source padding mask ``(B, 1, 1, S)``."""
        return self.forward_with_weights(x, mask)[0]

    def forward_with_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, *, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward``, and the self-attention weights ``(B, H, S, S)`` if ``need_weights`` (or ``None``)."""

        def attend(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            out, weights = self.self_attn(h, mask=mask, need_weights=need_weights)
            return self.resid_dropout(out), weights

        shortcut = x
        if self.placement == "post":
            out, weights = attend(x)
            x = self.norm1(shortcut + out)
            shortcut = x
            x = self.norm2(shortcut + self.ffn(x))
        else:  # pre
            out, weights = attend(self.norm1(x))
            x = shortcut + out
            shortcut = x
            x = shortcut + self.ffn(self.norm2(x))
        return x, weights


class DecoderLayer(nn.Module):
    """Masked self-attention over the target, cross-attention to the memory, a feed-forward network."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        placement: str = "post",
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.placement = _check_placement(placement)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation=activation)
        self.resid_dropout = nn.Dropout(dropout)
        self.norm1, self.norm2, self.norm3 = LayerNorm(d_model), LayerNorm(d_model), LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One decoder layer.

        Args:
            x: the target so far ``(B, T, C)``.
            memory: the encoder's output ``(B, S, C)``.
            self_mask: for the self-attention, usually ``causal_mask(T)`` ``(T, T)``.
            memory_mask: for the cross-attention, the source padding mask ``(B, 1, 1, S)``.
            need_weights: also return the cross-attention weights.

        Returns:
            ``x`` of shape ``(B, T, C)`` and the cross-attention weights ``(B, H, T, S)`` (or ``None``).
        """

        def attend(h: torch.Tensor) -> torch.Tensor:
            return self.resid_dropout(self.self_attn(h, mask=self_mask)[0])

        def cross_attend(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            out, weights = self.cross_attn(h, context=memory, mask=memory_mask, need_weights=need_weights)
            return self.resid_dropout(out), weights

        shortcut = x
        if self.placement == "post":
            x = self.norm1(shortcut + attend(x))
            shortcut = x
            out, weights = cross_attend(x)
            x = self.norm2(shortcut + out)
            shortcut = x
            x = self.norm3(shortcut + self.ffn(x))
        else:  # pre
            x = shortcut + attend(self.norm1(x))
            shortcut = x
            out, weights = cross_attend(self.norm2(x))
            x = shortcut + out
            shortcut = x
            x = shortcut + self.ffn(self.norm3(x))
        return x, weights


@dataclass(frozen=True)
class Seq2SeqConfig:
    src_vocab_size: int  # number of source token ids
    tgt_vocab_size: int  # number of target token ids (the same as the source's for a shared vocabulary)
    d_model: int = 64  # width of the residual stream (even: the sinusoidal table pairs dimensions)
    n_heads: int = 4  # attention heads in every attention layer
    n_encoder_layers: int = 2  # encoder layers (6 in the paper)
    n_decoder_layers: int = 2  # decoder layers (6 in the paper)
    d_ff: int = 256  # hidden width of the feed-forward networks (4 * d_model in the paper)
    max_len: int = 64  # longest source or target sequence (size of the sinusoidal table)
    placement: str = "post"  # "post" (the paper's Post-LN) or "pre" (Pre-LN, with final norms)
    dropout: float = 0.0  # on embeddings + positions, attention weights and sublayer outputs
    tie_weights: bool = False  # the output projection shares the target embedding's weight
    activation: str = "relu"  # of the feed-forward networks: "relu" (the paper's) or "gelu"

    def __post_init__(self) -> None:
        for name in (
            "src_vocab_size",
            "tgt_vocab_size",
            "n_encoder_layers",
            "n_decoder_layers",
            "d_ff",
            "max_len",
        ):
            check_positive_int(getattr(self, name), name)
        check_heads(self.d_model, self.n_heads)
        if self.d_model % 2:
            raise ValueError(
                f"d_model: expected an even number (sines and cosines pair up), got {self.d_model}"
            )
        _check_placement(self.placement)
        check_probability(self.dropout, "dropout")
        if not isinstance(self.tie_weights, bool):
            raise TypeError(f"tie_weights: expected a bool, got {type(self.tie_weights).__name__}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {tuple(ACTIVATIONS)}, got {self.activation!r}")


class Seq2SeqTransformer(nn.Module):
    """Embeddings (times ``sqrt(d_model)``) + sinusoidal positions -> encoder -> decoder -> logits.

    Vaswani et al. (2017) section 3.4 multiply the embeddings by ``sqrt(d_model)``; we draw them
    from ``N(0, 1/d_model)`` (as their tensor2tensor code does), so a scaled token has RMS 1 next
    to a position vector of RMS ``1/sqrt(2)``. The linear layers are Xavier-uniform, as in
    ``torch.nn.Transformer``. With ``placement="pre"`` each stack ends with a LayerNorm
    (``encoder_norm``, ``decoder_norm``); with ``"post"`` the last layer already ends on one.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config: expected a Seq2SeqConfig, got {type(config).__name__}")
        self.config = c = config
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.register_buffer("positions", sinusoidal_encoding(c.max_len, c.d_model), persistent=False)
        self.embedding_dropout = nn.Dropout(c.dropout)
        layer_args = (c.d_model, c.n_heads, c.d_ff)
        layer_kwargs = {"placement": c.placement, "dropout": c.dropout, "activation": c.activation}
        self.encoder = nn.ModuleList(
            EncoderLayer(*layer_args, **layer_kwargs) for _ in range(c.n_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(*layer_args, **layer_kwargs) for _ in range(c.n_decoder_layers)
        )
        final_norm = c.placement == "pre"
        self.encoder_norm = LayerNorm(c.d_model) if final_norm else nn.Identity()
        self.decoder_norm = LayerNorm(c.d_model) if final_norm else nn.Identity()
        self.head = nn.Linear(c.d_model, c.tgt_vocab_size)
        self.apply(self._init_weights)
        if c.tie_weights:  # one tensor under two names: its gradient sums both uses
            self.head.weight = self.tgt_embedding.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):  # Glorot and Bengio 2010, as nn.Transformer's _reset_parameters
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding):  # unit RMS once scaled by sqrt(d_model) (tensor2tensor)
            nn.init.normal_(module.weight, mean=0.0, std=module.embedding_dim**-0.5)

    def _embed(self, ids: torch.Tensor, embedding: nn.Embedding, name: str) -> torch.Tensor:
        check_tensor(ids, name, ndim=2, dtypes=IDS)
        n = ids.shape[1]
        if not 0 < n <= self.config.max_len:
            raise ValueError(f"{name}: expected 1..max_len={self.config.max_len} positions, got {n}")
        x = embedding(ids) * math.sqrt(self.config.d_model) + self.positions[:n]  # (B, n, C)
        return self.embedding_dropout(x)

    def embed_source(self, src: torch.Tensor) -> torch.Tensor:
        """The encoder's input ``(B, S, C)`` for source ids ``src (B, S)``."""
        return self._embed(src, self.src_embedding, "src")

    def embed_target(self, tgt_in: torch.Tensor) -> torch.Tensor:
        """The decoder's input ``(B, T, C)`` for target ids ``tgt_in (B, T)`` (BOS first)."""
        return self._embed(tgt_in, self.tgt_embedding, "tgt_in")

    @staticmethod
    def _check_pad_mask(mask: torch.Tensor | None, B: int, S: int) -> None:
        if mask is None:
            return
        check_tensor(mask, "src_pad_mask", dtypes=(torch.bool,))
        if tuple(mask.shape) != (B, 1, 1, S):
            raise ValueError(
                f"src_pad_mask: expected shape (B, 1, 1, S) = ({B}, 1, 1, {S}) (attention.padding_mask), "
                f"got {tuple(mask.shape)}"
            )

    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The memory ``(B, S, C)`` for source ids ``src (B, S)``.

        ``src_pad_mask`` ``(B, 1, 1, S)``: ``True`` on real tokens; padded keys are ignored.
        """
        x = self.embed_source(src)  # (B, S, C)
        self._check_pad_mask(src_pad_mask, *src.shape)
        for layer in self.encoder:
            x = layer(x, src_pad_mask)
        return self.encoder_norm(x)

    def decode_states(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_pad_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """The decoder's output before the projection, and (if asked) its cross-attention weights.

        Args:
            tgt_in: target ids ``(B, T)``, BOS first; position ``t`` sees positions ``<= t``.
            memory: the encoder's output ``(B, S, C)``.
            src_pad_mask: the source padding mask ``(B, 1, 1, S)`` used to encode ``memory``.
            need_weights: also return the cross-attention weights.

        Returns:
            ``(B, T, C)``, and a list with one ``(B, H, T, S)`` tensor per decoder layer (or ``None``).
        """
        x = self.embed_target(tgt_in)  # (B, T, C)
        check_tensor(memory, "memory", ndim=3)
        B, T = tgt_in.shape
        if memory.shape[0] != B or memory.shape[2] != self.config.d_model:
            raise ValueError(
                f"memory: expected shape (B, S, C) = ({B}, S, {self.config.d_model}), "
                f"got {tuple(memory.shape)}"
            )
        self._check_pad_mask(src_pad_mask, B, memory.shape[1])
        self_mask = causal_mask(T, device=tgt_in.device)  # (T, T)
        all_weights = []
        for layer in self.decoder:
            x, weights = layer(x, memory, self_mask, src_pad_mask, need_weights=need_weights)
            all_weights.append(weights)
        return self.decoder_norm(x), (all_weights if need_weights else None)

    def decode(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, T, V)`` for the next target token at every position of ``tgt_in (B, T)``."""
        return self.head(self.decode_states(tgt_in, memory, src_pad_mask)[0])

    def forward(
        self,
        src: torch.Tensor,
        tgt_in: torch.Tensor,
        src_pad_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Teacher forcing: logits ``(B, T, V)`` for ``src (B, S)`` and ``tgt_in (B, T)``.

        Returns the logits and, with ``need_weights=True``, the decoder's cross-attention weights,
        one ``(B, H, T, S)`` tensor per layer (else ``None``).
        """
        memory = self.encode(src, src_pad_mask)  # (B, S, C)
        states, weights = self.decode_states(tgt_in, memory, src_pad_mask, need_weights=need_weights)
        return self.head(states), weights


# --- Parity with torch.nn.Transformer -------------------------------------------------------------


def _copy_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    # nn.MultiheadAttention packs the three input projections into one (3C, C) matrix: q, k, v.
    theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
    theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
    theirs.out_proj.load_state_dict(ours.out_proj.state_dict())


def _copy_ffn(ours: FeedForward, theirs: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer) -> None:
    theirs.linear1.load_state_dict(ours.up.state_dict())
    theirs.linear2.load_state_dict(ours.down.state_dict())


@torch.no_grad()
def to_torch_transformer(model: Seq2SeqTransformer) -> nn.Transformer:
    """A ``torch.nn.Transformer`` (``batch_first=True``) holding a copy of ``model``'s layers.

    It covers the two stacks only (nn.Transformer has no embeddings or output projection): feed
    it ``model.embed_source(src)`` and ``model.embed_target(tgt_in)`` with the masks of
    ``torch_transformer_masks``; ``encoder(...)`` then equals ``model.encode`` and ``forward``
    equals ``model.decode_states`` (before the projection). Its encoder is built with
    ``enable_nested_tensor=False``: in eval mode PyTorch would otherwise pack a padded batch into
    a nested tensor and return zeros at the padded positions, where our encoder returns values
    (that nothing attends to). Its encoder layers still take PyTorch's fused "fast path" in eval
    mode without gradients: another kernel for the same math, equal to ours within about 1e-6 in
    float32 (with gradients, or in train mode with dropout 0, the results are identical).
    nn.Transformer always puts a LayerNorm at the end of each stack; the paper's Post-LN has
    none, so for ``placement="post"`` the copy has ``norm=None`` there.
    """
    if not isinstance(model, Seq2SeqTransformer):
        raise TypeError(f"model: expected a Seq2SeqTransformer, got {type(model).__name__}")
    c = model.config
    pre = c.placement == "pre"
    layer_kwargs = {
        "d_model": c.d_model,
        "nhead": c.n_heads,
        "dim_feedforward": c.d_ff,
        "dropout": c.dropout,
        "activation": c.activation,
        "batch_first": True,
        "norm_first": pre,
    }
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(**layer_kwargs),
        c.n_encoder_layers,
        norm=nn.LayerNorm(c.d_model) if pre else None,
        enable_nested_tensor=False,
    )
    decoder = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(**layer_kwargs),
        c.n_decoder_layers,
        norm=nn.LayerNorm(c.d_model) if pre else None,
    )
    ref = nn.Transformer(
        c.d_model,
        c.n_heads,
        dropout=c.dropout,
        batch_first=True,
        custom_encoder=encoder,
        custom_decoder=decoder,
    )
    for ours, theirs in zip(model.encoder, encoder.layers, strict=True):
        _copy_attention(ours.self_attn, theirs.self_attn)
        _copy_ffn(ours.ffn, theirs)
        theirs.norm1.load_state_dict(ours.norm1.state_dict())  # after/before self-attention
        theirs.norm2.load_state_dict(ours.norm2.state_dict())  # after/before the feed-forward
    for ours, theirs in zip(model.decoder, decoder.layers, strict=True):
        _copy_attention(ours.self_attn, theirs.self_attn)
        _copy_attention(ours.cross_attn, theirs.multihead_attn)
        _copy_ffn(ours.ffn, theirs)
        theirs.norm1.load_state_dict(ours.norm1.state_dict())
        theirs.norm2.load_state_dict(ours.norm2.state_dict())
        theirs.norm3.load_state_dict(ours.norm3.state_dict())
    if pre:
        encoder.norm.load_state_dict(model.encoder_norm.state_dict())
        decoder.norm.load_state_dict(model.decoder_norm.state_dict())
    weight = model.head.weight
    return ref.to(device=weight.device, dtype=weight.dtype).train(model.training)


def torch_transformer_masks(
    src_pad_mask: torch.Tensor | None, tgt_len: int
) -> dict[str, torch.Tensor | None]:
    """Our masks in ``nn.Transformer``'s convention, where ``True`` means *not* allowed.

    Returns keyword arguments for ``nn.Transformer.forward``: ``src_key_padding_mask`` and
    ``memory_key_padding_mask`` ``(B, S)`` (both the padding), ``tgt_mask`` ``(T, T)`` (causal).
    Pass ``src_key_padding_mask`` alone to ``nn.Transformer.encoder``.
    """
    check_positive_int(tgt_len, "tgt_len")
    padding = None
    if src_pad_mask is not None:
        check_tensor(src_pad_mask, "src_pad_mask", ndim=4, dtypes=(torch.bool,))
        if src_pad_mask.shape[1:3] != (1, 1):
            raise ValueError(f"src_pad_mask: expected shape (B, 1, 1, S), got {tuple(src_pad_mask.shape)}")
        padding = ~src_pad_mask[:, 0, 0, :]  # (B, 1, 1, S) -> (B, S), True = padding
    device = None if src_pad_mask is None else src_pad_mask.device
    return {
        "src_key_padding_mask": padding,
        "memory_key_padding_mask": padding,
        "tgt_mask": ~causal_mask(tgt_len, device=device),
    }


# --- The architecture as a figure ----------------------------------------------------------------


def _sublayer_label(placement: str, name: str) -> str:
    """A sublayer's box label, with the norm where ``placement`` puts it."""
    if placement == "post":
        return f"{name}\n+ residual, then LayerNorm"
    return f"LayerNorm, then {name}\n+ residual"


def draw_architecture(config: Seq2SeqConfig, ax: Axes | None = None) -> Axes:
    """Draw the encoder-decoder that ``config`` describes (the paper's figure 1, from the code).

    One box per sublayer of one encoder and one decoder layer, a frame around each stack labelled
    with its number of layers, the memory's arrow into the cross-attention, the final LayerNorms
    of Pre-LN, and the output projection (marked when tied to the target embedding). Draws on
    ``ax`` (a new figure when none is given) and returns it.
    """
    from matplotlib.patches import FancyBboxPatch  # loaded only here: the model needs no matplotlib

    if not isinstance(config, Seq2SeqConfig):
        raise TypeError(f"config: expected a Seq2SeqConfig, got {type(config).__name__}")
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.subplots(figsize=(10.5, 7.5))[1]
    c = config
    heads = f"{c.n_heads} heads of D = {c.d_model // c.n_heads}"
    ffn = f"feed-forward {c.d_model} → {c.d_ff} → {c.d_model} ({c.activation})"
    head = f"Linear {c.d_model} → {c.tgt_vocab_size}" + (
        ", tied to the target embedding" if c.tie_weights else ""
    )
    stacks = {  # x centre, sublayers from the bottom, number of layers, input, output
        "Encoder": (
            0.0,
            [f"self-attention, {heads}", ffn],
            c.n_encoder_layers,
            "source ids (B, S)",
            "memory (B, S, C)",
        ),
        "Decoder": (
            6.0,
            [
                f"masked self-attention,\n{heads}",
                f"cross-attention (Q from here,\nK and V from the memory), {heads}",
                ffn,
            ],
            c.n_decoder_layers,
            "target ids, BOS first (B, T)",
            f"{head}\nsoftmax: next-token probabilities (B, T, V)",
        ),
    }
    half_width = 2.3

    def box(x: float, y: float, text: str, colour: str) -> None:
        patch = FancyBboxPatch(
            (x - half_width, y - 0.42), 2 * half_width, 0.84, boxstyle="round,pad=0.02", fc=colour, ec="grey"
        )
        ax.add_patch(patch)
        ax.text(x, y, text, ha="center", va="center", fontsize=8)

    def arrow(x0: float, y0: float, x1: float, y1: float, colour: str = "black") -> None:
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color=colour))

    ends = {}  # (y of the output box, y of the cross-attention box) per stack
    for name, (x, sublayers, n_layers, source, output) in stacks.items():
        ax.text(x, -0.95, source, ha="center", va="center", fontsize=8)
        arrow(x, -0.8, x, -0.45)
        box(x, 0, f"embedding × √{c.d_model} + sinusoidal positions", "#fde9c9")
        y, cross_y = 0.0, None
        for sublayer in sublayers:
            arrow(x, y + 0.45, x, y + 0.78)
            y += 1.25
            box(x, y, _sublayer_label(c.placement, sublayer), "#dbe9f6")
            if sublayer.startswith("cross"):
                cross_y = y
        frame = FancyBboxPatch(
            (x - half_width - 0.2, 0.7),
            2 * half_width + 0.4,
            y - 0.2,
            boxstyle="round,pad=0.05",
            fc="none",
            ec="C0",
            lw=1.5,
        )
        ax.add_patch(frame)
        ax.text(
            x + half_width + 0.35, 0.75 + (y - 0.5) / 2, f"× {n_layers}", color="C0", fontsize=13, va="center"
        )
        if c.placement == "pre":
            arrow(x, y + 0.45, x, y + 0.78)
            y += 1.25
            box(x, y, "final LayerNorm", "#e3f1dc")
        arrow(x, y + 0.45, x, y + 0.78)
        y += 1.25
        box(x, y, output, "#e3f1dc" if name == "Encoder" else "#fde9c9")
        ax.text(x, y + 0.75, name, ha="center", fontsize=12, weight="bold")
        ends[name] = (y, cross_y)
    (memory_y, _), (top, cross_y) = ends["Encoder"], ends["Decoder"]
    dx = stacks["Decoder"][0] - half_width
    arrow(half_width, memory_y, dx, cross_y, colour="C3")  # the memory feeds every cross-attention
    ax.text(
        half_width + 0.08, memory_y + 0.1, "memory", color="C3", fontsize=9, va="bottom"
    )  # above the arrow
    ax.set(
        xlim=(-half_width - 0.4, stacks["Decoder"][0] + half_width + 0.9),
        ylim=(-1.3, max(top, memory_y) + 1.2),
    )
    ax.set_title(f"Seq2SeqTransformer, d_model C = {c.d_model}, {c.placement.capitalize()}-LN")
    ax.axis("off")
    return ax


# --- Decoding --------------------------------------------------------------------------------------


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no gradients inside; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _check_decoding(model: Seq2SeqTransformer, bos: int, eos: int, max_len: int) -> None:
    if not isinstance(model, Seq2SeqTransformer):
        raise TypeError(f"model: expected a Seq2SeqTransformer, got {type(model).__name__}")
    V = model.config.tgt_vocab_size
    for name, value in (("bos", bos), ("eos", eos)):
        if check_int(value, name) >= V:
            raise ValueError(f"{name}: expected a target id in 0..{V - 1}, got {value}")
    check_positive_int(max_len, "max_len")
    if max_len + 1 > model.config.max_len:
        raise ValueError(
            f"max_len: BOS + {max_len} tokens exceed the model's max_len={model.config.max_len}; "
            f"expected max_len <= {model.config.max_len - 1}"
        )


def greedy_decode(
    model: Seq2SeqTransformer,
    src: torch.Tensor,
    bos: int,
    eos: int,
    max_len: int,
    src_pad_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pick the most likely next token at every step, for a batch of sources.

    Args:
        src: source ids ``(B, S)``; src_pad_mask: its padding mask ``(B, 1, 1, S)``.
        bos, eos: the target ids that start and end a sequence.
        max_len: the most tokens generated after BOS.

    Returns:
        ``(B, 1 + T)`` ids: BOS, then ``T <= max_len`` generated tokens. Decoding stops when every
        sequence has produced EOS; after its EOS a sequence is filled with EOS.
    """
    _check_decoding(model, bos, eos, max_len)
    with _eval_mode(model):
        memory = model.encode(src, src_pad_mask)  # (B, S, C)
        tokens = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)  # (B,)
        for _ in range(max_len):
            logits = model.decode(tokens, memory, src_pad_mask)[:, -1]  # (B, V): the last position's
            next_token = logits.argmax(dim=-1).masked_fill(done, eos)  # (B,)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            done = done | (next_token == eos)
            if done.all():
                break
    return tokens


def sequence_log_prob(
    model: Seq2SeqTransformer,
    src: torch.Tensor,
    tgt: torch.Tensor,
    src_pad_mask: torch.Tensor | None = None,
    *,
    eos: int | None = None,
) -> torch.Tensor:
    """``log p(tgt | src) = sum_t log p(tgt[t] | tgt[:t], src)`` in eval mode, for ``(B,)`` sequences.

    ``tgt (B, 1 + T)`` starts with BOS (not scored); with ``eos`` given, the tokens after a
    sequence's first EOS are not scored either (the EOS itself is).
    """
    check_tensor(tgt, "tgt", ndim=2, dtypes=IDS)
    if tgt.shape[1] < 2:
        raise ValueError(f"tgt: expected BOS and at least one token, got shape {tuple(tgt.shape)}")
    with _eval_mode(model):
        logits, _ = model(src, tgt[:, :-1], src_pad_mask)  # (B, T, V): predicts tgt[:, 1:]
        scores = logits.log_softmax(dim=-1).gather(-1, tgt[:, 1:, None].long())[..., 0]  # (B, T)
    if eos is not None:
        is_eos = (tgt[:, 1:] == eos).int()  # (B, T)
        after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0  # some earlier token was EOS
        scores = scores.masked_fill(after_eos, 0.0)
    return scores.sum(dim=1)


def beam_search(
    model: Seq2SeqTransformer,
    src: torch.Tensor,
    bos: int,
    eos: int,
    beam_size: int,
    max_len: int,
    *,
    length_penalty: float = 0.0,
) -> tuple[torch.Tensor, float]:
    """The most likely output that a beam of ``beam_size`` hypotheses finds, for ONE source.

    Each step extends every live hypothesis by every token and keeps the ``beam_size`` best
    extensions that do not end; an extension that ends (EOS) and ranks among the ``beam_size``
    best is set aside as finished. A hypothesis's score is the sum of its tokens' log-probs, so
    it can only fall as it grows: the search stops once a finished hypothesis scores at least as
    high as every live one, or after ``max_len`` tokens (then the live ones compete unfinished,
    as greedy decoding returns an unfinished sequence). ``beam_size=1`` is greedy decoding.

    Args:
        src: one source ``(S,)`` without padding (cut a padded row to its length).
        length_penalty: ``alpha``; the final choice ranks ``log_prob / n ** alpha``, with ``n``
            the tokens after BOS (Hugging Face's ``generate``; Wu et al. 2016 use
            ``((5 + n) / 6) ** alpha``). The default 0 ranks by the log-prob itself. With
            ``alpha != 0`` the early stop is off: the search runs ``max_len`` steps.

    Returns:
        The ids ``(1 + T,)``, BOS first, and their log-prob (the sum, without the penalty).
        Like any beam search it is not exact: a wider beam usually, not always, scores higher.
    """
    _check_decoding(model, bos, eos, max_len)
    check_tensor(src, "src", ndim=1, dtypes=IDS)
    check_positive_int(beam_size, "beam_size")
    alpha = check_number(length_penalty, "length_penalty")
    V = model.config.tgt_vocab_size
    finished: list[tuple[torch.Tensor, float]] = []  # (ids, log-prob)
    with _eval_mode(model):
        memory = model.encode(src[None])  # (1, S, C)
        alive = torch.full((1, 1), bos, dtype=torch.long, device=src.device)  # (K, t): K live hypotheses
        alive_scores = torch.zeros(1, device=src.device)  # (K,)
        for _ in range(max_len):
            K = alive.shape[0]
            logits = model.decode(alive, memory.expand(K, -1, -1))[:, -1]  # (K, V)
            scores = alive_scores[:, None] + logits.log_softmax(dim=-1)  # (K, V)
            # Among the 2k best, at most K end, so at least k stay live (when V > 1).
            top_scores, top_ids = scores.flatten().topk(min(2 * beam_size, K * V))
            keep, keep_scores = [], []
            for rank, (score, flat) in enumerate(zip(top_scores.tolist(), top_ids.tolist(), strict=True)):
                beam, token = divmod(flat, V)
                ids = torch.cat([alive[beam], alive.new_tensor([token])])
                if token != eos:
                    keep.append(ids)
                    keep_scores.append(score)
                elif rank < beam_size:
                    finished.append((ids, score))
                if len(keep) == beam_size:
                    break
            if not keep:  # a vocabulary of EOS alone: nothing stays live
                alive, alive_scores = alive[:0], alive_scores[:0]
                break
            alive, alive_scores = torch.stack(keep), alive_scores.new_tensor(keep_scores)
            if alpha == 0 and finished and max(s for _, s in finished) >= keep_scores[0]:
                break
    candidates = finished + list(zip(alive, alive_scores.tolist(), strict=True))
    ids, score = max(candidates, key=lambda c: c[1] / (len(c[0]) - 1) ** alpha)
    return ids, score
