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
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tr.TrainConfig(**kwargs)


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
