"""Pre-training objectives: the masked language model (notebook 10), next-token prediction's
baseline and perplexity (notebook 11) and GLM's autoregressive blank infilling (notebook 12).

Devlin et al. 2019, "BERT: pre-training of deep bidirectional Transformers for language
understanding", section 3.1 (task 1, masked LM) and appendix A.1: choose 15% of the token
positions at random; of those, replace 80% by ``[MASK]``, 10% by a random token and leave 10%
unchanged; the model predicts the original token at the chosen positions only. The random and
unchanged 10% keep the model from learning that only ``[MASK]`` positions matter, since
``[MASK]`` never appears when the model is fine-tuned.

Du et al. 2022, "GLM: general language model pretraining with autoregressive blank infilling",
its figure of Part A, Part B and the mask: spans of the text (lengths drawn from a Poisson distribution with
lambda = 3) are sampled until at least 15% of the tokens are covered. Part A is the text with each
span replaced by one ``[MASK]``; Part B holds the spans in a shuffled order, each one starting with
``[START]`` and predicted token by token, the last token predicting ``[END]``. Part A attends to
all of Part A (like BERT), Part B to Part A and to the Part B tokens up to itself (like GPT): the
prefix-LM mask. Each token carries two positions: its position in the corrupted text (Part B
tokens take the position of their ``[MASK]``) and its position inside its span (0 in Part A).
``glm_spans`` samples spans, ``glm_example`` builds one training example, ``glm_batch`` pads
several to one length.

Labels use ``-100`` where nothing is predicted, the default ``ignore_index`` of
``torch.nn.functional.cross_entropy`` (and Hugging Face's convention).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise

import torch

from course_lib._validate import (
    check_fraction,
    check_int,
    check_number,
    check_positive_int,
    check_tensor,
    describe,
)
from course_lib.attention import prefix_lm_mask

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


# --- GLM: autoregressive blank infilling (Du et al. 2022) ----------------------------------------

MAX_SPAN_TRIES = 100  # draws of span lengths before glm_spans gives up on a too-high mask_ratio


def glm_spans(
    n_tokens: int,
    generator: torch.Generator | None = None,
    mask_ratio: float = 0.15,
    poisson_lambda: float = 3.0,
    max_span_len: int = 39,
) -> list[tuple[int, int]]:
    """Sample GLM's blank spans over a text of ``n_tokens`` tokens.

    As in GLM's reference code (``ConstructBlockStrategy`` in THUDM/GLM's ``blocklm_utils.py``):

    1. Span lengths are drawn from a Poisson distribution with mean ``poisson_lambda``, conditioned
       on being at least 1 and at most ``min(n_tokens, max_span_len)`` (the reference's
       ``max_block_length = 40`` allows lengths 1..39), until they add up to at least
       ``target = max(1, int(mask_ratio * n_tokens))`` tokens. So the covered fraction is at least
       ``target / n_tokens``; on long texts it overshoots by part of one span (for 1000 tokens and
       15%: about 15.1% on average), but on short texts one span can cover far more than
       ``mask_ratio`` (for 6 tokens, a third of the draws cover at least 4 of them).
    2. The lengths are shuffled, and the spans are laid out left to right with at least one
       unmasked token between two spans (two ``[MASK]`` never touch): with ``k`` spans and
       ``free = n_tokens - sum(lengths) - (k - 1)`` tokens to spare, ``k`` numbers drawn uniformly
       from ``0..free`` and sorted, ``places``, say where each span sits in the slack: span ``i``
       starts at ``places[i]`` plus the lengths (and one separator each) of the spans before it,
       so the gap before span ``i`` is ``places[i] - places[i-1] + 1`` (``sample_spans`` in the
       reference).
    3. If the lengths cannot fit (``sum(lengths) + k - 1 > n_tokens``), they are drawn again
       (at most ``MAX_SPAN_TRIES`` times; then ``ValueError``: lower ``mask_ratio``).

    Every random number is drawn on the CPU from ``generator`` (the global one when ``None``).

    Args:
        n_tokens: ``L0``, the length of the text.
        generator: a CPU ``torch.Generator`` or ``None``.
        mask_ratio: the fraction of the tokens to cover, strictly between 0 and 1 (GLM: 0.15).
        poisson_lambda: the mean of the Poisson distribution of span lengths (GLM: 3).
        max_span_len: the longest span (GLM: 39). For a ``glm.GLM`` pass
            ``config.max_span_len - 2``, so that ``[START]``, the span and ``[END]`` fit its span
            position table.

    Returns:
        The spans ``[(start, end), ...]``: 0-based, end exclusive, sorted, non-overlapping and
        not adjacent, each of length at least 1.
    """
    check_positive_int(n_tokens, "n_tokens")
    generator = _check_generator(generator)
    check_fraction(mask_ratio, "mask_ratio")
    if not check_number(poisson_lambda, "poisson_lambda") > 0:
        raise ValueError(f"poisson_lambda: expected a number > 0, got {poisson_lambda!r}")
    check_positive_int(max_span_len, "max_span_len")
    target = max(1, int(mask_ratio * n_tokens))
    lengths_1_to_n = torch.arange(1, min(n_tokens, max_span_len) + 1, dtype=torch.float64)
    # Poisson pmf lambda^k e^-lambda / k!, in logs; the normalisation cancels in multinomial.
    log_pmf = lengths_1_to_n * math.log(poisson_lambda) - torch.lgamma(lengths_1_to_n + 1)
    weights = torch.exp(log_pmf - log_pmf.max())  # weight of lengths 1..min(n_tokens, max_span_len)
    for _ in range(MAX_SPAN_TRIES):
        lengths: list[int] = []
        while sum(lengths) < target:
            lengths.append(int(torch.multinomial(weights, 1, generator=generator)) + 1)
        free = n_tokens - sum(lengths) - (len(lengths) - 1)
        if free >= 0:
            break
    else:
        raise ValueError(
            f"mask_ratio: spans covering {mask_ratio} of {n_tokens} tokens with gaps between them "
            f"did not fit in {MAX_SPAN_TRIES} draws; use a smaller mask_ratio"
        )
    order = torch.randperm(len(lengths), generator=generator).tolist()
    places = torch.randint(free + 1, (len(lengths),), generator=generator).sort().values.tolist()
    spans, offset = [], 0
    for place, i in zip(places, order, strict=True):
        start = offset + place
        spans.append((start, start + lengths[i]))
        offset += lengths[i] + 1  # the span and the one token that must follow it
    return spans


def _check_spans(spans: object, n_tokens: int) -> list[tuple[int, int]]:
    """``spans`` as a list of ``(start, end)`` ints inside ``0..n_tokens``, non-empty, disjoint."""
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Sequence):
        raise TypeError(f"spans: expected a list of (start, end) pairs, got {type(spans).__name__}")
    checked = []
    for span in spans:
        if isinstance(span, (str, bytes)) or not isinstance(span, Sequence) or len(span) != 2:
            raise TypeError(f"spans: expected (start, end) pairs of ints, got {span!r}")
        start, end = check_int(span[0], "spans[...] start"), check_int(span[1], "spans[...] end")
        if not start < end <= n_tokens:
            raise ValueError(
                f"spans: expected 0 <= start < end <= len(tokens)={n_tokens} (0-based, end exclusive), "
                f"got ({start}, {end})"
            )
        checked.append((start, end))
    ordered = sorted(checked)
    for (_, end), (start, _) in pairwise(ordered):
        if start < end:
            raise ValueError(f"spans: expected non-overlapping spans, got {sorted(checked)}")
    return checked


def glm_example(
    tokens: torch.Tensor, spans: Sequence[tuple[int, int]], mask_id: int, start_id: int, end_id: int
) -> dict[str, torch.Tensor]:
    """One GLM training example: Part A (the text with blanks) then Part B (the spans).

    Part A is ``tokens`` with each span replaced by one ``mask_id``. Part B holds, for each span in
    the order given (the caller shuffles, e.g. with ``torch.randperm``), ``start_id`` followed by
    the span's tokens; each Part B position is labelled with the next token of its span, the last
    one with ``end_id``. The paper's example (figure 2, 0-based spans): ``x1..x6`` with spans
    ``[(4, 6), (2, 3)]`` gives ``x1 x2 [M] x4 [M] | [S] x5 x6 [S] x3`` labelled
    ``- - - - - | x5 x6 [E] x3 [E]``, positions ``0 1 2 3 4 | 4 4 4 2 2`` and
    ``0 0 0 0 0 | 1 2 3 1 2``.

    Args:
        tokens: the original text ``(L0,)``, int64 or int32.
        spans: ``(start, end)`` pairs, 0-based and end exclusive, non-empty and non-overlapping,
            in the order Part B should take them (``glm_spans`` draws them sorted).
        mask_id, start_id, end_id: the ids of ``[MASK]``, ``[START]`` and ``[END]``.

    Returns:
        A dict of tensors on ``tokens.device``, with ``L = L0 + 2 * len(spans)`` (Part A:
        ``L0 - covered + len(spans)`` tokens, Part B: ``covered + len(spans)``):
        ``input_ids (L,)`` int64; ``position_ids (2, L)`` int64 (row 0: position in Part A, a
        Part B token takes its ``[MASK]``'s; row 1: 0 in Part A, ``1..len + 1`` inside a span);
        ``attention_mask (L, L)`` bool, True = may attend (``attention.prefix_lm_mask(L,
        prefix_len)``); ``labels (L,)`` int64, ``-100`` on Part A; and ``prefix_len``, a 0-D
        int64 tensor, the length of Part A.
    """
    check_tensor(tokens, "tokens", ndim=1, dtypes=IDS)
    if tokens.shape[0] == 0:
        raise ValueError("tokens: expected at least one token, got shape (0,)")
    for name, value in (("mask_id", mask_id), ("start_id", start_id), ("end_id", end_id)):
        check_int(value, name)
    checked = _check_spans(spans, tokens.shape[0])
    if not checked:
        raise ValueError("spans: expected at least one (start, end) span, got []")
    text = tokens.tolist()

    part_a, mask_pos = [], {}
    last = 0
    for start, end in sorted(checked):
        part_a += text[last:start]
        mask_pos[start] = len(part_a)  # where this span's [MASK] sits in Part A
        part_a.append(mask_id)
        last = end
    part_a += text[last:]
    part_a_pos = list(range(len(part_a)))

    part_b, part_b_pos, part_b_block, part_b_labels = [], [], [], []
    for start, end in checked:
        span = text[start:end]
        part_b += [start_id, *span]
        part_b_labels += [*span, end_id]
        part_b_pos += [mask_pos[start]] * (len(span) + 1)
        part_b_block += list(range(1, len(span) + 2))

    n_a, n = len(part_a), len(part_a) + len(part_b)
    device = tokens.device
    return {
        "input_ids": torch.tensor(part_a + part_b, dtype=torch.int64, device=device),
        "position_ids": torch.tensor(
            [part_a_pos + part_b_pos, [0] * n_a + part_b_block], dtype=torch.int64, device=device
        ),
        "attention_mask": prefix_lm_mask(n, n_a, device=device),
        "labels": torch.tensor([IGNORE_INDEX] * n_a + part_b_labels, dtype=torch.int64, device=device),
        "prefix_len": torch.tensor(n_a, dtype=torch.int64, device=device),
    }


GLM_KEYS = ("input_ids", "position_ids", "attention_mask", "labels", "prefix_len")


def glm_batch(examples: Sequence[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad ``glm_example`` outputs to one length ``L = max(L_b)`` and stack them.

    Padding goes at the end: ``input_ids`` get ``pad_id``, positions 0, labels ``-100``. No real
    token attends to a padding key; a padding query attends only to itself (a row with no allowed
    key at all would give NaN in some attention kernels), and its output is never used.

    Returns:
        ``input_ids (B, L)``, ``position_ids (B, 2, L)``, ``attention_mask (B, 1, L, L)`` bool
        (the 1 broadcasts over heads), ``labels (B, L)`` and ``prefix_len (B,)``.
    """
    if isinstance(examples, dict) or not isinstance(examples, Sequence) or not examples:
        raise TypeError(f"examples: expected a non-empty list of glm_example dicts, got {examples!r:.80}")
    for i, example in enumerate(examples):
        if not isinstance(example, dict):
            raise TypeError(f"examples[{i}]: expected a dict from glm_example, got {type(example).__name__}")
        if set(example) != set(GLM_KEYS):
            raise ValueError(f"examples[{i}]: expected a dict with keys {GLM_KEYS} (from glm_example)")
    check_int(pad_id, "pad_id")
    n = max(example["input_ids"].shape[0] for example in examples)
    device = examples[0]["input_ids"].device
    devices = {example[key].device for example in examples for key in GLM_KEYS}
    if devices != {device}:
        raise ValueError(f"examples: expected every tensor on one device, got {sorted(map(str, devices))}")
    B = len(examples)
    input_ids = torch.full((B, n), pad_id, dtype=torch.int64, device=device)
    position_ids = torch.zeros(B, 2, n, dtype=torch.int64, device=device)
    labels = torch.full((B, n), IGNORE_INDEX, dtype=torch.int64, device=device)
    attention_mask = torch.eye(n, dtype=torch.bool, device=device).repeat(B, 1, 1, 1)  # (B, 1, L, L)
    for b, example in enumerate(examples):
        length = example["input_ids"].shape[0]
        input_ids[b, :length] = example["input_ids"]
        position_ids[b, :, :length] = example["position_ids"]
        labels[b, :length] = example["labels"]
        attention_mask[b, 0, :length, :length] = example["attention_mask"]
    prefix_len = torch.stack([example["prefix_len"] for example in examples])
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "prefix_len": prefix_len,
    }


# --- next-token prediction: the bigram baseline and perplexity (notebook 11) ----------------------

MAX_BIGRAM_VOCAB = 4096  # bigram_loss keeps a dense V x V table of counts


def bigram_loss(
    train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, smoothing: float = 1.0
) -> float:
    """The bigram baseline: mean ``-log P(x_{t+1} | x_t)`` over the pairs of ``val_ids``, in nats.

    ``P(b | a) = (count(a, b) + smoothing) / (count(a) + smoothing * V)``, counted on the pairs of
    ``train_ids`` (additive smoothing; ``smoothing=1`` is Laplace's add-one, so a pair never seen
    in training still costs a finite loss). ``train_ids (N,)`` and ``val_ids (M,)`` are 1-D token
    ids in ``[0, vocab_size)`` (``IDS``, or the compact uint8/int16 a character corpus is stored
    in), each with at least 2 tokens. A model with one token
    of context can do no better on average than the true bigram table; a Transformer below this
    level has learned something from the longer context. The table holds ``V**2`` counts, so this
    is for small vocabularies (characters): ``vocab_size <= 4096``.
    """
    for name, ids in (("train_ids", train_ids), ("val_ids", val_ids)):
        check_tensor(ids, name, ndim=1, dtypes=(*IDS, torch.int16, torch.uint8))
        if len(ids) < 2:
            raise ValueError(f"{name}: expected at least 2 tokens (one pair), got {len(ids)}")
    V = check_positive_int(vocab_size, "vocab_size")
    if V > MAX_BIGRAM_VOCAB:
        raise ValueError(
            f"vocab_size: bigram_loss keeps a dense V x V table; expected V <= {MAX_BIGRAM_VOCAB}, got {V}"
        )
    for name, ids in (("train_ids", train_ids), ("val_ids", val_ids)):
        if ids.min() < 0 or ids.max() >= V:
            raise ValueError(
                f"{name}: expected ids in [0, {V}), got ids from {ids.min().item()} to {ids.max().item()}"
            )
    if not check_number(smoothing, "smoothing") > 0:
        raise ValueError(f"smoothing: expected a number > 0, got {smoothing!r}")
    train_ids, val_ids = train_ids.cpu().long(), val_ids.cpu().long()
    pair_index = train_ids[:-1] * V + train_ids[1:]  # (N - 1,): previous * V + next
    counts = torch.bincount(pair_index, minlength=V * V).reshape(V, V).double() + smoothing  # (V, V)
    nll = -(counts / counts.sum(dim=1, keepdim=True)).log()  # (V, V): [previous, next]
    return nll[val_ids[:-1], val_ids[1:]].mean().item()


def perplexity(mean_nll_nats: float | torch.Tensor) -> float:
    """``exp(mean negative log-likelihood)``: the mean cross-entropy in nats per token -> perplexity.

    The number of equally likely tokens the model is, on average, as unsure as: ``V`` for a
    uniform guess over ``V`` tokens, 1 for a model that is always certain and right. Takes a
    number or a 0-D float tensor (a loss).
    """
    if isinstance(mean_nll_nats, torch.Tensor):
        if not mean_nll_nats.dtype.is_floating_point:
            raise TypeError(f"mean_nll_nats: expected a float tensor, got {describe(mean_nll_nats)}")
        if mean_nll_nats.ndim != 0:
            raise ValueError(f"mean_nll_nats: expected a 0-D tensor, got {describe(mean_nll_nats)}")
        mean_nll_nats = mean_nll_nats.item()
    value = check_number(mean_nll_nats, "mean_nll_nats")
    if not 0 <= value < math.inf:
        raise ValueError(f"mean_nll_nats: expected a finite number >= 0, got {mean_nll_nats!r}")
    return math.exp(value)
