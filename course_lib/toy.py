"""Toy tasks that need attention: reversal (notebook 02) and key-value retrieval (notebooks 03, 04).

A sample is ``P`` (key, value) pairs and ``Q`` query keys; the answer to each query is the value
paired with that key. Nothing but content tells a model where the answer is, so a model must
*look it up*: a query must match its key, exactly the soft dictionary lookup of attention.
With ``Q = 2`` queries one attention head cannot return two different values in order, while two
heads can each look up one: a small, honest case for multi-head attention.

Notebook 02 uses a simpler task whose right *alignment* is known: reverse a string of tokens
(``reversal_batch``). Output position ``i`` must read source position ``T - 1 - i``, so the
attention weights a model learns can be compared with the anti-diagonal they should form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validate import check_positive_int, check_tensor
from course_lib.attention import MultiHeadAttention


@dataclass(frozen=True)
class RetrievalBatch:
    keys: torch.Tensor  # (B, P) distinct key ids in each sample
    values: torch.Tensor  # (B, P) value ids, one per key
    queries: torch.Tensor  # (B, Q) key ids to look up, each one of the sample's keys
    targets: torch.Tensor  # (B, Q) the value paired with each query

    def to(self, device: torch.device | str) -> RetrievalBatch:
        return RetrievalBatch(*(t.to(device) for t in (self.keys, self.values, self.queries, self.targets)))


def retrieval_batch(
    batch_size: int,
    n_pairs: int,
    n_keys: int,
    n_values: int,
    n_queries: int = 1,
    generator: torch.Generator | None = None,
) -> RetrievalBatch:
    """Draw a batch of the key-value retrieval task on the CPU (move it with ``.to(device)``)."""
    for name, value in (
        ("batch_size", batch_size),
        ("n_pairs", n_pairs),
        ("n_keys", n_keys),
        ("n_values", n_values),
        ("n_queries", n_queries),
    ):
        check_positive_int(value, name)
    if n_pairs > n_keys:
        raise ValueError(f"n_pairs={n_pairs} distinct keys need n_keys >= n_pairs, got n_keys={n_keys}")
    if n_queries > n_pairs:
        raise ValueError(f"n_queries={n_queries} distinct queries need n_pairs >= n_queries, got {n_pairs}")
    keys = torch.rand(batch_size, n_keys, generator=generator).argsort(dim=1)[:, :n_pairs]  # (B, P)
    values = torch.randint(n_values, (batch_size, n_pairs), generator=generator)  # (B, P)
    picked = torch.rand(batch_size, n_pairs, generator=generator).argsort(dim=1)[:, :n_queries]  # (B, Q)
    return RetrievalBatch(keys, values, keys.gather(1, picked), values.gather(1, picked))


def reversal_batch(
    batch_size: int, length: int, vocab_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``(source, target)`` of the reversal task on the CPU, both ``(B, T)`` token ids.

    ``source`` holds uniform ids in ``0..vocab_size - 1`` and ``target[:, i] = source[:, T - 1 - i]``.
    """
    for name, value in (("batch_size", batch_size), ("length", length), ("vocab_size", vocab_size)):
        check_positive_int(value, name)
    source = torch.randint(vocab_size, (batch_size, length), generator=generator)  # (B, T)
    return source, source.flip(1)


class RetrievalModel(nn.Module):
    """One attention layer that answers the retrieval task.

    The sequence is ``P`` pair tokens (key embedding + value embedding) followed by one query
    token (the sum of one embedding per query slot). Self-attention runs over the whole
    sequence, and a linear read-out turns the query token's output into ``Q`` sets of value
    logits. There are no positions: the task needs none.
    """

    def __init__(
        self,
        n_keys: int,
        n_values: int,
        d_model: int = 64,
        n_heads: int = 1,
        n_kv_heads: int | None = None,
        n_queries: int = 1,
    ) -> None:
        super().__init__()
        self.n_values, self.n_queries = n_values, n_queries
        self.key_embedding = nn.Embedding(n_keys, d_model)
        self.value_embedding = nn.Embedding(n_values, d_model)
        self.query_embedding = nn.ModuleList(nn.Embedding(n_keys, d_model) for _ in range(n_queries))
        self.attention = MultiHeadAttention(d_model, n_heads, n_kv_heads)
        self.readout = nn.Linear(d_model, n_queries * n_values)

    def embed(self, batch: RetrievalBatch) -> torch.Tensor:
        """The input sequence ``(B, P + 1, C)``: the pair tokens, then the query token."""
        check_tensor(batch.queries, "queries", ndim=2)
        if batch.queries.shape[1] != self.n_queries:
            raise ValueError(f"queries: expected {self.n_queries} per sample, got {batch.queries.shape[1]}")
        pairs = self.key_embedding(batch.keys) + self.value_embedding(batch.values)  # (B, P, C)
        query = sum(emb(batch.queries[:, i]) for i, emb in enumerate(self.query_embedding))  # (B, C)
        return torch.cat([pairs, query[:, None]], dim=1)

    def forward(
        self, batch: RetrievalBatch, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Value logits ``(B, Q, n_values)`` and, if asked, the weights ``(B, H, P + 1, P + 1)``."""
        out, weights = self.attention(self.embed(batch), need_weights=need_weights)  # (B, P + 1, C)
        logits = self.readout(out[:, -1])  # (B, Q * n_values)
        return logits.view(-1, self.n_queries, self.n_values), weights

    def loss(self, batch: RetrievalBatch) -> torch.Tensor:
        """Mean cross-entropy of the answers."""
        logits, _ = self(batch)
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten())

    @torch.no_grad()
    def accuracy(self, batch: RetrievalBatch) -> float:
        """Fraction of queries answered with the right value."""
        logits, _ = self(batch)
        return (logits.argmax(-1) == batch.targets).float().mean().item()
