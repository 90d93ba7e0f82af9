"""Mixture of experts: top-k routing, the expert mixture against a loop over tokens, the Switch
load-balancing loss (against Hugging Face's Mixtral), and use as a block's feed-forward network."""

import pytest
import torch

from course_lib import blocks, moe
from tests.conftest import require


def test_top_k_routing_is_a_softmax_over_the_chosen_logits():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.0, 3.0, 3.5, 0.5]])
    weights, experts = moe.top_k_routing(logits, 2)
    assert experts.tolist() == [[0, 2], [2, 1]]
    e = torch.tensor(1.0).exp().item()
    torch.testing.assert_close(weights[0], torch.tensor([e / (e + 1), 1 / (e + 1)]))
    # the same as Mixtral's code in Hugging Face: softmax over all, keep the top k, renormalize
    probs = torch.softmax(logits, dim=-1).gather(1, experts)
    torch.testing.assert_close(weights, probs / probs.sum(dim=-1, keepdim=True))
    assert moe.top_k_routing(logits, 1)[0].eq(1).all()
    with pytest.raises(ValueError, match="top_k: expected at most the number of experts 4, got 5"):
        moe.top_k_routing(logits, 5)


def dense_reference(layer: moe.MoEFeedForward, x: torch.Tensor) -> torch.Tensor:
    """Token by token: the gate-weighted sum of the chosen experts' outputs."""
    B, T, C = x.shape
    rows = []
    for token in x.reshape(B * T, C):
        logits = layer.router(token)  # (E,)
        top, chosen = logits.topk(layer.top_k)
        gates = torch.softmax(top, dim=-1)
        rows.append(
            sum(g * layer.experts[int(e)](token[None])[0] for g, e in zip(gates, chosen, strict=True))
        )
    return torch.stack(rows).view(B, T, C)


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_moe_equals_a_loop_over_tokens(top_k):
    torch.manual_seed(0)
    layer = moe.MoEFeedForward(8, 12, n_experts=4, top_k=top_k)
    x = torch.randn(3, 5, 8)
    out, routing = layer(x, return_routing=True)
    torch.testing.assert_close(out, dense_reference(layer, x))
    assert routing.tokens_per_expert.sum().item() == 15 * top_k
    assert routing.experts.shape == routing.weights.shape == (15, top_k)
    torch.testing.assert_close(routing.router_probs.sum(dim=-1), torch.ones(15))
    torch.testing.assert_close(layer(x), out)


def test_moe_is_a_drop_in_ffn_and_its_router_learns():
    torch.manual_seed(0)
    block = blocks.TransformerBlock(8, 2, 12, ffn=moe.MoEFeedForward(8, 12, n_experts=4))
    x = torch.randn(2, 6, 8)
    assert block(x).shape == (2, 6, 8)
    out, routing = block.ffn(x, return_routing=True)
    (out.sum() + routing.load_balancing_loss()).backward()
    assert block.ffn.router.weight.grad.abs().sum() > 0
    n_expert = sum(p.numel() for p in block.ffn.experts[0].parameters())
    assert n_expert == 3 * 8 * 12
    assert sum(p.numel() for p in block.ffn.parameters()) == 4 * n_expert + 4 * 8


def test_load_balancing_loss_is_top_k_when_balanced_and_grows_when_not():
    uniform = torch.full((4, 4), 0.25)
    balanced = torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2]])
    assert moe.load_balancing_loss(uniform, balanced).item() == pytest.approx(2.0)
    crowded_probs = torch.tensor([[0.7, 0.1, 0.1, 0.1]] * 4)
    crowded = torch.tensor([[0, 1]] * 4)
    # f = (1, 1, 0, 0), P = (0.7, 0.1, 0.1, 0.1): 4 * (0.7 + 0.1)
    assert moe.load_balancing_loss(crowded_probs, crowded).item() == pytest.approx(3.2)


def test_load_balancing_loss_equals_hugging_face_mixtral():
    require("transformers")
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    torch.manual_seed(0)
    logits = torch.randn(30, 8)
    _, experts = moe.top_k_routing(logits, 2)
    ours = moe.load_balancing_loss(torch.softmax(logits, dim=-1), experts)
    torch.testing.assert_close(ours, load_balancing_loss_func((logits,), num_experts=8, top_k=2))


def test_moe_rejects_bad_configuration():
    with pytest.raises(ValueError, match="top_k: expected at most n_experts=2, got 3"):
        moe.MoEFeedForward(8, 12, n_experts=2, top_k=3)
    with pytest.raises(ValueError, match="n_experts: expected a positive int, got 0"):
        moe.MoEFeedForward(8, 12, n_experts=0)
    with pytest.raises(ValueError, match="x: expected a 3-D tensor"):
        moe.MoEFeedForward(8, 12, n_experts=2)(torch.randn(4, 8))
