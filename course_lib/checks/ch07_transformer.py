"""Checkers of notebook 07 · The Transformer: the decoder's input for teacher forcing, a single-head
cross-attention with a padded source, one step of beam search, and a Pre-LN decoder layer written
from its sublayers (Vaswani et al. 2017; Xiong et al. 2020 for Pre-LN).

The references are PyTorch's ``F.scaled_dot_product_attention`` and course_lib's ``DecoderLayer``
(itself checked against ``torch.nn.TransformerDecoderLayer`` in the tests). Cases use sources and
targets of different lengths, so that keys taken from the wrong sequence show up as a wrong shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.attention import padding_mask
from course_lib.checks._core import (
    as_sequence,
    attempt,
    expect_close,
    expect_equal,
    passed,
    seeded_randn,
)
from course_lib.transformer import DecoderLayer

__all__ = ["check_beam_step", "check_cross_attention", "check_pre_ln_decoder_layer", "check_shift_right"]

PAD, BOS, EOS = 0, 1, 2


def _targets(seed: int, B: int, T: int, V: int) -> torch.Tensor:
    """``(B, T)`` ids: random characters, then EOS and PAD after each row's length."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (B, T), generator=generator)
    lengths = torch.randint(1, T, (B,), generator=generator)
    positions = torch.arange(T)[None, :]
    ids = torch.where(positions == lengths[:, None], EOS, ids)
    return torch.where(positions > lengths[:, None], PAD, ids)


def check_shift_right(shift_right: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """``shift_right(targets (B, T), bos) -> (B, T)``: BOS, then ``targets`` without its last column."""
    for seed, (B, T, V, bos) in enumerate(((3, 6, 10, BOS), (2, 4, 7, 5), (1, 9, 20, 3))):
        targets = _targets(70 + seed, B, T, V)
        want = torch.cat([torch.full((B, 1), bos), targets[:, :-1]], dim=1)
        got = attempt(shift_right, targets.clone(), bos)
        expect_equal(f"shift_right(targets of shape {(B, T)}, bos={bos})", got, want)
    passed(
        "position t of the decoder's input holds target t - 1, "
        "so the decoder predicts target t from the ones before it."
    )


def _cross_attention(
    x: torch.Tensor,
    memory: torch.Tensor,
    W_q: torch.Tensor,
    W_k: torch.Tensor,
    W_v: torch.Tensor,
    src_pad_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    q, k, v = x @ W_q, memory @ W_k, memory @ W_v  # (B, T, D), (B, S, D), (B, S, D)
    mask = src_pad_mask[:, 0]  # (B, 1, 1, S) -> (B, 1, S): the same for every query
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).masked_fill(~mask, float("-inf"))
    return out, scores.softmax(dim=-1)


def check_cross_attention(cross_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``cross_attention(x, memory, W_q, W_k, W_v, src_pad_mask) -> (out (B, T, D), weights (B, T, S))``
    with queries from ``x (B, T, C)``, keys and values from ``memory (B, S, C)``, and the source
    padding mask ``(B, 1, 1, S)`` (``True`` on real source tokens)."""
    for seed, (B, T, S, C, D, lengths) in enumerate(((2, 3, 5, 8, 4, [5, 3]), (3, 4, 6, 6, 6, [2, 6, 4]))):
        x, memory = seeded_randn(B, T, C, seed=71 + seed), seeded_randn(B, S, C, seed=72 + seed)
        W_q, W_k, W_v = (seeded_randn(C, D, seed=73 + seed + i) for i in range(3))
        mask = padding_mask(torch.tensor(lengths), S)  # (B, 1, 1, S)
        what = f"cross_attention with T={T} target and S={S} source positions, source lengths {lengths}"
        answer = attempt(
            cross_attention, x.clone(), memory.clone(), W_q.clone(), W_k.clone(), W_v.clone(), mask.clone()
        )
        out, weights = as_sequence(what, answer, ("out", "weights"))
        want_out, want_weights = _cross_attention(x, memory, W_q, W_k, W_v, mask)
        expect_close(f"{what}: weights", weights, want_weights)
        expect_close(f"{what}: out", out, want_out)
    passed("queries from the target, keys and values from the source, and padded source tokens get weight 0.")


def _beam_step(
    log_probs: torch.Tensor, scores: torch.Tensor, beam_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    V = log_probs.shape[1]
    new_scores, flat = (scores[:, None] + log_probs).flatten().topk(beam_size)  # best first
    return flat // V, flat % V, new_scores


def check_beam_step(beam_step: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
    """``beam_step(log_probs (K, V), scores (K,), beam_size) -> (beams, tokens, new_scores)``, each
    ``(beam_size,)``, best first: the ``beam_size`` best one-token extensions of ``K`` hypotheses."""
    cases = (  # (K, V, beam_size, spread of the running scores)
        (1, 6, 3, 0.0),  # the first step: one hypothesis (BOS)
        (3, 5, 3, 0.3),  # close running scores: the best extensions come from different beams
        (4, 7, 4, 4.0),  # one hypothesis far ahead: it supplies most of the best extensions
        (2, 9, 5, 1.0),  # a beam wider than the number of hypotheses
    )
    for seed, (K, V, beam_size, spread) in enumerate(cases):
        log_probs = (2 * seeded_randn(K, V, seed=80 + seed)).log_softmax(dim=-1)
        scores = -spread * torch.arange(K, dtype=torch.float64) - seeded_randn(K, seed=90 + seed).abs()
        shown = [round(s, 2) for s in scores.tolist()]
        what = f"beam_step(log_probs of shape {(K, V)}, scores {shown}, {beam_size})"
        answer = attempt(beam_step, log_probs.clone(), scores.clone(), beam_size)
        beams, tokens, new_scores = as_sequence(what, answer, ("beams", "tokens", "new_scores"))
        want_beams, want_tokens, want_scores = _beam_step(log_probs, scores, beam_size)
        expect_close(f"{what}: new_scores (best first)", new_scores, want_scores)
        expect_equal(f"{what}: beams", beams, want_beams)
        expect_equal(f"{what}: tokens", tokens, want_tokens)
    passed(
        "a hypothesis's score is its running sum plus the new token's log-prob, "
        "ranked over all K x V extensions at once."
    )


def _decoder_case(seed: int) -> tuple[DecoderLayer, DecoderLayer]:
    """A Post-LN layer with random LayerNorm gains and biases, and a Pre-LN layer with its weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        post = DecoderLayer(8, 2, 16, placement="post").double()
        pre = DecoderLayer(8, 2, 16, placement="pre").double()
        with torch.no_grad():
            for norm in (post.norm1, post.norm2, post.norm3):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.5, 0.5)
    pre.load_state_dict(post.state_dict())
    return post.eval(), pre.eval()


def check_pre_ln_decoder_layer(pre_ln_decoder_layer: Callable[..., torch.Tensor]) -> None:
    """``pre_ln_decoder_layer(x (B, T, C), memory (B, S, C), layer, src_pad_mask (B, 1, 1, S)) -> (B, T, C)``:
    a Pre-LN decoder layer computed from ``layer``'s sublayers (``self_attn``, ``cross_attn``, ``ffn``,
    ``norm1``, ``norm2``, ``norm3``), with the causal mask on the self-attention."""
    B, T, S = 2, 5, 7
    post, pre = _decoder_case(74)
    x, memory = seeded_randn(B, T, 8, seed=75), seeded_randn(B, S, 8, seed=76)
    mask = padding_mask(torch.tensor([7, 4]), S)  # (B, 1, 1, S)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    with torch.no_grad():
        want = pre(x, memory, causal, mask)[0]
        got = attempt(pre_ln_decoder_layer, x.clone(), memory.clone(), post, mask.clone())
    expect_close(
        f"pre_ln_decoder_layer(x of shape {(B, T, 8)}, memory of shape {(B, S, 8)}, layer, "
        "source lengths [7, 4])",
        got,
        want,
    )
    passed("each sublayer reads a normalized copy and adds its output to an untouched residual stream.")
