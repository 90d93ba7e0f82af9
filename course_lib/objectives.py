"""Pre-training objectives: the masked language model (notebook 10).

Devlin et al. 2019, "BERT: pre-training of deep bidirectional Transformers for language
understanding", section 3.1 (task 1, masked LM) and appendix A.1: choose 15% of the token
positions at random; of those, replace 80% by ``[MASK]``, 10% by a random token and leave 10%
unchanged; the model predicts the original token at the chosen positions only. The random and
unchanged 10% keep the model from learning that only ``[MASK]`` positions matter, since
``[MASK]`` never appears when the model is fine-tuned.

Labels use ``-100`` where nothing is predicted, the default ``ignore_index`` of
``torch.nn.functional.cross_entropy`` (and Hugging Face's convention).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from course_lib._validate import check_int, check_number, check_positive_int, check_tensor

IGNORE_INDEX = -100  # the label of a position the loss skips (cross_entropy's default ignore_index)
IDS = (torch.int64, torch.int32)


def _check_generator(generator: object) -> torch.Generator | None:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(
            f"generator: expected a CPU generator (random numbers are drawn on the CPU), "
            f"got one on {generator.device}"
        )
    return generator


def mlm_mask(
    tokens: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    special_token_ids: Iterable[int] = (),
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-LM corruption of a batch of token ids.

    Each position whose token is not in ``special_token_ids`` is chosen independently with
    probability ``mask_prob`` (a Bernoulli draw per position, as Hugging Face's
    ``DataCollatorForLanguageModeling`` does; the count per sequence varies, and a short sequence
    may get none. BERT's own ``create_pretraining_data.py`` instead picks a fixed count per
    sequence, round(15%) of its tokens and at least one, capped by ``max_predictions_per_seq``).
    A chosen position becomes ``mask_token_id`` with probability 0.8, a token drawn uniformly
    from the whole vocabulary ``0..vocab_size-1`` with probability 0.1 (special tokens included,
    as in BERT's ``create_pretraining_data.py`` and Hugging Face), and stays unchanged with
    probability 0.1.

    Every random number is drawn on the CPU (from ``generator`` when given, so a seeded generator
    gives the same result on any device); the results are moved to ``tokens.device``.

    Args:
        tokens: token ids ``(B, T)``, int64 or int32, each in ``0..vocab_size-1``.
        mask_token_id: the id of ``[MASK]``.
        vocab_size: ``V``, the number of token ids.
        special_token_ids: ids never chosen (``[CLS]``, ``[SEP]``, ``[PAD]``, ...).
        mask_prob: the probability that a non-special position is chosen, in ``(0, 1]``.
        generator: a CPU ``torch.Generator``; ``None`` uses the global one.

    Returns:
        ``inputs (B, T)``: the corrupted ids, equal to ``tokens`` wherever the label is ``-100``;
        ``labels (B, T)`` int64: the original id at the chosen positions, ``-100`` elsewhere.
    """
    check_tensor(tokens, "tokens", ndim=2, dtypes=IDS)
    check_positive_int(vocab_size, "vocab_size")
    if check_int(mask_token_id, "mask_token_id") >= vocab_size:
        raise ValueError(
            f"mask_token_id: expected an id in 0..vocab_size-1={vocab_size - 1}, got {mask_token_id}"
        )
    if isinstance(special_token_ids, (str, bytes)) or not isinstance(special_token_ids, Iterable):
        raise TypeError(
            f"special_token_ids: expected an iterable of ints, got {type(special_token_ids).__name__}"
        )
    specials = list(special_token_ids)
    for i in specials:
        if check_int(i, "special_token_ids[...]") >= vocab_size:
            raise ValueError(f"special_token_ids: expected ids in 0..vocab_size-1={vocab_size - 1}, got {i}")
    if not 0 < check_number(mask_prob, "mask_prob") <= 1:
        raise ValueError(f"mask_prob: expected a number in (0, 1], got {mask_prob!r}")
    generator = _check_generator(generator)
    cpu = tokens.cpu()
    if cpu.numel() and (cpu.min() < 0 or cpu.max() >= vocab_size):
        raise ValueError(
            f"tokens: expected ids in 0..vocab_size-1={vocab_size - 1}, "
            f"got values in {cpu.min().item()}..{cpu.max().item()}"
        )

    special = torch.isin(cpu, torch.tensor(specials, dtype=cpu.dtype))  # (B, T)
    probs = torch.full(cpu.shape, float(mask_prob)).masked_fill(special, 0.0)  # (B, T)
    chosen = torch.bernoulli(probs, generator=generator).bool()  # (B, T): ~mask_prob of the rest
    to_mask = torch.bernoulli(torch.full(cpu.shape, 0.8), generator=generator).bool() & chosen
    # Half of the remaining 20% of the chosen: 10% of them in all.
    to_random = torch.bernoulli(torch.full(cpu.shape, 0.5), generator=generator).bool() & chosen & ~to_mask
    random_ids = torch.randint(vocab_size, cpu.shape, generator=generator, dtype=cpu.dtype)  # (B, T)

    inputs = cpu.masked_fill(to_mask, mask_token_id)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = cpu.long().masked_fill(~chosen, IGNORE_INDEX)
    return inputs.to(tokens.device), labels.to(tokens.device)
