"""Data parallelism with ``torch.nn.parallel.DistributedDataParallel`` (notebook 08).

Run as a script, one process per rank::

    torchrun --standalone --nproc_per_node 2 -m course_lib.ddp_demo --out DIR

Every rank builds the same ``TinyLM`` (same seed), takes its own shard of one fixed global batch,
and takes plain SGD steps (``fit``). DDP averages the gradients over the ranks during each
backward pass (an all-reduce), so every rank applies the same update. With shards of equal size,
the mean of the shards' mean losses is the mean loss of the whole batch, so the averaged gradient
is the gradient one process would get from the whole batch: ``train_one_process`` trains that
process, and the two end with the same weights up to float rounding. Rank 0 saves its weights
as ``DIR/ddp.safetensors``.

Why SGD and not AdamW: rounding makes the two runs' gradients differ in the last bits, and Adam
divides each gradient by its own running size. For a gradient that is zero in exact arithmetic
(the key projection's bias: adding the same ``q . b_k`` to every score of a row leaves the
softmax unchanged) that size is the rounding noise itself, and Adam turns the noise into full
steps of size ``lr``, different in the two runs. SGD moves such a weight by ``lr`` times the noise.

Why float64: even with SGD, training amplifies the float32 rounding differences (summing the
batch in two halves, then averaging, rounds differently from summing it at once); in our runs
they grew from ``1e-8`` to ``1e-4`` over 20 steps on some seeds; in float64 they stayed below
``1e-13`` (seeds 0-7). So in float64 a tolerance of ``1e-9`` separates "the same computation" from
a different one: training on one shard only ends ``0.08``-``0.14`` away (seeds 0-7).

The ranks talk through gloo on CPUs, or NCCL when there is one CUDA GPU per rank (NCCL cannot
share a GPU between ranks). ``--standalone`` starts a rendezvous on this machine on a free port:
no network is needed. Li et al. 2020, "PyTorch Distributed: experiences on accelerating data
parallel training", describe DDP.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from course_lib._validate import check_positive_int
from course_lib.models import TinyLM, TinyLMConfig, lm_loss
from course_lib.runtime import seed
from course_lib.train import load_checkpoint, save_checkpoint

CONFIG = TinyLMConfig(vocab_size=32, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16)
GLOBAL_BATCH = 8  # sequences per step, summed over the ranks
SEQ_LEN = 16  # tokens per sequence
STEPS = 20  # optimizer steps
LR = 0.1  # SGD's learning rate
DTYPE = torch.float64  # see the module's docstring
CHECKPOINT = "ddp.safetensors"


def make_model() -> TinyLM:
    """The model every rank (and the single process) starts from: the same seed, the same weights."""
    torch.manual_seed(seed(0))
    return TinyLM(CONFIG).to(DTYPE)


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """One fixed batch of random token ids: inputs and next-token targets ``(GLOBAL_BATCH, SEQ_LEN)``."""
    generator = torch.Generator().manual_seed(seed(1))
    tokens = torch.randint(CONFIG.vocab_size, (GLOBAL_BATCH, SEQ_LEN + 1), generator=generator)
    return tokens[:, :-1], tokens[:, 1:]


def shard(batch: tuple[torch.Tensor, torch.Tensor], rank: int, world_size: int) -> tuple[torch.Tensor, ...]:
    """Rank ``rank``'s contiguous share of the batch: ``GLOBAL_BATCH / world_size`` sequences."""
    if GLOBAL_BATCH % world_size:
        raise ValueError(
            f"world_size: expected a divisor of GLOBAL_BATCH={GLOBAL_BATCH} (equal shards), got {world_size}"
        )
    return tuple(x.chunk(world_size)[rank] for x in batch)


def fit(model: nn.Module, batch: tuple[torch.Tensor, ...], steps: int = STEPS) -> list[float]:
    """``steps`` steps of SGD on one fixed ``batch``; returns the losses (of this process's batch).

    With a ``DistributedDataParallel`` model, ``backward()`` also averages the gradients over the
    ranks, so ``optimizer.step()`` applies the same update on every rank.
    """
    check_positive_int(steps, "steps")
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    losses = []
    for _ in range(steps):
        loss = lm_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: gradients all-reduced (averaged over the ranks) here
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_one_process(steps: int = STEPS) -> TinyLM:
    """Train ``make_model()`` on the whole global batch, in this process, on the CPU."""
    model = make_model()
    fit(model, global_batch(), steps)
    return model


def train_data_parallel(out_dir: Path, steps: int = STEPS) -> None:
    """The body of each rank (started by ``torchrun``, which sets ``RANK``, ``WORLD_SIZE``, ...)."""
    world_size = int(os.environ["WORLD_SIZE"])
    use_nccl = torch.cuda.is_available() and torch.cuda.device_count() >= world_size
    dist.init_process_group("nccl" if use_nccl else "gloo")
    try:
        rank = dist.get_rank()
        device = torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}" if use_nccl else "cpu")
        model = make_model().to(device)  # created on the CPU (same seed on every rank), then moved
        # DDP checks that the shapes match on every rank, then copies rank 0's weights to every rank
        ddp_model = DistributedDataParallel(model)
        x, y = (t.to(device) for t in shard(global_batch(), rank, world_size))
        fit(ddp_model, (x, y), steps)
        if rank == 0:
            metadata = {"world_size": world_size, "backend": dist.get_backend(), "steps": steps}
            save_checkpoint(model, out_dir / CHECKPOINT, metadata)
    finally:
        dist.destroy_process_group()


def launch(out_dir: str | Path, n_processes: int = 2, steps: int = STEPS, timeout: float = 300) -> Path:
    """Run this module under ``torchrun`` with ``n_processes`` ranks; return the saved checkpoint.

    Equivalent to ``torchrun --standalone --nproc_per_node N -m course_lib.ddp_demo --out DIR``
    (``python -m torch.distributed.run`` is ``torchrun`` from this Python). Each rank gets one CPU
    thread. Raises ``RuntimeError`` with the ranks' output when they fail.
    """
    out_dir = Path(out_dir)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_processes}",
        "-m", "course_lib.ddp_demo", "--out", str(out_dir), "--steps", str(steps),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        raise RuntimeError(f"torchrun failed (exit code {result.returncode}):\n{output}")
    return out_dir / CHECKPOINT


def load_result(path: str | Path) -> tuple[TinyLM, dict]:
    """The model saved by rank 0, and its metadata (``world_size``, ``backend``, ``steps``)."""
    model = TinyLM(CONFIG).to(DTYPE)
    metadata = load_checkpoint(model, path)
    return model, metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the rank-0 checkpoint")
    parser.add_argument("--steps", type=int, default=STEPS, help="optimizer steps")
    args = parser.parse_args(argv)
    train_data_parallel(args.out, args.steps)


if __name__ == "__main__":
    main()
