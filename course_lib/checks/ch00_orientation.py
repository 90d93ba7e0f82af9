"""Checkers of notebook 00 · Orientation: vocabulary, a batch of windows, the unigram baseline,
counting parameters."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib.checks._core import (
    as_sequence,
    attempt,
    expect,
    expect_equal,
    expect_number,
    passed,
    to_cpu,
)
from course_lib.data import CharTokenizer

__all__ = ["check_batch_at", "check_build_vocabulary", "check_count_parameters", "check_unigram_loss"]


def check_build_vocabulary(build_vocabulary: Callable[[str], list[str]]) -> None:
    """``build_vocabulary(text)`` must return the sorted list of distinct characters."""
    for text in ("hello world", "To be, or not to be", "aaaa", "Zebra 123!"):
        what = f"build_vocabulary({text!r})"
        got = to_cpu(what, attempt(build_vocabulary, text))
        expect(isinstance(got, (list, tuple)), f"{what} type", "a list", type(got).__name__)
        expect_equal(what, got, list(CharTokenizer.from_text(text).chars))
    passed("the vocabulary is the sorted set of characters, as CharTokenizer builds it.")


def check_batch_at(
    batch_at: Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """``batch_at(tokens, starts, block_size)``: windows ``x`` (B, T) at ``starts``, ``y`` shifted by one."""
    tokens = torch.arange(100, 140)
    for starts, block_size in (([0, 5, 17], 4), ([30, 2], 9), ([39 - 6], 6), ([3, 3, 0, 11], 1)):
        starts_t = torch.tensor(starts)
        call = f"batch_at(tokens, starts=torch.tensor({starts}), block_size={block_size})"
        x, y = as_sequence(call, attempt(batch_at, tokens.clone(), starts_t.clone(), block_size), ("x", "y"))
        offsets = torch.arange(block_size)
        expect_equal(f"x of {call}", x, tokens[starts_t[:, None] + offsets])  # (B, T)
        expect_equal(f"y of {call}", y, tokens[starts_t[:, None] + offsets + 1])  # (B, T)
    passed("row b of x is the window at starts[b], and y is the same window one token later.")


def _unigram_reference(ids: torch.Tensor) -> float:
    """The mean of -log(count(id) / N) over the N ids, in nats."""
    counts = torch.bincount(ids).to(torch.float64)
    probs = counts[ids] / len(ids)  # the frequency of each id, looked up per position
    return -probs.log().mean().item()


def check_unigram_loss(unigram_loss: Callable[[torch.Tensor], float]) -> None:
    """``unigram_loss(ids)``: the loss in nats of predicting every id with the frequencies in ``ids``."""
    cases = {
        "[0, 0, 1, 1]": torch.tensor([0, 0, 1, 1]),
        "[7, 7, 7]": torch.tensor([7, 7, 7]),
        "[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]": torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]),
        "60 ids, 30 of them 0": torch.tensor([0] * 30 + [1] * 15 + [2] * 10 + [3] * 4 + [4]),
    }
    for name, ids in cases.items():
        want = _unigram_reference(ids)
        expect_number(f"unigram_loss({name})", attempt(unigram_loss, ids.clone()), want, rtol=1e-6)
    passed("a model blind to the context pays the entropy of the token frequencies: the baseline to beat.")


def _tied_embedding_and_head() -> torch.nn.Module:
    """nn.Embedding(10, 4) and nn.Linear(4, 10, bias=False) sharing one (10, 4) weight: 40 parameters."""
    embedding = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight  # tied: the state dict lists it twice, parameters() once
    return torch.nn.Sequential(embedding, head)


def _models() -> dict[str, torch.nn.Module]:
    """Small models to count, built with their own seed: the global random state is left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return {
            "nn.Linear(3, 4)": torch.nn.Linear(3, 4),
            "nn.Linear(3, 4, bias=False)": torch.nn.Linear(3, 4, bias=False),
            "a 2-layer MLP": torch.nn.Sequential(
                torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
            ),
            "nn.Embedding(65, 16)": torch.nn.Embedding(65, 16),
            # 8 parameters; its running statistics are 9 more numbers in the state dict, not parameters.
            "nn.BatchNorm1d(4)": torch.nn.BatchNorm1d(4),
            "an embedding and an output layer sharing one weight": _tied_embedding_and_head(),
        }


def check_count_parameters(count_parameters: Callable[[torch.nn.Module], int]) -> None:
    """``count_parameters(model)`` must count every trainable number in the model."""
    for name, model in _models().items():
        got = attempt(count_parameters, model)
        expect_number(f"count_parameters({name})", got, sum(p.numel() for p in model.parameters()))
    passed(
        "a weight matrix (out, in) has out*in numbers and a bias has out; buffers such as BatchNorm's "
        "running statistics are not parameters, and a shared weight counts once."
    )
