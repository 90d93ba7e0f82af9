import pytest
import torch

from course_lib import toy
from course_lib.train import TrainConfig, train


def test_retrieval_batch_answers_are_the_paired_values():
    batch = toy.retrieval_batch(64, 6, 10, 7, n_queries=2, generator=torch.Generator().manual_seed(0))
    assert batch.keys.shape == batch.values.shape == (64, 6)
    assert batch.queries.shape == batch.targets.shape == (64, 2)
    for b in range(64):
        keys = batch.keys[b].tolist()
        assert len(set(keys)) == 6 and all(0 <= k < 10 for k in keys)
        assert batch.queries[b, 0] != batch.queries[b, 1]
        for query, target in zip(batch.queries[b].tolist(), batch.targets[b].tolist(), strict=True):
            assert batch.values[b, keys.index(query)] == target
    again = toy.retrieval_batch(64, 6, 10, 7, n_queries=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.keys, batch.keys) and torch.equal(again.targets, batch.targets)


def test_retrieval_batch_rejects_impossible_settings():
    with pytest.raises(ValueError, match="need n_keys >= n_pairs, got n_keys=4"):
        toy.retrieval_batch(2, 5, 4, 3)
    with pytest.raises(ValueError, match="need n_pairs >= n_queries, got 2"):
        toy.retrieval_batch(2, 2, 4, 3, n_queries=3)
    with pytest.raises(ValueError, match="batch_size: expected a positive int, got 0"):
        toy.retrieval_batch(0, 2, 4, 3)


def test_model_shapes_and_pair_order_invariance():
    torch.manual_seed(0)
    model = toy.RetrievalModel(10, 7, d_model=16, n_heads=2, n_queries=2).eval()
    batch = toy.retrieval_batch(4, 5, 10, 7, n_queries=2, generator=torch.Generator().manual_seed(1))
    logits, weights = model(batch, need_weights=True)
    assert logits.shape == (4, 2, 7) and weights.shape == (4, 2, 6, 6)
    order = torch.tensor([3, 0, 4, 1, 2])
    shuffled = toy.RetrievalBatch(batch.keys[:, order], batch.values[:, order], batch.queries, batch.targets)
    torch.testing.assert_close(model(shuffled)[0], logits)  # no positions: pair order is irrelevant
    with pytest.raises(ValueError, match="queries: expected 2 per sample, got 1"):
        model(toy.retrieval_batch(4, 5, 10, 7, n_queries=1))


def test_one_attention_layer_learns_the_lookup():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = toy.RetrievalModel(12, 12, d_model=32)
    config = TrainConfig(steps=400, lr=3e-3, warmup_steps=20)
    train(
        model,
        lambda: toy.retrieval_batch(64, 6, 12, 12, generator=generator),
        toy.RetrievalModel.loss,
        config,
        progress=False,
    )
    test = toy.retrieval_batch(1000, 6, 12, 12, generator=torch.Generator().manual_seed(99))
    assert model.accuracy(test) > 0.95  # chance is 1/12


def test_reversal_batch_targets_are_the_reversed_sources():
    source, target = toy.reversal_batch(32, 7, 5, generator=torch.Generator().manual_seed(0))
    assert source.shape == target.shape == (32, 7) and source.dtype == torch.int64
    assert int(source.min()) >= 0 and int(source.max()) < 5 and len(source.unique()) == 5
    for i in range(7):
        assert torch.equal(target[:, i], source[:, 6 - i])  # output i reads source position T - 1 - i
    again, _ = toy.reversal_batch(32, 7, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, source)
    with pytest.raises(ValueError, match="length: expected a positive int, got 0"):
        toy.reversal_batch(2, 0, 5)
