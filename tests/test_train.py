import math

import pytest
import torch

from course_lib import train as tr


def test_warmup_then_cosine_schedule():
    config = tr.TrainConfig(steps=11, lr=1.0, warmup_steps=2, cosine=True, min_lr_ratio=0.1)
    lrs = [tr.lr_at(step, config) for step in range(11)]
    assert lrs[:2] == [0.5, 1.0]
    assert lrs[2] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    assert lrs[6] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 4 / 8)))
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))  # never rises after warmup
    assert tr.lr_at(5, tr.TrainConfig(lr=0.3)) == 0.3  # constant without a schedule


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps: expected a positive int"),
        ({"lr": -1.0}, "lr: expected a positive"),
        ({"steps": 5, "warmup_steps": 6}, "warmup_steps: expected 0..steps=5, got 6"),
        ({"min_lr_ratio": 2.0}, r"min_lr_ratio: expected a number in \[0, 1\]"),
        ({"grad_clip": -1}, r"grad_clip: expected a number > 0 or None \(no clipping\), got -1"),
        ({"weight_decay": -0.1}, "weight_decay: expected a number >= 0"),
        ({"log_every": 0}, "log_every: expected a positive int, got 0"),
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tr.TrainConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup_steps": 1.5}, "warmup_steps: expected an int >= 0, got float 1.5"),
        ({"steps": "10"}, "steps: expected a positive int, got str '10'"),
        ({"lr": None}, "lr: expected a number, got NoneType None"),
    ],
)
def test_config_of_the_wrong_type_is_rejected(kwargs, message):
    with pytest.raises(TypeError, match=message):
        tr.TrainConfig(**kwargs)


def test_a_diverging_loss_stops_training_with_the_step_and_advice():
    model = torch.nn.Linear(2, 1)
    calls = []

    def loss_becoming_nan(m, batch):
        calls.append(1)
        loss = mse(m, batch)
        return loss * float("nan") if len(calls) == 8 else loss

    with pytest.raises(tr.NonFiniteLossError, match="the loss became nan at step 7 .* Try a smaller lr"):
        tr.train(
            model, _regression(), loss_becoming_nan, tr.TrainConfig(steps=20, log_every=5), progress=False
        )
    assert len(calls) == 10  # noticed at the next read-back, not after the whole run


def test_losses_read_back_in_chunks_are_every_step_in_order():
    losses = iter(range(100))
    model = torch.nn.Linear(1, 1)

    def counting_loss(m, batch):  # training step i reports i (plus a term with a gradient)
        return m(batch).sum() * 0 + (next(losses) if m.training else -1.0)

    config = tr.TrainConfig(steps=23, log_every=7, eval_every=10, eval_batches=1)
    history = tr.train(
        model,
        lambda: torch.ones(1, 1),
        counting_loss,
        config,
        next_eval_batch=lambda: torch.ones(1, 1),
        progress=False,
    )
    assert history.train_loss == [float(i) for i in range(23)]
    assert history.eval_steps == [0, 10, 20, 22] and history.eval_loss == [-1.0] * 4


def test_gradient_clipping_takes_effect():
    def steep(m, batch):
        return (m(batch) * 1000).pow(2).mean()

    norms = {}
    for clip in (None, 0.5):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)
        tr.train(
            model, lambda: torch.ones(4, 2), steep, tr.TrainConfig(steps=1, grad_clip=clip), progress=False
        )
        norms[clip] = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    assert norms[None] > 100 and norms[0.5] == pytest.approx(0.5, rel=1e-4)


def _regression():
    generator = torch.Generator().manual_seed(0)
    true_w = torch.tensor([[2.0], [-3.0]])

    def next_batch():
        x = torch.randn(32, 2, generator=generator)
        return x, x @ true_w + 0.5

    return next_batch


def mse(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def test_training_fits_a_linear_map_and_records_history():
    model = torch.nn.Linear(2, 1)
    config = tr.TrainConfig(steps=300, lr=0.05, eval_every=100, eval_batches=2, warmup_steps=10, cosine=True)
    history = tr.train(model, _regression(), mse, config, next_eval_batch=_regression(), progress=False)
    assert len(history.train_loss) == len(history.lr) == 300
    assert history.eval_steps == [0, 100, 200, 299]
    assert history.eval_loss[-1] < 1e-3 < history.eval_loss[0]
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[2.0, -3.0]]), atol=0.02, rtol=0)


def test_train_equals_a_plain_pytorch_loop():
    torch.manual_seed(0)
    ours, plain = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    plain.load_state_dict(ours.state_dict())
    config = tr.TrainConfig(steps=20, lr=0.1, weight_decay=0.01, grad_clip=None)
    tr.train(ours, _regression(), mse, config, progress=False)
    optimizer = torch.optim.AdamW(plain.parameters(), lr=0.1, weight_decay=0.01)
    next_batch = _regression()
    for _ in range(20):
        optimizer.zero_grad()
        mse(plain, next_batch()).backward()
        optimizer.step()
    for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_evaluate_uses_eval_mode_and_restores_it():
    model = torch.nn.Sequential(torch.nn.Dropout(0.9), torch.nn.Identity())
    x = torch.ones(1000)
    loss = tr.evaluate(model, lambda: (x, x), lambda m, b: (m(b[0]) - b[1]).abs().mean(), 3)
    assert loss == 0.0  # dropout is off in eval mode
    assert model.training

    def failing_batch():
        raise RuntimeError("no more data")

    with pytest.raises(RuntimeError, match="no more data"):
        tr.evaluate(model, failing_batch, lambda m, b: m(b), 1)
    assert model.training  # restored even though a batch raised


def test_non_scalar_loss_is_rejected():
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"expected a scalar loss, got shape \(32, 1\)"):
        tr.train(model, _regression(), lambda m, b: m(b[0]), tr.TrainConfig(steps=1), progress=False)


def test_checkpoint_round_trip(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    path = tr.save_checkpoint(model, tmp_path / "ckpt" / "model.safetensors", {"step": 7})
    restored = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    assert tr.load_checkpoint(restored, path) == {"step": 7}
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(RuntimeError, match="size mismatch"):
        tr.load_checkpoint(torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.LayerNorm(5)), path)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        tr.load_checkpoint(model, tmp_path / "missing.safetensors")


class TiedLM(torch.nn.Module):
    """An embedding and an output head that share one matrix (weight tying)."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(7, 4)
        self.head = torch.nn.Linear(4, 7, bias=False)
        self.head.weight = self.embedding.weight

    def forward(self, idx):
        return self.head(self.embedding(idx))


def test_checkpoint_with_tied_weights(tmp_path):
    torch.manual_seed(0)
    model = TiedLM()
    path = tr.save_checkpoint(model, tmp_path / "tied.safetensors", {"tied": True})
    torch.manual_seed(1)
    restored = TiedLM()
    assert tr.load_checkpoint(restored, path) == {"tied": True}
    torch.testing.assert_close(restored.embedding.weight, model.embedding.weight)
    assert restored.head.weight is restored.embedding.weight  # still one tensor
    idx = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(restored(idx), model(idx))
