"""``objectives.mlm_mask``: BERT's 15% / 80-10-10 corruption (Devlin et al. 2019, appendix A.1);
``glm_spans``, ``glm_example`` and ``glm_batch``: GLM's blank infilling (Du et al. 2022);
``bigram_loss`` and ``perplexity`` for next-token prediction."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import objectives
from course_lib.attention import prefix_lm_mask
from course_lib.objectives import IGNORE_INDEX, glm_batch, glm_example, glm_spans, mlm_mask

V, MASK, CLS, SEP, PAD = 1000, 3, 1, 2, 0
SPECIALS = (PAD, CLS, SEP, MASK)


def batch(B: int = 400, T: int = 250, seed: int = 0) -> torch.Tensor:
    """Ordinary tokens (ids 4..V-1) framed by [CLS] ... [SEP] and some [PAD]."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, V, (B, T), generator=g)
    tokens[:, 0], tokens[:, -1] = CLS, SEP
    tokens[: B // 2, -20:] = PAD
    return tokens


def corrupt(tokens, seed=0, **kwargs):
    return mlm_mask(tokens, MASK, V, SPECIALS, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_statistics_on_a_large_sample():
    tokens = batch()  # 100 000 positions, about 96 000 ordinary
    inputs, labels = corrupt(tokens)
    ordinary = ~torch.isin(tokens, torch.tensor(SPECIALS))
    chosen = labels != IGNORE_INDEX
    n = chosen.sum().item()
    # Binomial(96 000, 0.15): standard deviation 0.0012; 0.01 is over 8 of them.
    assert abs(n / ordinary.sum().item() - 0.15) < 0.01
    masked = (inputs == MASK) & chosen
    unchanged = (inputs == tokens) & chosen
    replaced = (inputs != tokens) & (inputs != MASK) & chosen
    # About 14 400 chosen: the fractions' standard deviations are below 0.004; 0.02 is 5 of them.
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    # "Unchanged" also collects random draws that hit the original token (1 in V of the 10%).
    assert abs(unchanged.sum().item() / n - 0.1) < 0.02
    assert abs(replaced.sum().item() / n - 0.1) < 0.02
    assert masked.sum() + unchanged.sum() + replaced.sum() == n
    # The random tokens spread over the vocabulary, specials included, as in BERT and Hugging Face.
    assert inputs[replaced].unique().numel() > 0.6 * V


def test_labels_hold_the_original_at_chosen_positions_and_minus_100_elsewhere():
    tokens = batch(B=50, T=40)
    inputs, labels = corrupt(tokens)
    chosen = labels != IGNORE_INDEX
    assert chosen.any()
    assert torch.equal(labels[chosen], tokens[chosen])
    assert (labels[~chosen] == IGNORE_INDEX).all()
    assert torch.equal(inputs[~chosen], tokens[~chosen])  # unchanged where nothing is predicted
    assert labels.dtype == torch.int64 and inputs.dtype == tokens.dtype and labels.shape == tokens.shape


def test_special_tokens_are_never_chosen():
    tokens = batch(B=100, T=60)
    for seed in range(5):
        inputs, labels = corrupt(tokens, seed=seed, mask_prob=0.9)
        special = torch.isin(tokens, torch.tensor(SPECIALS))
        assert (labels[special] == IGNORE_INDEX).all()
        assert torch.equal(inputs[special], tokens[special])
        assert (labels[~special] != IGNORE_INDEX).float().mean() > 0.85


def test_without_specials_every_position_can_be_chosen():
    tokens = torch.full((20, 50), CLS)
    _, labels = mlm_mask(tokens, MASK, V, mask_prob=0.5, generator=torch.Generator().manual_seed(0))
    assert 0.4 < (labels == CLS).float().mean() < 0.6


def test_a_seeded_generator_is_deterministic_and_leaves_the_global_state_alone():
    tokens = batch(B=20, T=30)
    state = torch.get_rng_state()
    first, second = corrupt(tokens, seed=7), corrupt(tokens, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    other = corrupt(tokens, seed=8)
    assert not torch.equal(first[1], other[1])


def test_int32_tokens_and_mask_prob_one():
    tokens = batch(B=10, T=30).int()
    inputs, labels = corrupt(tokens, mask_prob=1.0)
    ordinary = ~torch.isin(tokens, torch.tensor(SPECIALS, dtype=torch.int32))
    assert inputs.dtype == torch.int32
    assert (labels[ordinary] == tokens[ordinary]).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"tokens": [[1, 2]]}, TypeError, "tokens"),
        ({"tokens": torch.ones(2, 3)}, TypeError, "dtype"),
        ({"tokens": torch.ones(6, dtype=torch.long)}, ValueError, "2-D"),
        ({"tokens": torch.full((2, 3), V)}, ValueError, "vocab_size"),
        ({"tokens": torch.full((2, 3), -1)}, ValueError, "vocab_size"),
        ({"mask_token_id": V}, ValueError, "mask_token_id"),
        ({"mask_token_id": 1.0}, TypeError, "mask_token_id"),
        ({"vocab_size": 0}, ValueError, "vocab_size"),
        ({"special_token_ids": (V + 5,)}, ValueError, "special_token_ids"),
        ({"special_token_ids": 3}, TypeError, "special_token_ids"),
        ({"mask_prob": 0.0}, ValueError, "mask_prob"),
        ({"mask_prob": 1.5}, ValueError, "mask_prob"),
        ({"mask_prob": "0.15"}, TypeError, "mask_prob"),
        ({"generator": 0}, TypeError, "generator"),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, error, words):
    args = {"tokens": batch(B=2, T=3), "mask_token_id": MASK, "vocab_size": V, **kwargs}
    with pytest.raises(error, match=words):
        mlm_mask(**args)


# --- GLM ------------------------------------------------------------------------------------------

G_MASK, G_START, G_END = 100, 101, 102


def test_glm_example_reproduces_the_papers_figure_2():
    # x1..x6 are ids 1..6. Spans (2, 3) = x3 and (4, 6) = x5 x6, taken in the order [(4, 6), (2, 3)]:
    #   input_ids  x1 x2 [M] x4 [M] | [S] x5 x6 [S] x3
    #   labels      -  -  -   -  -  | x5  x6 [E] x3 [E]
    #   position    0  1  2   3  4  |  4   4  4  2  2    (the paper counts from 1: 1 2 3 4 5 | 5 5 5 3 3)
    #   span pos    0  0  0   0  0  |  1   2  3  1  2
    #   attention_mask (row = query, 1 = may attend):
    #     x1 x2 [M] x4 [M]   1 1 1 1 1 0 0 0 0 0   (each of the five Part A rows)
    #     [S]                1 1 1 1 1 1 0 0 0 0
    #     x5                 1 1 1 1 1 1 1 0 0 0
    #     x6                 1 1 1 1 1 1 1 1 0 0
    #     [S]                1 1 1 1 1 1 1 1 1 0
    #     x3                 1 1 1 1 1 1 1 1 1 1
    example = glm_example(torch.arange(1, 7), [(4, 6), (2, 3)], G_MASK, G_START, G_END)
    M, S, E, _ = G_MASK, G_START, G_END, IGNORE_INDEX
    assert example["input_ids"].tolist() == [1, 2, M, 4, M, S, 5, 6, S, 3]
    assert example["labels"].tolist() == [_, _, _, _, _, 5, 6, E, 3, E]
    assert example["position_ids"].tolist() == [
        [0, 1, 2, 3, 4, 4, 4, 4, 2, 2],
        [0, 0, 0, 0, 0, 1, 2, 3, 1, 2],
    ]
    expected_mask = torch.tensor(
        [[1] * 5 + [0] * 5] * 5 + [[1] * (6 + i) + [0] * (4 - i) for i in range(5)], dtype=torch.bool
    )
    assert torch.equal(example["attention_mask"], expected_mask)
    assert example["prefix_len"].item() == 5
    assert (
        example["input_ids"].dtype == example["position_ids"].dtype == example["labels"].dtype == torch.int64
    )


def test_glm_example_with_spans_at_both_ends_keeps_every_token():
    tokens = torch.arange(10, 20, dtype=torch.int32)  # ten tokens
    spans = [(8, 10), (0, 2), (4, 5)]
    example = glm_example(tokens, spans, G_MASK, G_START, G_END)
    ids, labels, (pos, span_pos) = example["input_ids"], example["labels"], example["position_ids"]
    n_a = example["prefix_len"].item()
    assert ids.shape == (10 + 2 * len(spans),) and n_a == 10 - 5 + 3
    assert ids[:n_a].tolist() == [G_MASK, 12, 13, G_MASK, 15, 16, 17, G_MASK]
    assert torch.equal(example["attention_mask"], prefix_lm_mask(ids.shape[0], n_a))
    # Part B, span by span: [S] + span as input, span + [E] as labels, at the span's [MASK] position.
    b = n_a
    for (start, end), mask_position in zip(spans, (7, 0, 3), strict=True):
        k = end - start
        assert ids[b : b + k + 1].tolist() == [G_START, *tokens[start:end].tolist()]
        assert labels[b : b + k + 1].tolist() == [*tokens[start:end].tolist(), G_END]
        assert (pos[b : b + k + 1] == mask_position).all() and ids[mask_position] == G_MASK
        assert span_pos[b : b + k + 1].tolist() == list(range(1, k + 2))
        b += k + 1
    assert b == ids.shape[0] and (labels[:n_a] == IGNORE_INDEX).all() and (span_pos[:n_a] == 0).all()


def test_glm_spans_statistics_over_many_draws():
    generator = torch.Generator().manual_seed(0)
    draws = [glm_spans(1000, generator) for _ in range(300)]
    lengths, starts, coverage = [], [], []
    for spans in draws:
        assert spans == sorted(spans)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end + 1  # at least one unmasked token between two spans
        assert spans[0][0] >= 0 and spans[-1][1] <= 1000
        lengths += [end - start for start, end in spans]
        starts += [start for start, _ in spans]
        coverage.append(sum(end - start for start, end in spans) / 1000)
    # Spans are added until at least int(0.15 * 1000) = 150 tokens are covered; the last span
    # overshoots by a few tokens (seed 0: mean 0.1514, max 0.160).
    assert min(coverage) >= 0.15 and max(coverage) < 0.17
    assert 0.150 < sum(coverage) / len(coverage) < 0.153
    # Poisson(3) conditioned on >= 1: mean 3 / (1 - e^-3) = 3.157, P(1) = 3 e^-3 / (1 - e^-3) = 0.157.
    # About 14 000 spans: the mean's standard deviation is 0.014, P(1)'s 0.003 (seed 0: 3.157, 0.159).
    assert abs(sum(lengths) / len(lengths) - 3 / (1 - math.exp(-3))) < 0.07
    assert abs(lengths.count(1) / len(lengths) - 3 * math.exp(-3) / (1 - math.exp(-3))) < 0.015
    assert lengths.count(2) > lengths.count(1) and lengths.count(3) > lengths.count(4)  # the Poisson's shape
    assert abs(sum(s < 500 for s in starts) / len(starts) - 0.5) < 0.03  # spread over the whole text


def test_glm_spans_is_deterministic_leaves_the_global_state_alone_and_handles_short_texts():
    state = torch.get_rng_state()
    first = glm_spans(200, torch.Generator().manual_seed(3))
    assert first == glm_spans(200, torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert first != glm_spans(200, torch.Generator().manual_seed(4))
    assert glm_spans(1) == [(0, 1)]  # one token: one span of length 1, the only one that fits
    for seed in range(20):
        spans = glm_spans(12, torch.Generator().manual_seed(seed), mask_ratio=0.5)
        covered = sum(end - start for start, end in spans)
        assert covered >= 6 and covered + len(spans) - 1 <= 12


def test_glm_batch_pads_and_masks_the_padding():
    short = glm_example(torch.arange(1, 7), [(4, 6), (2, 3)], G_MASK, G_START, G_END)  # L = 10
    long = glm_example(torch.arange(1, 11), [(1, 4)], G_MASK, G_START, G_END)  # L = 12
    batch = glm_batch([short, long], pad_id=0)
    assert batch["input_ids"].shape == (2, 12) and batch["position_ids"].shape == (2, 2, 12)
    assert batch["attention_mask"].shape == (2, 1, 12, 12) and batch["labels"].shape == (2, 12)
    assert batch["prefix_len"].tolist() == [5, 8]
    assert torch.equal(batch["input_ids"][0, :10], short["input_ids"])
    assert batch["input_ids"][0, 10:].tolist() == [0, 0] and (batch["labels"][0, 10:] == IGNORE_INDEX).all()
    assert torch.equal(batch["attention_mask"][0, 0, :10, :10], short["attention_mask"])
    assert not batch["attention_mask"][0, 0, :10, 10:].any()  # no real token reads padding...
    padding_rows = torch.eye(12, dtype=torch.bool)[10:]
    assert torch.equal(batch["attention_mask"][0, 0, 10:], padding_rows)  # ...padding reads itself only
    assert torch.equal(batch["attention_mask"][1, 0], long["attention_mask"])


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"n_tokens": 0}, ValueError, "n_tokens"),
        ({"n_tokens": 10.0}, TypeError, "n_tokens"),
        ({"mask_ratio": 0.0}, ValueError, "mask_ratio"),
        ({"mask_ratio": 1.0}, ValueError, "mask_ratio"),
        ({"mask_ratio": 0.95, "n_tokens": 100}, ValueError, "smaller mask_ratio"),
        ({"poisson_lambda": 0}, ValueError, "poisson_lambda"),
        ({"poisson_lambda": "3"}, TypeError, "poisson_lambda"),
        ({"generator": 1}, TypeError, "generator"),
        ({"max_span_len": 0}, ValueError, "max_span_len"),
        ({"max_span_len": 2.0}, TypeError, "max_span_len"),
    ],
)
def test_glm_spans_bad_input(kwargs, error, words):
    with pytest.raises(error, match=words):
        glm_spans(**{"n_tokens": 50, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"tokens": [1, 2, 3]}, TypeError, "tokens"),
        ({"tokens": torch.ones(6)}, TypeError, "dtype"),
        ({"tokens": torch.ones(1, 6, dtype=torch.long)}, ValueError, "1-D"),
        ({"spans": [(2, 2)]}, ValueError, "start < end"),
        ({"spans": [(4, 7)]}, ValueError, "start < end"),
        ({"spans": [(1, 4), (3, 5)]}, ValueError, "non-overlapping"),
        ({"spans": [(1, 2.0)]}, TypeError, "end"),
        ({"spans": [(1, 2, 3)]}, TypeError, "pairs"),
        ({"spans": (1, 2)}, TypeError, "pairs"),
        ({"spans": "12"}, TypeError, "spans"),
        ({"mask_id": -1}, ValueError, "mask_id"),
        ({"end_id": None}, TypeError, "end_id"),
        ({"spans": []}, ValueError, r"spans: expected at least one \(start, end\) span, got \[\]"),
        ({"tokens": torch.ones(0, dtype=torch.long)}, ValueError, r"tokens: expected at least one token"),
    ],
)
def test_glm_example_bad_input(kwargs, error, words):
    args = {"tokens": torch.arange(6), "spans": [(1, 2)], "mask_id": 7, "start_id": 8, "end_id": 9, **kwargs}
    with pytest.raises(error, match=words):
        glm_example(**args)


def test_glm_batch_bad_input():
    example = glm_example(torch.arange(6), [(1, 2)], 7, 8, 9)
    with pytest.raises(TypeError, match="non-empty list"):
        glm_batch([], 0)
    with pytest.raises(TypeError, match="non-empty list"):
        glm_batch(example, 0)
    with pytest.raises(ValueError, match="keys"):
        glm_batch([{"input_ids": example["input_ids"]}], 0)
    with pytest.raises(TypeError, match="examples\\[0\\]: expected a dict"):
        glm_batch([1], 0)
    on_meta = {key: value.to("meta") for key, value in example.items()}
    with pytest.raises(ValueError, match="one device"):
        glm_batch([example, on_meta], 0)
    with pytest.raises(ValueError, match="pad_id"):
        glm_batch([example], -1)


def test_glm_spans_respects_max_span_len():
    g = torch.Generator().manual_seed(0)
    longest = 0
    for _ in range(300):
        spans = glm_spans(200, g, max_span_len=4)
        longest = max(longest, *(end - start for start, end in spans))
    assert longest == 4  # reached, never passed
    # Without the cap, a 6-token text is sometimes covered almost whole; with max_span_len=1 never.
    for _ in range(100):
        assert all(end - start == 1 for start, end in glm_spans(6, g, max_span_len=1))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**31 - 1))
def test_glm_example_properties(n_tokens, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(10, 100, (n_tokens,), generator=g)
    spans = glm_spans(n_tokens, g, mask_ratio=0.3)
    spans = [spans[i] for i in torch.randperm(len(spans), generator=g).tolist()]
    example = glm_example(tokens, spans, 1, 2, 3)
    k, n_a = len(spans), int(example["prefix_len"])
    n_total = example["input_ids"].shape[0]
    assert n_total == n_tokens + 2 * k
    assert torch.equal(example["attention_mask"], prefix_lm_mask(n_total, n_a))
    ids, labels, pos = example["input_ids"].tolist(), example["labels"].tolist(), example["position_ids"]
    assert labels[:n_a] == [IGNORE_INDEX] * n_a and pos[1, :n_a].eq(0).all()
    # Re-expanding each [MASK] of Part A with its span gives the text back.
    span_at = {start: tokens[start:end].tolist() for start, end in spans}
    mask_index = {}
    text, masks_seen = [], 0
    for i, token in enumerate(ids[:n_a]):
        if token == 1:
            start = sorted(span_at)[masks_seen]
            mask_index[start] = i
            text += span_at[start]
            masks_seen += 1
        else:
            text.append(token)
    assert masks_seen == k and text == tokens.tolist()
    # Part B: per span in the given order, [S] + span, labels span + [E], row 0 its [MASK], row 1 1..len+1.
    i = n_a
    for start, end in spans:
        n = end - start + 1
        assert ids[i : i + n] == [2, *span_at[start]]
        assert labels[i : i + n] == [*span_at[start], 3]
        assert pos[0, i : i + n].tolist() == [mask_index[start]] * n
        assert pos[1, i : i + n].tolist() == list(range(1, n + 1))
        i += n
    assert i == n_total


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_glm_example_and_batch_on_the_gpu_equal_the_cpu():
    tokens = torch.arange(1, 21)
    spans = [(12, 15), (3, 5)]
    cpu = glm_example(tokens, spans, 27, 28, 29)
    gpu = glm_example(tokens.cuda(), spans, 27, 28, 29)
    for key in cpu:
        assert gpu[key].device.type == "cuda"
        assert torch.equal(gpu[key].cpu(), cpu[key])
    cpu_batch = glm_batch([cpu, glm_example(tokens[:10], [(2, 4)], 27, 28, 29)], 0)
    gpu_batch = glm_batch([gpu, glm_example(tokens[:10].cuda(), [(2, 4)], 27, 28, 29)], 0)
    for key in cpu_batch:
        assert gpu_batch[key].device.type == "cuda"
        assert torch.equal(gpu_batch[key].cpu(), cpu_batch[key])


# --- next-token prediction: perplexity and the bigram baseline ---------------------------------------


def test_perplexity_is_exp_of_the_loss():
    assert objectives.perplexity(math.log(73)) == pytest.approx(73)
    assert objectives.perplexity(0) == 1.0
    assert objectives.perplexity(torch.tensor(2.0)) == pytest.approx(math.exp(2.0))
    with pytest.raises(ValueError, match="finite number >= 0, got -0.1"):
        objectives.perplexity(-0.1)
    with pytest.raises(ValueError, match="finite number >= 0, got nan"):
        objectives.perplexity(float("nan"))
    with pytest.raises(ValueError, match="mean_nll_nats: expected a 0-D tensor"):
        objectives.perplexity(torch.ones(2))
    with pytest.raises(TypeError, match="mean_nll_nats: expected a float tensor"):
        objectives.perplexity(torch.tensor(2))
    with pytest.raises(TypeError, match="mean_nll_nats: expected a number"):
        objectives.perplexity("2.0")


def test_bigram_loss_by_hand():
    train = torch.tensor([0, 1, 0, 1, 1])  # pairs 01, 10, 01, 11
    val = torch.tensor([0, 1, 2, 2])  # pairs 01, 12, 22
    # add-one: row 0 counts [0, 2, 0] + 1 -> P(1|0) = 3/5; row 1 [1, 1, 0] + 1 -> P(2|1) = 1/5;
    # row 2 never seen: [0, 0, 0] + 1 -> P(2|2) = 1/3
    expected = -(math.log(3 / 5) + math.log(1 / 5) + math.log(1 / 3)) / 3
    assert objectives.bigram_loss(train, val, 3) == pytest.approx(expected, abs=1e-12)
    # smoothing 0.5: P(1|0) = 2.5/3.5, P(2|1) = 0.5/3.5, P(2|2) = 1/3
    expected = -(math.log(2.5 / 3.5) + math.log(0.5 / 3.5) + math.log(1 / 3)) / 3
    assert objectives.bigram_loss(train, val, 3, smoothing=0.5) == pytest.approx(expected, abs=1e-12)


def test_bigram_loss_equals_a_python_count():
    g = torch.Generator().manual_seed(5)
    train, val, vocab = torch.randint(6, (300,), generator=g), torch.randint(6, (80,), generator=g), 7
    counts = [[0.2] * vocab for _ in range(vocab)]
    for a, b in zip(train[:-1].tolist(), train[1:].tolist(), strict=True):
        counts[a][b] += 1
    nll = [
        -math.log(counts[a][b] / sum(counts[a]))
        for a, b in zip(val[:-1].tolist(), val[1:].tolist(), strict=True)
    ]
    assert objectives.bigram_loss(train, val, vocab, smoothing=0.2) == pytest.approx(
        sum(nll) / len(nll), abs=1e-12
    )


def test_bigram_loss_rejects_bad_input():
    ids = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="train_ids: expected a 1-D tensor"):
        objectives.bigram_loss(ids[None], ids, 3)
    with pytest.raises(TypeError, match="val_ids: expected dtype"):
        objectives.bigram_loss(ids, ids.float(), 3)
    with pytest.raises(ValueError, match="val_ids: expected at least 2 tokens"):
        objectives.bigram_loss(ids, ids[:1], 3)
    with pytest.raises(ValueError, match=r"train_ids: expected ids in \[0, 2\), got ids from 0 to 2"):
        objectives.bigram_loss(ids, ids, 2)
    with pytest.raises(ValueError, match="smoothing: expected a number > 0, got 0"):
        objectives.bigram_loss(ids, ids, 3, smoothing=0)
    with pytest.raises(ValueError, match="vocab_size: expected a positive int"):
        objectives.bigram_loss(ids, ids, 0)
    with pytest.raises(ValueError, match="dense V x V table; expected V <= 4096, got 50257"):
        objectives.bigram_loss(ids, ids, 50257)
