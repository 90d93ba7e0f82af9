"""Checkers of notebook 00 · Orientation: vocabulary, next-token targets, counting parameters."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib.checks._core import as_sequence, attempt, expect, expect_equal, expect_number, passed, to_cpu
from course_lib.data import CharTokenizer

__all__ = ["check_build_vocabulary", "check_count_parameters", "check_shift_targets"]


def check_build_vocabulary(build_vocabulary: Callable[[str], list[str]]) -> None:
    """``build_vocabulary(text)`` must return the sorted list of distinct characters."""
    for text in ("hello world", "To be, or not to be", "aaaa", "Zebra 123!"):
        what = f"build_vocabulary({text!r})"
        got = to_cpu(what, attempt(build_vocabulary, text))
        expect(isinstance(got, (list, tuple)), f"{what} type", "a list", type(got).__name__)
        expect_equal(what, got, list(CharTokenizer.from_text(text).chars))
    passed("the vocabulary is the sorted set of characters, as CharTokenizer builds it.")


def check_shift_targets(shift_targets: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``shift_targets(ids)`` must return ``(ids[:-1], ids[1:])``."""
    for ids in (torch.tensor([5, 1, 4, 1, 5, 9]), torch.arange(10, 20), torch.tensor([7, 3])):
        x, y = as_sequence("shift_targets result", attempt(shift_targets, ids.clone()), ("x", "y"))
        expect_equal(f"x for {ids.tolist()}", x, ids[:-1])
        expect_equal(f"y for {ids.tolist()}", y, ids[1:])
    passed("each target is the token that follows its input: next-token prediction.")


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
        }


def check_count_parameters(count_parameters: Callable[[torch.nn.Module], int]) -> None:
    """``count_parameters(model)`` must count every trainable number in the model."""
    for name, model in _models().items():
        got = attempt(count_parameters, model)
        expect_number(f"count_parameters({name})", got, sum(p.numel() for p in model.parameters()))
    passed("a weight matrix (out, in) has out*in numbers and a bias has out.")
