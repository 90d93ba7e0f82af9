"""Mixture of experts: a router sends each token to a few of many feed-forward networks (notebook 09).

- Shazeer et al. 2017, "Outrageously large neural networks: the sparsely-gated mixture-of-experts
  layer": a gating network picks the top ``k`` experts per input and weights their outputs.
- Fedus et al. 2021, "Switch Transformers": one expert per token (``k = 1``) and an auxiliary
  load-balancing loss ``E * sum_i f_i P_i`` for ``E`` experts (their equation 4 names it ``N``),
  with ``f_i`` the fraction of tokens sent to expert ``i`` and ``P_i`` the mean router probability
  of expert ``i``.
- Jiang et al. 2024, "Mixtral of experts": 8 SwiGLU experts, ``k = 2``, and gates
  ``softmax(top2(x W_g))``: the softmax over the two selected logits only, so a token's two
  weights sum to one.

An expert sees only the tokens routed to it: a model with ``n_experts`` experts stores
``n_experts`` feed-forward networks but runs ``top_k`` of them per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib._validate import check_positive_int, check_tensor
from course_lib.attention import FLOATS
from course_lib.llama import SwiGLU


def top_k_routing(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixtral's gates: the ``top_k`` largest logits of each token and a softmax over them alone.

    Args:
        logits: router logits ``(N, E)`` for ``N`` tokens and ``E`` experts.
        top_k: experts per token, ``1 <= top_k <= E``.

    Returns:
        ``weights (N, top_k)`` (each row sums to one) and ``experts (N, top_k)``, the chosen expert
        ids, largest logit first. The same as a softmax over all ``E`` logits followed by keeping
        the top ``k`` probabilities and renormalizing them (Hugging Face's Mixtral).
    """
    check_tensor(logits, "logits", ndim=2, dtypes=FLOATS)
    check_positive_int(top_k, "top_k")
    if top_k > logits.shape[-1]:
        raise ValueError(f"top_k: expected at most the number of experts {logits.shape[-1]}, got {top_k}")
    top_logits, experts = logits.topk(top_k, dim=-1)  # (N, k), (N, k)
    return torch.softmax(top_logits, dim=-1), experts


def load_balancing_loss(router_probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's auxiliary loss ``E * sum_i f_i P_i`` (Fedus et al. 2021, equation 4).

    Args:
        router_probs: softmax over all ``E`` experts' logits ``(N, E)``.
        experts: the chosen expert ids ``(N, k)``.

    ``f_i`` is the fraction of tokens that chose expert ``i`` among their ``k`` (Hugging Face's
    ``load_balancing_loss_func``; with ``k = 1`` it is Switch's), ``P_i`` the mean of
    ``router_probs[:, i]``. Balanced routing gives ``k``; it grows as tokens crowd onto few experts.
    Only ``P`` carries a gradient (the choice is discrete), which pushes the router's probability
    away from the busy experts. The coefficient (Switch: ``alpha = 0.01``) is the caller's.
    """
    check_tensor(router_probs, "router_probs", ndim=2, dtypes=FLOATS)
    check_tensor(experts, "experts", ndim=2, dtypes=(torch.int64,))
    N, E = router_probs.shape
    if experts.shape[0] != N:
        raise ValueError(f"experts: expected {N} rows like router_probs, got shape {tuple(experts.shape)}")
    counts = torch.bincount(experts.flatten(), minlength=E)  # (E,)
    fraction = counts.to(router_probs.dtype) / N  # f_i, summing to k
    return E * (fraction * router_probs.mean(dim=0)).sum()


@dataclass(frozen=True)
class Routing:
    """What the router decided for ``N`` tokens and ``E`` experts."""

    router_probs: torch.Tensor  # (N, E) softmax over all experts' logits
    experts: torch.Tensor  # (N, k) chosen expert ids
    weights: torch.Tensor  # (N, k) gates: softmax over the chosen logits
    tokens_per_expert: torch.Tensor  # (E,) how many tokens each expert processed

    def load_balancing_loss(self) -> torch.Tensor:
        """``load_balancing_loss(self.router_probs, self.experts)``."""
        return load_balancing_loss(self.router_probs, self.experts)


class MoEFeedForward(nn.Module):
    """``sum_j w_j * expert_{e_j}(x)`` over the ``top_k`` experts a linear router picks per token.

    A drop-in for a block's ``ffn``: ``forward(x)`` maps ``(B, T, C) -> (B, T, C)``;
    ``forward(x, return_routing=True)`` also returns the ``Routing``. The experts are ``SwiGLU``
    networks as in Mixtral; the router is ``nn.Linear(d_model, n_experts, bias=False)``.
    Parameters: ``n_experts`` experts stored, ``top_k`` of them run per token.
    """

    def __init__(self, d_model: int, d_ff: int, n_experts: int, top_k: int = 2) -> None:
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(d_ff, "d_ff")
        check_positive_int(n_experts, "n_experts")
        check_positive_int(top_k, "top_k")
        if top_k > n_experts:
            raise ValueError(f"top_k: expected at most n_experts={n_experts}, got {top_k}")
        self.top_k = top_k
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(d_model, d_ff) for _ in range(n_experts))

    def forward(
        self, x: torch.Tensor, *, return_routing: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Routing]:
        """``x (B, T, C)`` -> ``(B, T, C)`` (and the ``Routing`` of its ``B * T`` tokens)."""
        check_tensor(x, "x", ndim=3, dtypes=FLOATS)
        B, T, C = x.shape
        tokens = x.reshape(B * T, C)  # (B, T, C) -> (N, C)
        logits = self.router(tokens)  # (N, E)
        weights, experts = top_k_routing(logits, self.top_k)  # (N, k), (N, k)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token_ids, slot = torch.where(experts == e)  # the tokens that chose expert e, and in which slot
            if token_ids.numel():
                gate = weights[token_ids, slot, None]  # (n_e, 1)
                out = out.index_add(0, token_ids, gate * expert(tokens[token_ids]))
        out = out.view(B, T, C)
        if not return_routing:
            return out
        routing = Routing(
            router_probs=torch.softmax(logits, dim=-1),
            experts=experts,
            weights=weights,
            tokens_per_expert=torch.bincount(experts.flatten(), minlength=len(self.experts)),
        )
        return out, routing
