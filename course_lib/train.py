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
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm

from course_lib._validate import check_int, check_number, check_positive_int

Batch = Any  # whatever the batch function returns and the loss function takes
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # optimizer steps
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    warmup_steps: int = 0  # linear warmup from lr / warmup_steps to lr over these steps
    cosine: bool = False  # decay from lr to min_lr_ratio * lr after warmup (cosine)
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of lr (with cosine)
    grad_clip: float | None = 1.0  # clip the global gradient norm to this; None: no clipping
    eval_every: int = 100  # evaluate every this many steps (and at the last step)
    eval_batches: int = 10  # batches averaged per evaluation
    log_every: int = 25  # read the loss back from the device (one sync) every this many steps

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every", "eval_batches", "log_every"):
            check_positive_int(getattr(self, name), name)
        if not check_number(self.lr, "lr") > 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        if not check_number(self.weight_decay, "weight_decay") >= 0:
            raise ValueError(f"weight_decay: expected a number >= 0, got {self.weight_decay!r}")
        if check_int(self.warmup_steps, "warmup_steps") > self.steps:
            raise ValueError(f"warmup_steps: expected 0..steps={self.steps}, got {self.warmup_steps}")
        if not 0 <= check_number(self.min_lr_ratio, "min_lr_ratio") <= 1:
            raise ValueError(f"min_lr_ratio: expected a number in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None and not check_number(self.grad_clip, "grad_clip") > 0:
            raise ValueError(f"grad_clip: expected a number > 0 or None (no clipping), got {self.grad_clip}")


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
    """Mean loss over ``n_batches`` batches, in eval mode and without gradients.

    The model's mode (train or eval) is restored afterwards, even when a batch raises.
    """
    check_positive_int(n_batches, "n_batches")
    was_training = model.training
    model.eval()
    try:
        total = torch.stack([loss_fn(model, next_batch()).detach() for _ in range(n_batches)]).sum()
    finally:
        model.train(was_training)
    return total.item() / n_batches


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite: the run has diverged."""


def _record_losses(history: History, pending: list[torch.Tensor], first_step: int) -> None:
    """Copy the pending per-step losses to ``history`` (one device sync); stop on NaN/inf."""
    values = torch.stack(pending).float().cpu()
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        step = first_step + int(bad[0])
        raise NonFiniteLossError(
            f"the loss became {values[int(bad[0])].item()} at step {step} (learning rate "
            f"{history.lr[step]:.3g}). Try a smaller lr, a longer warmup (warmup_steps), gradient "
            "clipping (grad_clip=1.0), or look for a log of 0 or a division by 0 in the loss."
        )
    history.train_loss.extend(values.tolist())
    pending.clear()


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

    The losses stay on the device and are read back every ``config.log_every`` steps (and at each
    evaluation), because reading a GPU value waits for all queued work to finish.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (names the step and what to try).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = History()
    pending: list[torch.Tensor] = []  # losses not yet read back from the device
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
        pending.append(loss.detach())
        history.lr.append(lr)
        last = step == config.steps - 1
        evaluating = next_eval_batch is not None and (step % config.eval_every == 0 or last)
        if evaluating or last or len(pending) == config.log_every:
            _record_losses(history, pending, step + 1 - len(pending))
            bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", refresh=False)
        if evaluating:
            history.eval_steps.append(step)
            history.eval_loss.append(evaluate(model, next_eval_batch, loss_fn, config.eval_batches))
    return history


def save_checkpoint(model: torch.nn.Module, path: str | Path, metadata: dict | None = None) -> Path:
    """Save the model's parameters and buffers (and JSON-able ``metadata``) as a safetensors file.

    Tied weights (one tensor under two names, e.g. an LM head sharing the token embedding) are
    stored once; ``load_checkpoint`` ties them again.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path), metadata={"course_metadata": json.dumps(metadata or {})})
    return path


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> dict:
    """Load a checkpoint written by ``save_checkpoint`` into ``model``; return its metadata.

    The tensors are read to the CPU and copied into the model's own tensors, wherever they live.

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: the tensors do not match the model's parameters (names or shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    load_model(model, str(path), strict=True, device="cpu")
    return read_checkpoint_metadata(path)


def read_checkpoint_metadata(path: str | Path) -> dict:
    """The ``metadata`` that ``save_checkpoint`` stored in a safetensors file (``{}`` if none).

    It reads the file's header only, so a loader can learn the model's configuration before it
    builds the model.
    """
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("course_metadata", "{}"))
