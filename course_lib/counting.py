"""Counting parameters from a config, without building the model (notebook 09).

Every weight of a decoder is a matrix or a vector whose size the config fixes, so the count is a
short sum. Published sizes to check against: GPT-2 small has 124,439,808 parameters (Radford et
al. 2019 rounded it to "117M"), Llama 2 7B has 6,738,415,616 (Touvron et al. 2023).
"""

from __future__ import annotations

from course_lib._validate import describe
from course_lib.gpt import GPTConfig
from course_lib.llama import LlamaConfig


def gpt_parameters(config: GPTConfig) -> int:
    """Parameters of ``GPT(config)``; the head is tied to the token embedding, so it adds none."""
    C, V, F = config.d_model, config.vocab_size, config.ffn_width
    attention = 4 * (C * C + C)  # W_q, W_k, W_v, W_o with their biases
    mlp = (C * F + F) + (F * C + C)  # up and down, with biases
    norms = 2 * 2 * C  # two LayerNorms (weight and bias)
    embeddings = V * C + config.n_positions * C  # tokens and learned positions
    return embeddings + config.n_layers * (attention + mlp + norms) + 2 * C  # + final LayerNorm


def llama_parameters(config: LlamaConfig) -> int:
    """Parameters of ``Llama(config)``: no biases; K and V have ``n_kv_heads * head_dim`` outputs."""
    C, V, F = config.d_model, config.vocab_size, config.d_ff
    kv_width = config.kv_heads * (C // config.n_heads)
    attention = 2 * C * C + 2 * C * kv_width  # W_q, W_o (C x C) and W_k, W_v (C x kv_width)
    mlp = 3 * C * F  # gate, up and down
    norms = 2 * C  # two RMSNorms (weight only)
    head = 0 if config.tie_embeddings else V * C
    return V * C + config.n_layers * (attention + mlp + norms) + C + head  # + final RMSNorm


def count_parameters(config: GPTConfig | LlamaConfig) -> int:
    """The number of parameters of the model ``config`` describes (tied weights counted once)."""
    if isinstance(config, GPTConfig):
        return gpt_parameters(config)
    if isinstance(config, LlamaConfig):
        return llama_parameters(config)
    raise TypeError(f"config: expected a GPTConfig or a LlamaConfig, got {describe(config)}")
