"""Counting parameters and FLOPs from a config, without building the model (notebook 09).

Every weight of a decoder is a matrix or a vector whose size the config fixes, so the count is a
short sum. Published sizes to check against: GPT-2 small has 124,439,808 parameters (the GPT-2
paper's "117M" was a miscount, corrected by OpenAI to 124M), Llama 2 7B has 6,738,415,616
(Touvron et al. 2023).

FLOPs per token follow Kaplan et al. 2020 (table 1, with both attention products over all ``T``
keys, as in notebook 08), ``2 N + 2 C V + 4 L T C`` with ``N`` the
blocks' matmul weights (``efficiency.kaplan_flops_per_token``); for Llama ``N`` counts the
smaller K and V of grouped-query attention and the three matrices of SwiGLU.
"""

from __future__ import annotations

from course_lib._validate import describe
from course_lib.efficiency import kaplan_flops_per_token
from course_lib.gpt import GPTConfig
from course_lib.llama import LlamaConfig

PARTS = ("embeddings", "attention", "ffn", "norms", "head")


def _check_config(config: object) -> GPTConfig | LlamaConfig:
    if not isinstance(config, (GPTConfig, LlamaConfig)):
        raise TypeError(f"config: expected a GPTConfig or a LlamaConfig, got {describe(config)}")
    return config


def parameter_breakdown(config: GPTConfig | LlamaConfig) -> dict[str, int]:
    """Parameters of ``GPT(config)`` or ``Llama(config)`` by part, in the order of ``PARTS``.

    ``embeddings``: tokens (and GPT-2's learned positions); ``attention``: ``W_q, W_k, W_v, W_o``
    (GPT-2 with biases; Llama without, K and V with ``n_kv_heads * head_dim`` outputs); ``ffn``:
    GPT-2's ``up`` and ``down`` with biases, Llama's ``gate``, ``up``, ``down``; ``norms``: two per
    block and a final one (LayerNorm: weight and bias, RMSNorm: weight); ``head``: 0 when tied to
    the token embedding (GPT-2 always, Llama when ``tie_embeddings``), else ``V * C``.
    """
    c = _check_config(config)
    C, V, L = c.d_model, c.vocab_size, c.n_layers
    if isinstance(c, GPTConfig):
        F = c.ffn_width
        return {
            "embeddings": V * C + c.n_positions * C,
            "attention": L * 4 * (C * C + C),
            "ffn": L * ((C * F + F) + (F * C + C)),
            "norms": (2 * L + 1) * 2 * C,
            "head": 0,
        }
    kv_width = c.kv_heads * (C // c.n_heads)
    return {
        "embeddings": V * C,
        "attention": L * (2 * C * C + 2 * C * kv_width),
        "ffn": L * 3 * C * c.d_ff,
        "norms": (2 * L + 1) * C,
        "head": 0 if c.tie_embeddings else V * C,
    }


def count_parameters(config: GPTConfig | LlamaConfig) -> int:
    """The number of parameters of the model ``config`` describes (tied weights counted once)."""
    return sum(parameter_breakdown(config).values())


def matmul_parameters(config: GPTConfig | LlamaConfig) -> int:
    """Kaplan et al.'s ``N``: the weights of the blocks' matrix products (no biases, norms,
    embeddings or head). Per block ``C (C + 2 H_kv D) + C^2`` for attention, ``2 C d_ff`` for
    GPT-2's MLP and ``3 C d_ff`` for SwiGLU."""
    c = _check_config(config)
    C = c.d_model
    if isinstance(c, GPTConfig):
        return c.n_layers * (4 * C * C + 2 * C * c.ffn_width)
    kv_width = c.kv_heads * (C // c.n_heads)
    return c.n_layers * (2 * C * C + 2 * C * kv_width + 3 * C * c.d_ff)


def flops_per_token(config: GPTConfig | LlamaConfig, seq_len: int, *, training: bool = False) -> int:
    """Matmul FLOPs per token of a forward pass over ``seq_len`` tokens: ``2 N + 2 C V + 4 L T C``
    (Kaplan et al. 2020, with every attention score counted, as dense kernels compute them);
    three times that with ``training=True``."""
    c = _check_config(config)
    return kaplan_flops_per_token(
        matmul_parameters(c), c.d_model, c.vocab_size, c.n_layers, seq_len, training=training
    )
