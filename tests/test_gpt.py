"""The course's GPT-2 against Hugging Face's ``GPT2LMHeadModel``: a small random config, weights
copied with ``load_hf_gpt2_state_dict``, logits within 1e-5 (guide, section 5)."""

import pytest
import torch

from course_lib import blocks
from course_lib.gpt import GPT, GPTConfig, load_hf_gpt2_state_dict
from tests.conftest import require

require("transformers")
import transformers  # noqa: E402

VOCAB, N_POSITIONS, D_MODEL, N_LAYERS, N_HEADS = 50, 64, 32, 2, 4


def hf_gpt2(seed: int = 0) -> "transformers.GPT2LMHeadModel":
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=N_POSITIONS,
        n_embd=D_MODEL,
        n_layer=N_LAYERS,
        n_head=N_HEADS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        attn_implementation="eager",
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # larger than GPT-2's N(0, 0.02), so that every weight matters
        for name, p in model.named_parameters():
            p.normal_(mean=1.0 if name.endswith("ln_1.weight") else 0.0, std=0.3)
    return model


def course_gpt_from(hf_model) -> GPT:
    model = GPT(GPTConfig(VOCAB, N_POSITIONS, D_MODEL, N_LAYERS, N_HEADS)).eval()
    load_hf_gpt2_state_dict(model, hf_model.state_dict())
    return model


def test_logits_equal_hugging_face_gpt2():
    hf_model = hf_gpt2()
    model = course_gpt_from(hf_model)
    idx = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = hf_model(idx).logits
        ours, loss = model(idx)
    assert loss is None
    assert ours.shape == (2, 11, VOCAB)
    assert theirs.abs().max() > 1.0  # the comparison is not between near-zero tensors
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the loss too: HF shifts labels itself, we take next-token targets
        _, loss = model(idx[:, :-1], idx[:, 1:])
        hf_loss = hf_model(idx, labels=idx).loss
    torch.testing.assert_close(loss, hf_loss, atol=1e-5, rtol=1e-5)


def test_head_is_tied_and_causal():
    model = course_gpt_from(hf_gpt2())
    assert model.head.weight is model.token_embedding.weight
    idx = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(2))
    changed = idx.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(before[:, :5], after[:, :5])  # earlier positions cannot see later ones
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_uses_the_tanh_gelu():
    model = GPT(GPTConfig(VOCAB, N_POSITIONS, D_MODEL, N_LAYERS, N_HEADS))
    assert all(block.ffn.activation == "gelu_tanh" for block in model.blocks)
    x = torch.linspace(-4, 4, 101)
    hf_gelu_new = transformers.activations.NewGELUActivation()
    torch.testing.assert_close(blocks.gelu_tanh(x), hf_gelu_new(x))
    assert (blocks.gelu_tanh(x) - torch.nn.functional.gelu(x)).abs().max() > 1e-4  # not the erf GELU


def test_gpt2_init_scales_residual_projections():
    torch.manual_seed(0)
    model = GPT(GPTConfig(VOCAB, N_POSITIONS, 256, 8, 4))
    std = model.blocks[0].attn.out_proj.weight.std().item()
    assert abs(std - 0.02 / 4) < 0.001  # 0.02 / sqrt(2 * 8 layers)
    assert abs(model.blocks[0].attn.q_proj.weight.std().item() - 0.02) < 0.002


def test_bad_inputs_are_refused():
    model = GPT(GPTConfig(VOCAB, 8, D_MODEL, 1, N_HEADS))
    with pytest.raises(ValueError, match="n_positions=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="idx"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(VOCAB, 8, 30, 1, 4)
    state = hf_gpt2().state_dict()
    with pytest.raises(ValueError, match="no place"):  # 2 layers of weights into 1 layer
        load_hf_gpt2_state_dict(model, state)
    del state["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(ValueError, match="h.1.mlp.c_fc.bias"):
        load_hf_gpt2_state_dict(GPT(GPTConfig(VOCAB, N_POSITIONS, D_MODEL, N_LAYERS, N_HEADS)), state)
