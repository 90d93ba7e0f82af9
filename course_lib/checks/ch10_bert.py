"""Checkers of notebook 10 · BERT: what BERT's 80/10/10 rule does to one position, mean pooling
over the real tokens of a padded batch (Reimers & Gurevych 2019, Sentence-BERT), and whole-word
masking, where every WordPiece of a chosen word is chosen (the rule of BERT's released
"whole word masking" models, Devlin et al. 2019, GitHub README).

The probabilities are checked with small vocabularies, where a random replacement often draws
the original token or ``[MASK]`` itself; mean pooling against ``course_lib.pretrained.mean_pool``;
whole-word masking against a reference on rows with words of one or more pieces.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib.attention import padding_mask
from course_lib.checks._core import (
    as_sequence,
    as_tensor,
    attempt,
    expect,
    expect_close,
    expect_equal,
    passed,
    seeded_randn,
)
from course_lib.pretrained import mean_pool

__all__ = ["check_mlm_outcomes", "check_mean_pool", "check_whole_word_mask"]


def _mlm_outcomes(mask_prob: float, vocab_size: int) -> tuple[float, float, float]:
    random = 0.1 * mask_prob / vocab_size  # a random draw of one particular id
    p_mask = 0.8 * mask_prob + random  # the random draw may be [MASK] itself
    p_changed = 0.1 * mask_prob - 2 * random  # neither the original nor [MASK]
    p_same = 0.1 * mask_prob + random  # left alone, or the random draw is the original
    return p_mask, p_changed, p_same


def check_mlm_outcomes(mlm_outcomes: Callable[[float, int], tuple[float, float, float]]) -> None:
    """``mlm_outcomes(mask_prob, vocab_size) -> (p_mask, p_changed, p_same)`` for one ordinary
    position under ``objectives.mlm_mask``: its input becomes ``[MASK]``; becomes another token that
    is not ``[MASK]``; or is predicted while its input is still the original token."""
    for mask_prob, vocab_size in ((0.15, 30522), (0.15, 5), (0.5, 3), (1.0, 10), (0.2, 1000)):
        what = f"mlm_outcomes({mask_prob}, {vocab_size})"
        answer = attempt(mlm_outcomes, mask_prob, vocab_size)
        got = as_sequence(what, answer, ("p_mask", "p_changed", "p_same"))
        names, wants = ("p_mask", "p_changed", "p_same"), _mlm_outcomes(mask_prob, vocab_size)
        for name, value, want in zip(names, got, wants, strict=True):
            expect_close(f"{what}: {name}", value, want, atol=1e-9)
    passed(
        "the random 10% draws from all V ids, so it sometimes gives back the original token "
        "(or [MASK]); with V = 30522 that changes almost nothing."
    )


def check_mean_pool(mean_pool_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``mean_pool(hidden (B, T, C), lengths (B,)) -> (B, C)``: each row's mean over its first
    ``lengths[b]`` positions (the real tokens); the padding after them counts for nothing."""
    for seed, (B, T, C, lengths) in enumerate(((2, 5, 3, [5, 2]), (3, 4, 6, [1, 4, 3]), (1, 3, 2, [3]))):
        hidden = seeded_randn(B, T, C, seed=100 + seed)
        hidden[:, :, :] += 10 * (torch.arange(T, dtype=torch.float64) >= 2)[None, :, None]  # loud padding
        lengths_t = torch.tensor(lengths)
        what = f"mean_pool(hidden of shape {(B, T, C)}, lengths {lengths})"
        got = attempt(mean_pool_fn, hidden.clone(), lengths_t.clone())
        expect_close(what, got, mean_pool(hidden, padding_mask(lengths_t, T)))
    passed("a padded sentence gets the same vector as the sentence alone: padding never enters the mean.")


def _whole_word_mask(is_start: torch.Tensor, draws: torch.Tensor, mask_prob: float) -> torch.Tensor:
    T = is_start.shape[1]
    starts = torch.where(is_start, torch.arange(T), 0)  # (B, T): a position's index if it starts a word
    first_piece = starts.cummax(dim=1).values  # (B, T): where each position's word starts
    return draws.gather(1, first_piece) < mask_prob


def _pieces(seed: int, B: int, T: int) -> torch.Tensor:
    """``(B, T)`` bool: True where a word starts; words of one or more pieces; position 0 starts one."""
    generator = torch.Generator().manual_seed(seed)
    is_start = torch.rand(B, T, generator=generator) < 0.45
    is_start[:, 0] = True
    return is_start


def check_whole_word_mask(
    whole_word_mask: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
) -> None:
    """``whole_word_mask(is_start (B, T) bool, draws (B, T), mask_prob) -> chosen (B, T) bool``:
    a word is chosen when the draw at its first piece is below ``mask_prob``; then all of its
    pieces are chosen. ``is_start[b, t]`` is True unless token ``t`` is a ``##`` continuation."""
    for seed, (B, T, mask_prob) in enumerate(((1, 8, 0.5), (3, 12, 0.3), (2, 20, 0.5))):
        is_start = _pieces(110 + seed, B, T)
        draws = torch.rand(B, T, generator=torch.Generator().manual_seed(120 + seed), dtype=torch.float64)
        what = f"whole_word_mask(is_start of shape {(B, T)}, draws, {mask_prob})"
        got = attempt(whole_word_mask, is_start.clone(), draws.clone(), mask_prob)
        chosen = as_tensor(what, got)
        expect(chosen.dtype == torch.bool, f"{what} dtype", "torch.bool", chosen.dtype)
        expect_equal(what, chosen, _whole_word_mask(is_start, draws, mask_prob))
    passed("each word is kept or masked as a whole: no '##' piece is left to give its word away.")
