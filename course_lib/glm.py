"""GLM: a Transformer trained by autoregressive blank infilling (notebook 12).

Du et al. 2022, "GLM: general language model pretraining with autoregressive blank infilling"
(ACL 2022): its model architecture, its 2D positional encoding and its figure of the masks. One
stack of Pre-LN Transformer blocks (the paper: the layer norm and the residual connection
rearranged as in Megatron-LM, Shoeybi et al. 2019, and GELU; the reference code THUDM/GLM adds
one LayerNorm after the last block, and its GELU is the tanh approximation, ``gelu_impl`` in
``mpu/transformer.py``, which the blocks here use too: ``activation="gelu_tanh"``) reads
Part A (the text with ``[MASK]`` blanks) bidirectionally and generates Part B (the spans) left
to right: the prefix-LM mask that ``objectives.glm_example`` builds. Each token's input is its
token embedding plus two learned position embeddings, one for its position in the corrupted text
and one for its position inside its span (the paper's "2D positional encoding"). The output
head shares its weight with the token embedding.

``fill_blanks`` fills the blanks of one text greedily, span after span, with a KV cache: Part A
runs once; each generated token then attends to the whole cache, which is exactly what the GLM
mask allows it (Part A and the Part B tokens before it, earlier spans included).

Shapes: ``B`` batch, ``T`` positions, ``C = d_model``, ``V`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validate import (
    check_heads,
    check_int,
    check_number,
    check_positive_int,
    check_probability,
    check_tensor,
    describe,
)
from course_lib.attention import KVCache, prefix_lm_mask
from course_lib.blocks import TransformerBlock
from course_lib.models import init_weights
from course_lib.norms import LayerNorm
from course_lib.objectives import IDS, IGNORE_INDEX, glm_example


@dataclass(frozen=True)
class GLMConfig:
    vocab_size: int  # V, number of token ids (specials [MASK], [START], [END] included)
    max_len: int = 256  # rows of the first position table: positions in Part A (the corrupted text)
    max_span_len: int = 32  # rows of the second table: positions 0..max_span_len-1 inside a span
    d_model: int = 64  # C, width of the residual stream
    n_layers: int = 2  # Transformer blocks
    n_heads: int = 4  # attention heads
    d_ff: int = 256  # hidden width of the feed-forward network (4 * d_model in GLM)
    layer_norm_eps: float = 1e-5  # epsilon of every LayerNorm
    dropout: float = 0.0  # on embeddings, attention weights and sublayer outputs

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "n_layers", "d_ff"):
            check_positive_int(getattr(self, name), name)
        if check_positive_int(self.max_span_len, "max_span_len") < 2:
            raise ValueError(
                f"max_span_len: expected at least 2 (0 for Part A, 1 for [START]), got {self.max_span_len}"
            )
        check_heads(self.d_model, self.n_heads)
        if not check_number(self.layer_norm_eps, "layer_norm_eps") > 0:
            raise ValueError(f"layer_norm_eps: expected a positive number, got {self.layer_norm_eps!r}")
        check_probability(self.dropout, "dropout")


class GLM(nn.Module):
    """Token + 2D position embeddings -> ``n_layers`` Pre-LN blocks -> LayerNorm -> tied head."""

    def __init__(self, config: GLMConfig) -> None:
        super().__init__()
        if not isinstance(config, GLMConfig):
            raise TypeError(f"config: expected a GLMConfig, got {type(config).__name__}")
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = nn.Embedding(c.max_len, c.d_model)  # row 0 of position_ids
        self.span_position_embedding = nn.Embedding(c.max_span_len, c.d_model)  # row 1
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                c.d_ff,
                placement="pre",
                norm="layer",
                dropout=c.dropout,
                norm_eps=c.layer_norm_eps,
                activation="gelu_tanh",  # GLM's gelu_impl, mpu/transformer.py
            )
            for _ in range(c.n_layers)
        )
        self.final_norm = LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # tied, as in GLM
        self.apply(init_weights)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        caches: list[KVCache] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits, and the mean cross-entropy over the labels that are not ``-100``.

        Args:
            input_ids: ``(B, T)`` token ids.
            position_ids: ``(B, 2, T)``: row 0 the position in the corrupted text, row 1 the
                position inside the span (``objectives.glm_example`` / ``glm_batch``).
            attention_mask: boolean, True = may attend: ``(T, S)`` or ``(B, 1, T, S)`` (``S = T``
                without a cache, the cached plus new positions with one); ``None`` lets every
                position attend to every key (Part A alone, or one new token after a cache).
                Required with ``labels`` and no cache: without it Part B would see the tokens
                it predicts.
            labels: ``(B, T)`` targets, ``-100`` where nothing is predicted.
            caches: one ``KVCache`` per block for step-by-step generation.

        Returns:
            ``logits (B, T, V)`` and the loss (``None`` without labels).
        """
        c = self.config
        check_tensor(input_ids, "input_ids", ndim=2, dtypes=IDS)
        B, T = input_ids.shape
        check_tensor(position_ids, "position_ids", ndim=3, dtypes=IDS)
        if tuple(position_ids.shape) != (B, 2, T):
            raise ValueError(
                f"position_ids: expected shape (B, 2, T) = ({B}, 2, {T}), got {tuple(position_ids.shape)}"
            )
        for row, name, size in ((0, "max_len", c.max_len), (1, "max_span_len", c.max_span_len)):
            values = position_ids[:, row]
            if values.numel() and (values.min() < 0 or values.max() >= size):
                raise ValueError(
                    f"position_ids: row {row} must lie in 0..{name}-1={size - 1}, "
                    f"got {values.min().item()}..{values.max().item()}"
                )
        if attention_mask is not None:
            check_tensor(attention_mask, "attention_mask", dtypes=(torch.bool,))
            if attention_mask.ndim not in (2, 4):
                raise ValueError(
                    "attention_mask: expected (T, S) or (B, 1, T, S), "
                    f"got shape {tuple(attention_mask.shape)}"
                )
        if labels is not None:
            if attention_mask is None and caches is None:
                raise ValueError(
                    "attention_mask: required with labels (without it Part B attends to the tokens it "
                    "predicts); pass glm_example's / glm_batch's attention_mask"
                )
            check_tensor(labels, "labels", dtypes=IDS)
            if labels.shape != input_ids.shape:
                raise ValueError(
                    f"labels: expected the shape of input_ids {tuple(input_ids.shape)}, "
                    f"got {tuple(labels.shape)}"
                )
        if caches is not None and len(caches) != c.n_layers:
            raise ValueError(f"caches: expected one KVCache per block ({c.n_layers}), got {len(caches)}")

        x = (
            self.token_embedding(input_ids)
            + self.position_embedding(position_ids[:, 0])
            + self.span_position_embedding(position_ids[:, 1])
        )  # (B, T, C)
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            x = block(x, attention_mask, cache=None if caches is None else caches[i])
        logits = self.head(self.final_norm(x))  # (B, T, C) -> (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten().long(), ignore_index=IGNORE_INDEX)
        return logits, loss


@torch.no_grad()
def fill_blanks(
    model: GLM,
    tokens: torch.Tensor,
    spans: Sequence[tuple[int, int]],
    mask_id: int,
    start_id: int,
    end_id: int,
    max_new_tokens: int | None = None,
    use_cache: bool = True,
) -> list[torch.Tensor]:
    """Greedily fill the blanks of one text, span after span in the order given.

    Part A is ``tokens`` with each span replaced by ``mask_id`` (the tokens under the spans are
    never read). For each span, ``[START]`` is appended with the position of its ``[MASK]`` and
    span position 1, then the most likely token, and so on, until ``end_id`` or ``max_new_tokens``
    tokens. Later spans see the earlier generated ones, as in training. With ``use_cache`` Part A
    runs once and each step feeds one token (its cache holds everything it may attend to);
    without, each step reruns the whole sequence under ``prefix_lm_mask``: the same tokens.

    Args:
        model: a ``GLM`` (run in eval mode; its mode is restored).
        tokens: the text ``(L0,)``, int64 or int32.
        spans: ``(start, end)`` pairs, 0-based, end exclusive, non-overlapping.
        mask_id, start_id, end_id: the ids of ``[MASK]``, ``[START]`` and ``[END]``.
        max_new_tokens: cap on each span's length (default and maximum: ``max_span_len - 2``,
            so that ``[START]``, the span and the ``[END]`` prediction fit the span positions).
        use_cache: generate with a KV cache per block.

    Returns:
        One int64 tensor of generated ids per span (without ``[START]`` and ``[END]``), in the
        order of ``spans``, on the model's device.
    """
    if not isinstance(model, GLM):
        raise TypeError(f"model: expected a GLM, got {type(model).__name__}")
    check_tensor(tokens, "tokens", ndim=1, dtypes=IDS)
    for name, value in (("mask_id", mask_id), ("start_id", start_id), ("end_id", end_id)):
        if check_int(value, name) >= model.config.vocab_size:
            raise ValueError(
                f"{name}: expected an id below vocab_size={model.config.vocab_size}, got {value}"
            )
    example = glm_example(tokens, spans, mask_id, start_id, end_id)  # validates the spans too
    limit = model.config.max_span_len - 2
    if max_new_tokens is None:
        max_new_tokens = limit
    if check_positive_int(max_new_tokens, "max_new_tokens") > limit:
        raise ValueError(f"max_new_tokens: expected 1..max_span_len-2={limit}, got {max_new_tokens}")
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache: expected a bool, got {describe(use_cache)}")
    device = model.token_embedding.weight.device

    # Part A exactly as the objective builds it; the tokens under the spans are never fed.
    prefix_len = int(example["prefix_len"])
    ids = example["input_ids"][:prefix_len].tolist()
    starts = (example["position_ids"][1] == 1).nonzero().flatten()  # each span's [START], in order
    mask_positions = example["position_ids"][0, starts].tolist()  # where each span's [MASK] sits
    if prefix_len > model.config.max_len:
        raise ValueError(f"tokens: Part A has {prefix_len} tokens, more than max_len={model.config.max_len}")
    positions, span_positions = list(range(prefix_len)), [0] * prefix_len

    def run(new: slice, caches: list[KVCache] | None, mask: torch.Tensor | None) -> torch.Tensor:
        """The logits ``(V,)`` of the last position, feeding ``ids[new]``."""
        input_ids = torch.tensor([ids[new]], device=device)  # (1, T)
        position_ids = torch.tensor([[positions[new], span_positions[new]]], device=device)  # (1, 2, T)
        logits, _ = model(input_ids, position_ids, mask, caches=caches)
        return logits[0, -1]

    was_training = model.training
    model.eval()
    try:
        caches = [KVCache() for _ in model.blocks] if use_cache else None
        if use_cache:
            run(slice(0, prefix_len), caches, None)  # Part A attends to all of Part A
        filled = []
        for mask_position in mask_positions:
            generated: list[int] = []
            token = start_id
            while True:
                ids.append(token)
                positions.append(mask_position)
                span_positions.append(len(generated) + 1)
                if use_cache:
                    logits = run(slice(len(ids) - 1, len(ids)), caches, None)
                else:
                    logits = run(
                        slice(0, len(ids)), None, prefix_lm_mask(len(ids), prefix_len, device=device)
                    )
                token = int(logits.argmax())
                if token == end_id:
                    break
                generated.append(token)
                if len(generated) == max_new_tokens:  # stop before a forward pass it would not use
                    break
            filled.append(torch.tensor(generated, dtype=torch.int64, device=device))
    finally:
        model.train(was_training)
    return filled
