"""Turning a language model's logits into text (notebook 11): greedy decoding and sampling with a
temperature, top-k and top-p (nucleus) filters.

- Temperature: ``softmax(z / tau)`` is the Boltzmann distribution at temperature ``tau`` (Ackley,
  Hinton & Sejnowski 1985, "A learning algorithm for Boltzmann machines", whose units are on with
  probability ``1 / (1 + exp(-dE / T))``): ``tau < 1`` sharpens the distribution towards the
  argmax, ``tau > 1`` flattens it towards uniform.
- Top-k: sample only among the ``k`` most likely tokens (Fan, Lewis & Dauphin 2018,
  "Hierarchical neural story generation", who sample from the top 10).
- Top-p, nucleus sampling (Holtzman, Buys, Du, Forbes & Choi 2020, "The curious case of neural
  text degeneration", section 3.1): sample only among the smallest set of most likely tokens whose
  probabilities add up to at least ``p``; the set grows when the model is unsure and shrinks when
  it is confident, where top-k keeps ``k`` whatever the shape.

The filters are pure functions on logits ``(..., V)`` that return logits of the same shape, with
``-inf`` on the removed tokens; they match Hugging Face's ``TemperatureLogitsWarper``,
``TopKLogitsWarper`` and ``TopPLogitsWarper``, and ``sampling_distribution`` applies them in the
order Hugging Face's ``generate`` does: temperature, then top-k, then top-p.
"""

from __future__ import annotations

import math

import torch

from course_lib._validate import check_number, check_positive_int, check_tensor, describe
from course_lib.attention import FLOATS
from course_lib.efficiency import generate, generate_with
from course_lib.models import TinyLM


def _check_logits(logits: object) -> torch.Tensor:
    """``logits`` must be a floating-point tensor ``(..., V)`` with ``V >= 1``."""
    check_tensor(logits, "logits", dtypes=FLOATS)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    return logits


def _check_temperature(temperature: object) -> float:
    value = check_number(temperature, "temperature")
    if not (0 < value < math.inf):
        raise ValueError(
            f"temperature: expected a finite number > 0, got {temperature!r} "
            "(for the argmax, the limit tau -> 0, use greedy decoding)"
        )
    return value


def _check_top_p(p: object, name: str = "p") -> float:
    value = check_number(p, name)
    if not 0 < value <= 1:
        raise ValueError(f"{name}: expected a number in (0, 1], got {p!r}")
    return value


def _check_sampling_options(temperature: object, top_k: object, top_p: object) -> None:
    """The options of ``sampling_distribution`` and ``sample``, checked under their own names."""
    _check_temperature(temperature)
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    if top_p is not None:
        _check_top_p(top_p, "top_p")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``: logits ``(..., V)`` -> ``(..., V)``.

    ``softmax(z / tau)``: ``tau = 1`` leaves the distribution alone, ``tau < 1`` sharpens it
    (``tau -> 0`` gives the argmax), ``tau > 1`` flattens it (``tau -> inf`` gives uniform).
    The order of the tokens never changes, so neither does the argmax.
    """
    _check_logits(logits)
    return logits / _check_temperature(temperature)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the others to ``-inf``: ``(..., V)`` -> ``(..., V)``.

    Ties: every token whose logit equals the ``k``-th largest is kept, so a row may keep more than
    ``k`` tokens (as Hugging Face's ``TopKLogitsWarper``: it removes the logits strictly below the
    ``k``-th largest). ``k >= V`` keeps every token.
    """
    _check_logits(logits)
    k = min(check_positive_int(k, "k"), logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probabilities add up to at
    least ``p`` (and at least ``min_tokens_to_keep`` tokens), set the others to ``-inf``.

    Logits ``(..., V)`` -> ``(..., V)``. As Hugging Face's ``TopPLogitsWarper``: sort each row in
    ascending order, take the running sum of the probabilities ``softmax(logits)``, and remove the
    tokens whose running sum is ``<= 1 - p`` (the least likely tokens, together worth at most
    ``1 - p``); the others are worth at least ``p``. Tokens with equal logits on the boundary are
    kept or removed in the order ``torch.sort`` puts them. ``p = 1`` keeps every token with a
    nonzero probability.
    """
    _check_logits(logits)
    p = _check_top_p(p)
    check_positive_int(min_tokens_to_keep, "min_tokens_to_keep")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=False)  # (..., V), least likely first
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (..., V)
    remove_sorted = cumulative <= 1 - p
    remove_sorted[..., -min_tokens_to_keep:] = False  # the most likely ones always stay
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to the vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def sampling_distribution(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution ``sample`` draws from: logits ``(..., V)`` -> probabilities ``(..., V)``.

    Temperature first, then top-k, then top-p (the order of Hugging Face's ``generate``), then a
    softmax, in float32 at least. ``top_k=None`` and ``top_p=None`` skip those filters. Each row
    sums to 1; the removed tokens have probability 0.
    """
    _check_logits(logits)
    _check_sampling_options(temperature, top_k, top_p)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits.softmax(dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


def sample(
    model: TinyLM,
    prompt: torch.Tensor,
    n_new: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Append ``n_new`` tokens to ``prompt (B, T0)`` of token ids; returns ``(B, T0 + n_new)``.

    Each step draws the next token of every row from ``sampling_distribution`` of the last
    position's logits, with ``torch.multinomial`` on the CPU (the probabilities move to the CPU
    first), so that a CPU ``generator`` gives the same tokens on any device for the same
    probabilities. ``greedy=True`` takes the argmax instead, as ``efficiency.generate`` does; it
    ignores ``temperature``, ``top_k`` and ``top_p``, none of which moves the argmax.
    ``use_cache`` runs the model with a KV cache (``efficiency.generate_with``); the tokens are
    the same without it up to rounding (identical in the tests). The model runs in eval mode (its
    mode is restored afterwards).
    """
    _check_sampling_options(temperature, top_k, top_p)
    if not isinstance(greedy, bool):
        raise TypeError(f"greedy: expected a bool, got {describe(greedy)}")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator: expected a torch.Generator or None, got {describe(generator)}")
        if generator.device.type != "cpu":
            raise ValueError(
                f"generator: expected a CPU generator (draws run on the CPU), got {generator.device}"
            )

    if greedy:
        return generate(model, prompt, n_new, use_cache)

    def pick_next(logits: torch.Tensor) -> torch.Tensor:  # (B, V) -> (B, 1)
        probs = sampling_distribution(logits, temperature, top_k, top_p).cpu()
        return torch.multinomial(probs, 1, generator=generator)

    return generate_with(model, prompt, n_new, pick_next, use_cache=use_cache)
