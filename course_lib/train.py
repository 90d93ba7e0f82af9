"""A small, readable training loop, with evaluation, schedules and safetensors checkpoints.

It uses AdamW, an optional linear warmup and cosine decay, gradient clipping and a progress bar.
The loop is model-agnostic: you pass a function that draws a batch and a function that turns
``(model, batch)`` into a scalar loss, so the same loop trains every model of the course.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from course_lib._validate import check_positive_int

Batch = Any  # whatever the batch function returns and the loss function takes
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # optimizer steps
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    warmup_steps: int = 0  # linear warmup from 0 to lr over these steps
    cosine: bool = False  # decay from lr to min_lr_ratio * lr after warmup (cosine)
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of lr (with cosine)
    grad_clip: float | None = 1.0  # clip the global gradient norm to this; None: no clipping
    eval_every: int = 100  # evaluate every this many steps (and at the last step)
    eval_batches: int = 10  # batches averaged per evaluation

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        check_positive_int(self.eval_every, "eval_every")
        check_positive_int(self.eval_batches, "eval_batches")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps: expected 0..steps={self.steps}, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio: expected a number in [0, 1], got {self.min_lr_ratio}")


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Linear warmup ``lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then
    constant, or (``cosine=True``) a half cosine from ``lr`` down to ``min_lr_ratio * lr`` at
    the last step.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if not config.cosine:
        return config.lr
    decay_steps = max(1, config.steps - 1 - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    low = config.min_lr_ratio * config.lr
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * progress))


@dataclass
class History:
    """What happened during training, for plots and asserts."""

    train_loss: list[float] = field(default_factory=list)  # one per step
    lr: list[float] = field(default_factory=list)  # one per step
    eval_steps: list[int] = field(default_factory=list)  # the step of each evaluation
    eval_loss: list[float] = field(default_factory=list)  # one per evaluation


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, next_batch: Callable[[], Batch], loss_fn: LossFn, n_batches: int
) -> float:
    """Mean loss over ``n_batches`` batches, in eval mode and without gradients."""
    check_positive_int(n_batches, "n_batches")
    was_training = model.training
    model.eval()
    total = sum(loss_fn(model, next_batch()).item() for _ in range(n_batches))
    model.train(was_training)
    return total / n_batches


def train(
    model: torch.nn.Module,
    next_batch: Callable[[], Batch],
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    next_eval_batch: Callable[[], Batch] | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` in place with AdamW and return its ``History``.

    Args:
        next_batch: returns a fresh training batch each call.
        loss_fn: ``loss_fn(model, batch)`` returns a scalar loss tensor.
        next_eval_batch: returns an evaluation batch; without it, no evaluation.
        progress: show a ``tqdm`` progress bar with the running loss.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = History()
    model.train()
    bar = tqdm(range(config.steps), disable=not progress, desc="training")
    for step in bar:
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_fn(model, next_batch())
        if loss.ndim != 0:
            raise ValueError(f"loss_fn: expected a scalar loss, got shape {tuple(loss.shape)}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        history.train_loss.append(loss.item())
        history.lr.append(lr)
        last = step == config.steps - 1
        if next_eval_batch is not None and (step % config.eval_every == 0 or last):
            history.eval_steps.append(step)
            history.eval_loss.append(evaluate(model, next_eval_batch, loss_fn, config.eval_batches))
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", refresh=False)
    return history


def save_checkpoint(model: torch.nn.Module, path: str | Path, metadata: dict | None = None) -> Path:
    """Save the model's ``state_dict`` (and JSON-able ``metadata``) as a safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, path, metadata={"course_metadata": json.dumps(metadata or {})})
    return path


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> dict:
    """Load a checkpoint written by ``save_checkpoint`` into ``model``; return its metadata.

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: the tensors do not match the model's parameters (names or shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    device = next(model.parameters(), torch.empty(0)).device
    model.load_state_dict(load_file(path, device=str(device)))
    with safe_open(path, framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("course_metadata", "{}"))
