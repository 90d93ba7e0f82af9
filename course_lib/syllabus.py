"""The syllabus of the course: one table that the README, the book and notebook 00 agree on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


@dataclass(frozen=True)
class Chapter:
    number: int  # the NN in notebooks/NN_slug.ipynb
    slug: str  # the rest of the file name
    title: str  # the title after '# NN · ' in the notebook
    part: str  # the group of chapters it belongs to
    takeaway: str  # what the learner leaves with

    @property
    def filename(self) -> str:
        return f"{self.number:02d}_{self.slug}.ipynb"

    @property
    def written(self) -> bool:
        """True once the notebook exists in ``notebooks/``."""
        return (NOTEBOOK_DIR / self.filename).exists()


SYLLABUS: tuple[Chapter, ...] = (
    Chapter(
        0,
        "orientation",
        "Orientation",
        "Foundations",
        "how to run the course, devices, course_lib, the exercises and the notation",
    ),
    Chapter(
        1,
        "forward_backward",
        "Forward and backward propagation",
        "Foundations",
        "forward pass, loss, backpropagation by hand, gradient check, autograd, SGD to AdamW and schedules",
    ),
    Chapter(
        2,
        "attention",
        "Attention",
        "Attention",
        "soft lookup, alignment scores, a trained alignment, scaled dot-product, why 1/sqrt(d_k), masks",
    ),
    Chapter(
        3,
        "self_attention",
        "Self-attention",
        "Attention",
        "Q, K, V from one sequence, a worked example, permutation equivariance",
    ),
    Chapter(
        4,
        "multi_head_attention",
        "Multi-head attention, MQA and GQA",
        "Attention",
        "heads, MHA vs MQA vs GQA, KV-cache memory, parity with nn.MultiheadAttention",
    ),
    Chapter(
        5,
        "positional_encoding",
        "Positional encoding",
        "The block",
        "sinusoidal, learned, RoPE, ALiBi, extrapolation, interpolation and NTK",
    ),
    Chapter(
        6,
        "normalization",
        "Normalization and residuals",
        "The block",
        "LayerNorm vs RMSNorm, Post-LN, Pre-LN, Sandwich-LN, DeepNorm, warmup",
    ),
    Chapter(
        7,
        "transformer",
        "The Transformer",
        "The block",
        "encoder, decoder, cross-attention, a trained seq2seq model",
    ),
    Chapter(
        8,
        "parallelism_and_efficiency",
        "Parallelism and efficiency",
        "Scale",
        "attention vs an RNN, KV cache, online-softmax attention, data parallel",
    ),
    Chapter(
        9,
        "architectures",
        "Architectures",
        "Scale",
        "encoder-only, decoder-only, encoder-decoder, prefix LM, the modern block",
    ),
    Chapter(
        10,
        "bert",
        "BERT: masked language modelling",
        "Pre-training",
        "bidirectional mask, masked LM, a tiny BERT, real pretrained weights",
    ),
    Chapter(
        11,
        "gpt",
        "GPT: next-token prediction",
        "Pre-training",
        "causal mask, next-token prediction, a tiny GPT, sampling, perplexity",
    ),
    Chapter(
        12,
        "glm",
        "GLM: autoregressive blank infilling",
        "Pre-training",
        "prefix mask, blank infilling, 2D positions, a tiny GLM",
    ),
    Chapter(
        13,
        "objectives_compared",
        "The objectives compared",
        "Pre-training",
        "the three masks and objectives on the same data and budget",
    ),
)
