"""``count_parameters`` against the models built on the meta device (nothing allocated) and the
published sizes of GPT-2 small and Llama 2 7B."""

import pytest
import torch

from course_lib.counting import count_parameters, flops_per_token, matmul_parameters, parameter_breakdown
from course_lib.efficiency import count_flops
from course_lib.gpt import GPT, GPTConfig
from course_lib.llama import Llama, LlamaConfig
from course_lib.models import TinyLMConfig

# GPT-2-style; Llama-style with GQA; Llama-style with MQA and a tied head.
SMALL_CONFIGS = [
    GPTConfig(vocab_size=50, n_positions=16, d_model=24, n_layers=3, n_heads=4, d_ff=40),
    LlamaConfig(vocab_size=50, d_model=32, n_layers=3, n_heads=8, n_kv_heads=2, d_ff=40),
    LlamaConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=4, n_kv_heads=1, d_ff=24, tie_embeddings=True),
]


def built_on_meta(model_class, config) -> int:
    with torch.device("meta"):
        model = model_class(config)
    assert next(model.parameters()).is_meta
    return sum(p.numel() for p in model.parameters())  # a tied weight is listed once


def test_gpt2_small_has_124_439_808_parameters():
    config = GPTConfig(vocab_size=50257, n_positions=1024, d_model=768, n_layers=12, n_heads=12)
    assert count_parameters(config) == 124_439_808
    assert built_on_meta(GPT, config) == 124_439_808


def test_llama_2_7b_has_6_738_415_616_parameters():
    config = LlamaConfig(vocab_size=32000, d_model=4096, n_layers=32, n_heads=32, d_ff=11008)
    assert count_parameters(config) == 6_738_415_616
    assert built_on_meta(Llama, config) == 6_738_415_616


@pytest.mark.parametrize("config", SMALL_CONFIGS)
def test_small_configs_match_the_built_model(config):
    model_class = GPT if isinstance(config, GPTConfig) else Llama
    assert count_parameters(config) == built_on_meta(model_class, config)


def test_gqa_and_tying_change_the_count_as_expected():
    mha = LlamaConfig(vocab_size=100, d_model=64, n_layers=2, n_heads=8, d_ff=96)
    gqa = LlamaConfig(vocab_size=100, d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, d_ff=96)
    tied = LlamaConfig(vocab_size=100, d_model=64, n_layers=2, n_heads=8, d_ff=96, tie_embeddings=True)
    # K and V shrink from 64 to 16 outputs: 2 matrices * (64 - 16) * 64 inputs per layer
    assert count_parameters(mha) - count_parameters(gqa) == 2 * 2 * 48 * 64
    assert count_parameters(mha) - count_parameters(tied) == 100 * 64


def test_refuses_other_configs():
    with pytest.raises(TypeError, match="GPTConfig or a LlamaConfig"):
        count_parameters({"d_model": 768})


def test_parameter_breakdown_of_gpt2_small_and_llama2_7b():
    gpt2 = parameter_breakdown(GPTConfig())
    assert gpt2 == {
        "embeddings": 50257 * 768 + 1024 * 768,
        "attention": 12 * 4 * (768 * 768 + 768),
        "ffn": 12 * (2 * 768 * 3072 + 3072 + 768),
        "norms": 25 * 2 * 768,
        "head": 0,
    }
    assert sum(gpt2.values()) == 124_439_808
    llama = parameter_breakdown(LlamaConfig())
    assert llama["ffn"] == 32 * 3 * 4096 * 11008 and llama["head"] == 32000 * 4096
    assert sum(llama.values()) == count_parameters(LlamaConfig()) == 6_738_415_616


@pytest.mark.parametrize("config", SMALL_CONFIGS)
def test_flops_per_token_equal_the_flop_counter(config):
    torch.manual_seed(0)
    model = (GPT if isinstance(config, GPTConfig) else Llama)(config)
    B, T = 2, 12
    idx = torch.randint(config.vocab_size, (B, T))
    assert count_flops(lambda: model(idx)) == B * T * flops_per_token(config, T)
    training = count_flops(lambda: model(idx, idx)[1].backward())
    assert training == B * T * flops_per_token(config, T, training=True)
    linears = [m for m in model.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert matmul_parameters(config) == sum(m.weight.numel() for m in linears)


def test_breakdown_and_flops_refuse_other_configs():
    with pytest.raises(TypeError, match="GPTConfig or a LlamaConfig"):
        parameter_breakdown(TinyLMConfig(vocab_size=10))
    with pytest.raises(ValueError, match="seq_len: expected a positive int"):
        flops_per_token(GPTConfig(), 0)
