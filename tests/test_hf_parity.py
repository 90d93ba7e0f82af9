"""Parity with Hugging Face ``transformers``: the course's attention + RoPE + RMSNorm against the
Llama layers, built from a small random config, with the weights copied (guide, section 5)."""

import pytest
import torch

from course_lib import attention as att
from course_lib import norms, positions
from tests.conftest import require

require("transformers")
from transformers import LlamaConfig  # noqa: E402
from transformers.models.llama import modeling_llama as llama  # noqa: E402

D_MODEL, N_HEADS, N_KV_HEADS, VOCAB, THETA = 32, 4, 2, 50, 10000.0
HEAD_DIM = D_MODEL // N_HEADS


def llama_config() -> LlamaConfig:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=D_MODEL,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=N_HEADS,
        num_key_value_heads=N_KV_HEADS,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_theta=THETA,
        attention_bias=False,
    )
    config._attn_implementation = "eager"  # the reference softmax(QK^T / sqrt(d)) V path
    return config


def hf_layers(seed: int = 0):
    torch.manual_seed(seed)
    config = llama_config()
    hf_attn = llama.LlamaAttention(config, layer_idx=0).eval()
    for p in hf_attn.parameters():  # a random init that is not Llama's small one
        torch.nn.init.normal_(p, std=0.3)
    return config, hf_attn, llama.LlamaRotaryEmbedding(config)


def course_attention_from(hf_attn) -> att.MultiHeadAttention:
    ours = att.MultiHeadAttention(D_MODEL, N_HEADS, N_KV_HEADS, bias=False).eval()
    with torch.no_grad():  # the same names, but Llama's output projection is o_proj
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(ours, name).weight.copy_(getattr(hf_attn, name).weight)
        ours.out_proj.weight.copy_(hf_attn.o_proj.weight)
    return ours


def additive(mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``True = may attend`` -> the additive mask that Hugging Face's layers take."""
    return torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)


@pytest.mark.parametrize("padded", [False, True])
def test_gqa_attention_with_rope_equals_llama_attention(padded):
    config, hf_attn, hf_rope = hf_layers()
    ours = course_attention_from(hf_attn)
    B, T = 2, 7
    x = torch.randn(B, T, D_MODEL)
    mask = att.causal_mask(T)  # (T, T)
    if padded:  # right padding: sample 1 has 4 real tokens
        mask = mask & att.padding_mask(torch.tensor([7, 4]), T)  # (B, 1, T, T)
    cos, sin = hf_rope(x, torch.arange(T)[None].expand(B, T))
    theirs, _ = hf_attn(x, position_embeddings=(cos, sin), attention_mask=additive(mask.expand(B, 1, T, T)))
    ours_out, _ = ours(x, mask=mask, rotary=positions.RotaryEmbedding(HEAD_DIM, base=THETA))
    torch.testing.assert_close(ours_out, theirs, atol=1e-5, rtol=1e-5)
    ours_out, _ = ours(
        x, mask=mask, rotary=positions.RotaryEmbedding(HEAD_DIM, base=THETA), need_weights=True
    )
    torch.testing.assert_close(ours_out, theirs, atol=1e-5, rtol=1e-5)  # the reference path too


def test_rms_norm_equals_llama_rms_norm():
    hf_norm = llama.LlamaRMSNorm(D_MODEL, eps=1e-6)
    torch.nn.init.normal_(hf_norm.weight)
    ours = norms.RMSNorm(D_MODEL, eps=1e-6)
    ours.load_state_dict(hf_norm.state_dict())  # the same parameter name: weight
    x = torch.randn(3, 5, D_MODEL) * 4
    torch.testing.assert_close(ours(x), hf_norm(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norms.rms_norm(x, hf_norm.weight, 1e-6), hf_norm(x), atol=1e-5, rtol=1e-5)


class AttentionOnlyLM(torch.nn.Module):
    """embed -> x + attn(norm(x)) -> norm -> logits: a Llama block without its MLP, from either library."""

    def __init__(self, embed, norm1, attend, norm2, head):
        super().__init__()
        self.embed, self.norm1, self.norm2, self.head = embed, norm1, norm2, head
        self.attend = attend  # (h (B, T, C)) -> (B, T, C)

    def forward(self, idx):
        x = self.embed(idx)
        shortcut = x
        x = shortcut + self.attend(self.norm1(x))
        return self.head(self.norm2(x))


def test_attention_only_lm_logits_equal_the_llama_layers():
    config, hf_attn, hf_rope = hf_layers(seed=1)
    embed, head = torch.nn.Embedding(VOCAB, D_MODEL), torch.nn.Linear(D_MODEL, VOCAB, bias=False)
    hf_norms = [llama.LlamaRMSNorm(D_MODEL, eps=1e-6) for _ in range(2)]
    our_norms = [norms.RMSNorm(D_MODEL, eps=1e-6) for _ in range(2)]
    for hf_norm, our_norm in zip(hf_norms, our_norms, strict=True):
        torch.nn.init.normal_(hf_norm.weight, mean=1.0, std=0.2)
        our_norm.load_state_dict(hf_norm.state_dict())
    ours_attn, rope = course_attention_from(hf_attn), positions.RotaryEmbedding(HEAD_DIM, base=THETA)
    B, T = 2, 9

    def hf_attend(h):
        cos, sin = hf_rope(h, torch.arange(T)[None].expand(B, T))
        return hf_attn(
            h, position_embeddings=(cos, sin), attention_mask=additive(att.causal_mask(T)[None, None])
        )[0]

    def our_attend(h):
        return ours_attn(h, mask=att.causal_mask(T), rotary=rope)[0]

    idx = torch.randint(VOCAB, (B, T), generator=torch.Generator().manual_seed(0))
    theirs = AttentionOnlyLM(embed, hf_norms[0], hf_attend, hf_norms[1], head)(idx)
    ours = AttentionOnlyLM(embed, our_norms[0], our_attend, our_norms[1], head)(idx)
    assert ours.shape == (B, T, VOCAB)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
