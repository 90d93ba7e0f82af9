"""Parallelism and efficiency (notebook 08): why attention parallelizes, FLOPs per token, cached
generation, and attention that never holds the whole score matrix.

- Vaswani et al. 2017, "Attention is all you need", table 1: a self-attention layer needs O(1)
  sequential operations over the sequence, a recurrent layer O(n).
- Kaplan et al. 2020, "Scaling laws for neural language models", table 1: forward FLOPs per token
  ``2 N + 2 n_layer n_ctx d_attn`` (``N`` the non-embedding parameters); a training step costs about
  three forward passes (the backward pass twice the forward), hence ``6 N`` per token.
- Pope et al. 2022, "Efficiently scaling Transformer inference": keys and values of earlier
  positions are cached during generation (the KV cache), so each new token costs one position's
  work instead of the whole prefix's.
- Milakov & Gimelshein 2018, "Online normalizer calculation for softmax": the softmax denominator
  can be accumulated in one pass, rescaling the running sum whenever the running maximum grows.
- Dao et al. 2022, "FlashAttention": the same rescaling applied to the attention output, block of
  keys by block of keys, so the ``(T, S)`` score matrix is never stored.

Shapes inside attention are ``(B, H, T, D)``; masks are boolean with ``True`` = may attend.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from course_lib._validate import check_int, check_positive_int, check_tensor, describe
from course_lib.attention import FLOATS, KVCache, _check_mask_and_bias
from course_lib.models import TinyLM, TinyLMConfig

# --- timing ---------------------------------------------------------------------------------


def _synchronize() -> None:
    """Wait for queued GPU work: CUDA and MPS kernels run asynchronously from Python."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    if torch.backends.mps.is_available():
        torch.mps.synchronize()


def time_fn(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls.

    The first calls pay for one-off work (memory allocation, kernel selection), hence the warmup;
    the median ignores a call slowed down by another process. On a GPU each call is followed by a
    synchronization, so the time is that of the work, not of queueing it.
    """
    check_positive_int(repeats, "repeats")
    check_int(warmup, "warmup")
    for _ in range(warmup):
        fn()
    _synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- a recurrent layer, for comparison --------------------------------------------------------


class StepwiseGRU(nn.Module):
    """A GRU layer that walks the sequence one position at a time: ``h_t = cell(x_t, h_{t-1})``.

    Each step needs the previous one's result, so the ``T`` steps run one after the other however
    many processors there are (Vaswani et al. 2017, table 1: O(n) sequential operations). It
    computes what ``nn.GRU(d_model, d_model, batch_first=True)`` computes, written as the loop.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.cell = nn.GRUCell(check_positive_int(d_model, "d_model"), d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, T, C)`` -> the hidden states ``(B, T, C)``, starting from ``h = 0``."""
        check_tensor(x, "x", ndim=3, dtypes=FLOATS)
        B, T, C = x.shape
        h = x.new_zeros(B, C)
        states = []
        for t in range(T):  # the sequential dependency: step t waits for step t - 1
            h = self.cell(x[:, t], h)
            states.append(h)
        return torch.stack(states, dim=1)  # T x (B, C) -> (B, T, C)


# --- FLOPs -------------------------------------------------------------------------------------


def non_embedding_params(config: TinyLMConfig) -> int:
    """Kaplan et al.'s ``N``: the weights of the attention and feed-forward matmuls of every block.

    Per block: ``C * (C + 2 * H_kv * D)`` for the Q, K, V projections, ``C * C`` for the output
    projection, ``2 * C * d_ff`` for the feed-forward network. Like Kaplan et al., this leaves out
    embeddings, biases and norms (a few per cent at most) and the output head.
    """
    if not isinstance(config, TinyLMConfig):
        raise TypeError(f"config: expected a TinyLMConfig, got {type(config).__name__}")
    C = config.d_model
    kv_width = (config.n_kv_heads or config.n_heads) * (C // config.n_heads)  # H_kv * D
    return config.n_layers * (C * (C + 2 * kv_width) + C * C + 2 * C * config.d_ff)


def transformer_flops_per_token(config: TinyLMConfig, seq_len: int, *, training: bool = False) -> int:
    """Matmul FLOPs per token of a ``TinyLM`` forward pass over sequences of ``seq_len`` tokens.

    Kaplan et al. 2020, table 1, counting one multiply-add as 2 FLOPs:

    - ``2 N`` for the projections and feed-forward networks (``N = non_embedding_params``);
    - ``2 C V`` for the output head (their "de-embed" row);
    - ``4 L T C`` for attention: each query takes a dot product with each of the ``T`` keys
      (``q k^T``) and sums ``T`` values (``weights @ v``), ``2 T C`` FLOPs each per layer. Kaplan
      et al. write ``2 n_layer n_ctx d_attn``, half of this: a kernel that skipped the masked
      half of the causal scores would do that much; the dense kernels compute every score and
      then mask, and ``FlopCounterMode`` counts those.

    Embedding lookups, norms, activations and softmax are not matmuls and are left out.
    ``training=True`` returns three times the forward count, ``6 N`` per token plus the head and
    attention terms: for each matmul of the forward pass the backward pass does two of the same
    size, one for the gradient of its input and one for that of its weights (Kaplan et al. 2020,
    section 2.1).
    """
    n_params = non_embedding_params(config)
    return kaplan_flops_per_token(
        n_params, config.d_model, config.vocab_size, config.n_layers, seq_len, training=training
    )


def kaplan_flops_per_token(
    n_params: int, d_model: int, vocab_size: int, n_layers: int, seq_len: int, *, training: bool = False
) -> int:
    """``2 N + 2 C V + 4 L T C`` matmul FLOPs per token of a forward pass (times 3 with
    ``training=True``), from Kaplan et al.'s ``N`` (the blocks' matmul weights) and the sizes;
    ``transformer_flops_per_token`` explains each term. Any decoder with a ``(C, V)`` head and
    full ``(T, T)`` attention scores fits (GPT-2, Llama: see ``counting.flops_per_token``)."""
    for name, value in (
        ("n_params", n_params),
        ("d_model", d_model),
        ("vocab_size", vocab_size),
        ("n_layers", n_layers),
        ("seq_len", seq_len),
    ):
        check_positive_int(value, name)
    C = d_model
    forward = 2 * n_params + 2 * C * vocab_size + 4 * n_layers * seq_len * C
    return 3 * forward if training else forward


def count_flops(fn: Callable[[], object]) -> int:
    """The FLOPs of the matmuls that ``fn()`` runs, counted by ``torch.utils.flop_counter``.

    Attention goes through PyTorch's math backend while counting: the counter knows the fused
    GPU kernels but not the CPU's, and the math backend's matmuls are counted on any device.
    """
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_flops_per_second(
    n: int = 1024,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
) -> float:
    """FLOP/s of one large ``(n, n) @ (n, n)`` matmul (``2 n^3`` FLOPs) on ``device``.

    A practical ceiling to compare a model's throughput with: close to what the hardware and its
    matmul library reach, without a datasheet number that may not apply (clocks, dtype, TF32).
    """
    check_positive_int(n, "n")
    a = torch.randn(n, n, dtype=dtype).to(device)
    b = torch.randn(n, n, dtype=dtype).to(device)
    return 2 * n**3 / time_fn(lambda: a @ b, repeats=repeats)


# --- generation with and without a KV cache ------------------------------------------------------


@torch.no_grad()
def generate_with(
    model: TinyLM,
    prompt: torch.Tensor,
    n_new: int,
    pick_next: Callable[[torch.Tensor], torch.Tensor],
    *,
    use_cache: bool,
) -> torch.Tensor:
    """Append ``n_new`` tokens to ``prompt (B, T0)``, each chosen by ``pick_next``; returns
    ``(B, T0 + n_new)``.

    ``pick_next`` maps the last position's logits ``(B, V)`` to the next tokens ``(B, 1)``:
    ``argmax`` for greedy decoding (``generate``), a draw for sampling (``sampling.sample``).
    Without a cache, each step runs the model on the whole sequence so far and keeps the last
    position's logits: step ``t`` redoes the work of every earlier position. With a cache, the
    prompt runs once (filling one ``KVCache`` per block) and each later step feeds only the newest
    token, which attends to the cached keys and values. The logits are the same up to rounding;
    only the work differs. The model runs in eval mode (its mode is restored afterwards).
    """
    if not isinstance(model, TinyLM):
        raise TypeError(f"model: expected a TinyLM, got {type(model).__name__}")
    check_tensor(prompt, "prompt", ndim=2, dtypes=(torch.int64, torch.int32))
    if prompt.shape[1] == 0:
        raise ValueError(f"prompt: expected at least one token, got shape {tuple(prompt.shape)}")
    check_positive_int(n_new, "n_new")
    if not callable(pick_next):
        raise TypeError(f"pick_next: expected a function of the logits, got {type(pick_next).__name__}")
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache: expected a bool, got {type(use_cache).__name__}")
    was_training = model.training
    model.eval()
    try:
        tokens = prompt
        caches = [KVCache() for _ in model.blocks] if use_cache else None
        new_input = prompt  # what the model has not seen yet
        for _ in range(n_new):
            logits, _ = model(new_input if use_cache else tokens, caches=caches)
            next_token = pick_next(logits[:, -1])  # (B, V) -> (B, 1)
            if not isinstance(next_token, torch.Tensor) or next_token.dtype not in (torch.int64, torch.int32):
                raise TypeError(
                    f"pick_next: expected an int64/int32 tensor of token ids, got {describe(next_token)}"
                )
            if next_token.shape != (len(tokens), 1):
                raise ValueError(
                    f"pick_next: expected token ids of shape ({len(tokens)}, 1), got {describe(next_token)}"
                )
            if next_token.min() < 0 or next_token.max() >= model.config.vocab_size:
                raise ValueError(
                    f"pick_next: expected ids in [0, {model.config.vocab_size}), "
                    f"got {next_token.min().item()}..{next_token.max().item()}"
                )
            next_token = next_token.to(tokens.device, tokens.dtype)
            tokens = torch.cat([tokens, next_token], dim=1)
            new_input = next_token
    finally:
        model.train(was_training)
    return tokens


def generate(model: TinyLM, prompt: torch.Tensor, n_new: int, use_cache: bool) -> torch.Tensor:
    """Greedy generation: append ``n_new`` tokens to ``prompt (B, T0)``; returns ``(B, T0 + n_new)``.

    Each new token is the ``argmax`` of the last position's logits; ``generate_with`` runs the
    loop, with (``use_cache=True``) or without a KV cache. The tokens are the same either way up
    to rounding (identical in the tests).
    """
    return generate_with(model, prompt, n_new, _argmax_next, use_cache=use_cache)


def _argmax_next(logits: torch.Tensor) -> torch.Tensor:
    """Greedy choice: logits ``(B, V)`` -> the most likely token ids ``(B, 1)``."""
    return logits.argmax(dim=-1, keepdim=True)


# --- attention without the (T, S) score matrix ---------------------------------------------------


def online_softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    block_size: int = 64,
    query_block_size: int | None = None,
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(D)) v`` computed one block of keys at a time (FlashAttention's loop).

    For each query row it keeps a running maximum ``m``, a running denominator ``denom`` and an
    unnormalised output ``acc``. A new block of scores ``s`` (``block_size`` keys) updates them::

        m_new = max(m, max_j s_j)
        denom = denom * exp(m - m_new) + sum_j exp(s_j - m_new)
        acc   = acc * exp(m - m_new) + sum_j exp(s_j - m_new) v_j

    and at the end ``out = acc / denom`` (Milakov & Gimelshein 2018; Dao et al. 2022). Only a
    ``(T, block_size)`` block of scores exists at a time, or ``(query_block_size, block_size)``
    when the queries are split into blocks too. (This is the forward pass written in PyTorch, to
    read, not a fast kernel: autograd through it stores every block. FlashAttention recomputes
    the blocks in its backward pass instead.)

    Args:
        q: queries ``(B, H, T, D)``; k: keys ``(B, H, S, D)``; v: values ``(B, H, S, Dv)``.
        mask: boolean, broadcastable to ``(B, H, T, S)`` without changing that shape (``(T, S)``,
            ``(B, 1, 1, S)``, ``(B, 1, T, S)``); ``True`` = may attend.
        block_size: keys per block (the last block may be shorter).
        query_block_size: queries per block; ``None`` takes all ``T`` queries at once.

    Returns:
        ``out (B, H, T, Dv)``, equal to ``attention.scaled_dot_product_attention`` up to rounding.
        A query with no allowed key gets an all-zero output, as there (``denom`` stays 0).
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(x, name, ndim=4, dtypes=FLOATS)
    B, H, T, D = q.shape
    S = k.shape[2]
    if k.shape[:2] != (B, H) or v.shape[:3] != k.shape[:3] or k.shape[3] != D:
        raise ValueError(
            f"q, k, v: expected (B, H, T, D), (B, H, S, D), (B, H, S, Dv), got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    _check_mask_and_bias(mask, None, torch.Size((B, H, T, S)), q.device)
    check_positive_int(block_size, "block_size")
    query_block_size = (
        T if query_block_size is None else check_positive_int(query_block_size, "query_block_size")
    )
    if mask is not None:
        mask = mask.expand(B, H, T, S)  # a view: slicing a block of it copies nothing
    q = q / math.sqrt(D)
    out = q.new_empty(B, H, T, v.shape[3])
    for t0 in range(0, T, query_block_size):
        t1 = min(t0 + query_block_size, T)
        q_block = q[:, :, t0:t1]  # (B, H, Tb, D)
        m = q.new_full((B, H, t1 - t0, 1), float("-inf"))  # running maximum of the scores
        denom = q.new_zeros(B, H, t1 - t0, 1)  # running sum of exp(score - m)
        acc = q.new_zeros(B, H, t1 - t0, v.shape[3])  # running sum of exp(score - m) * v
        for s0 in range(0, S, block_size):
            s1 = min(s0 + block_size, S)
            s = q_block @ k[:, :, s0:s1].transpose(-2, -1)  # (B, H, Tb, Sb): one block of scores
            if mask is not None:
                s = s.masked_fill(~mask[:, :, t0:t1, s0:s1], float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            # A row with no allowed key yet has m_new = -inf; subtracting 0 instead keeps exp(-inf) = 0
            # where -inf - (-inf) would give NaN.
            m_safe = m_new.masked_fill(m_new == float("-inf"), 0.0)
            p = torch.exp(s - m_safe)  # (B, H, Tb, Sb)
            rescale = torch.exp(m - m_safe)  # (B, H, Tb, 1): the old sums were relative to m
            denom = denom * rescale + p.sum(dim=-1, keepdim=True)
            acc = acc * rescale + p @ v[:, :, s0:s1]
            m = m_new
        out[:, :, t0:t1] = acc / denom.masked_fill(denom == 0, 1.0)  # no allowed key: acc = 0, out = 0
    return out


def attention_scores_bytes(
    batch: int, heads: int, n_queries: int, n_keys: int, dtype: torch.dtype = torch.float32
) -> int:
    """Bytes of one ``(B, H, T, S)`` matrix of scores: naive attention holds the scores and the
    softmax weights, ``2 x`` this; a blocked one holds ``(B, H, T_block, S_block)`` at a time."""
    for name, value in (("batch", batch), ("heads", heads), ("n_queries", n_queries), ("n_keys", n_keys)):
        check_positive_int(value, name)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype: expected a torch.dtype, got {type(dtype).__name__}")
    return batch * heads * n_queries * n_keys * dtype.itemsize


@contextlib.contextmanager
def _silenced_stderr() -> Iterator[None]:
    """Send what C++ code writes to file descriptor 2 to ``os.devnull`` for the ``with`` block.

    The profiler's library (Kineto) prints ``profiler_start`` and ``profiler_stop`` lines there,
    below Python's ``sys.stderr``, so ``contextlib.redirect_stderr`` cannot catch them; in a
    notebook they would land in the cell's output. The descriptor is restored afterwards, even
    when the block raises, so a Python error still reaches the learner.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """The most memory that ``fn()`` had allocated on ``device`` at one time, measured.

    ``torch.profiler`` with ``profile_memory=True`` records every allocation and free of the
    allocator on the CPU and on CUDA GPUs (the CPU has no ``torch.cuda.max_memory_allocated``).
    Replaying them in time order gives the memory in use after each event; the peak is its
    maximum. Only what ``fn`` allocates counts (its inputs were allocated before), its result
    included. On a CUDA GPU the result agrees with ``torch.cuda.max_memory_allocated`` measured
    from a reset. Tensors that ``fn`` keeps alive elsewhere count until the end.
    """
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: the profiler records allocations on 'cpu' and 'cuda', got {device}")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _synchronize()
    with _silenced_stderr(), profile(activities=activities, profile_memory=True) as prof:
        fn()
        _synchronize()
    events = [
        event
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type().name == device.type.upper()
    ]
    in_use = peak = 0
    for event in sorted(events, key=lambda event: event.start_ns()):
        in_use += event.nbytes()  # > 0 for an allocation, < 0 for a free
        peak = max(peak, in_use)
    return peak
