"""``objectives.mlm_mask``: BERT's 15% / 80-10-10 corruption (Devlin et al. 2019, appendix A.1)."""

import pytest
import torch

from course_lib.objectives import IGNORE_INDEX, mlm_mask

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
