"""The course's Llama-style decoder against Hugging Face's ``LlamaForCausalLM``: a small random
config, weights copied with ``load_hf_llama_state_dict``, logits within 1e-5 (guide, section 5)."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.llama import GeGLU, Llama, LlamaConfig, SwiGLU, load_hf_llama_state_dict
from tests.conftest import require

require("transformers")
import transformers  # noqa: E402

VOCAB, D_MODEL, N_LAYERS, N_HEADS, N_KV_HEADS, D_FF = 50, 32, 2, 4, 2, 64


def hf_llama(seed: int = 0, tie: bool = False) -> "transformers.LlamaForCausalLM":
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=D_MODEL,
        intermediate_size=D_FF,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=N_HEADS,
        num_key_value_heads=N_KV_HEADS,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=tie,
        attn_implementation="eager",
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # larger than Llama's N(0, 0.02), so that every weight matters
        for p in model.parameters():
            p.normal_(std=0.3)
    return model


def course_config(tie: bool = False) -> LlamaConfig:
    return LlamaConfig(
        VOCAB, D_MODEL, N_LAYERS, N_HEADS, N_KV_HEADS, D_FF, max_len=64, norm_eps=1e-6, tie_embeddings=tie
    )


@pytest.mark.parametrize("tie", [False, True])
def test_logits_equal_hugging_face_llama(tie):
    hf_model = hf_llama(tie=tie)
    model = Llama(course_config(tie)).eval()
    load_hf_llama_state_dict(model, hf_model.state_dict())
    assert (model.head.weight is model.token_embedding.weight) == tie
    idx = torch.randint(0, VOCAB, (2, 13), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = hf_model(idx).logits
        ours, loss = model(idx)
        _, loss = model(idx[:, :-1], idx[:, 1:])
        hf_loss = hf_model(idx, labels=idx).loss
    assert ours.shape == (2, 13, VOCAB)
    assert theirs.abs().max() > 1.0  # the comparison is not between near-zero tensors
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, hf_loss, atol=1e-5, rtol=1e-5)


def test_blocks_are_bias_free_gqa_with_swiglu():
    model = Llama(course_config())
    block = model.blocks[0]
    assert isinstance(block.ffn, SwiGLU)
    assert block.attn.n_kv_heads == N_KV_HEADS and block.attn.k_proj.weight.shape == (16, D_MODEL)
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert model.head.weight is not model.token_embedding.weight
    eps = Llama(LlamaConfig(VOCAB, D_MODEL, 1, N_HEADS, d_ff=D_FF, norm_eps=1e-3))
    assert {eps.blocks[0].norm1.eps, eps.blocks[0].norm2.eps, eps.final_norm.eps} == {1e-3}


@pytest.mark.parametrize(("module", "activation"), [(SwiGLU, F.silu), (GeGLU, F.gelu)])
def test_gated_feed_forward(module, activation):
    torch.manual_seed(0)
    ffn = module(8, 12)
    x = torch.randn(2, 3, 8)
    expected = (activation(x @ ffn.gate.weight.T) * (x @ ffn.up.weight.T)) @ ffn.down.weight.T
    torch.testing.assert_close(ffn(x), expected)
    assert sum(p.numel() for p in ffn.parameters()) == 3 * 8 * 12  # three matrices, no biases


def test_swiglu_equals_hugging_face_llama_mlp():
    hf_model = hf_llama()
    hf_mlp = hf_model.model.layers[0].mlp
    ours = SwiGLU(D_MODEL, D_FF)
    with torch.no_grad():
        for theirs_name, ours_name in (("gate_proj", "gate"), ("up_proj", "up"), ("down_proj", "down")):
            getattr(ours, ours_name).weight.copy_(getattr(hf_mlp, theirs_name).weight)
    x = torch.randn(2, 5, D_MODEL)
    torch.testing.assert_close(ours(x), hf_mlp(x))


def test_bad_configs_and_state_dicts_are_refused():
    with pytest.raises(ValueError, match="divisible by n_kv_heads"):
        LlamaConfig(VOCAB, D_MODEL, 1, 4, 3, D_FF)
    with pytest.raises(ValueError, match="even"):
        LlamaConfig(VOCAB, 12, 1, 4, None, D_FF)  # head_dim 3
    with pytest.raises(TypeError, match="tie_embeddings"):
        LlamaConfig(VOCAB, D_MODEL, 1, 4, None, D_FF, tie_embeddings=1)
    state = hf_llama().state_dict()
    with pytest.raises(ValueError, match="no place"):  # 2 layers of weights into 1 layer
        load_hf_llama_state_dict(Llama(LlamaConfig(VOCAB, D_MODEL, 1, 4, 2, D_FF)), state)
    del state["lm_head.weight"]
    with pytest.raises(ValueError, match="lm_head.weight"):
        load_hf_llama_state_dict(Llama(course_config()), state)
