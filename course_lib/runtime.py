"""Reproducible start-up: seeds, device choice, and numerics that agree between CPU and GPU.

The notebooks are checked by re-running them on a CPU and on a CUDA GPU against the same stored
outputs. That works only when random numbers come from the CPU generator (seed, create on the
CPU, then ``.to(device)``) and when the GPU does full-precision float32 matmuls (no TF32).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from course_lib._validate import check_int

_DEVICE_ENV = "COURSE_DEVICE"
_SEED_ENV = "COURSE_SEED"
_SEED_STRIDE = 1_000_003  # a prime far above any seed a notebook names: shifted seeds never collide
_device: torch.device | None = None


def seed(n: int = 0) -> int:
    """The ``n``-th seed of this run: ``n`` itself, or shifted when ``$COURSE_SEED`` is set.

    Every seed the notebooks use goes through here (``torch.manual_seed(course_lib.seed(0))``,
    ``torch.Generator().manual_seed(course_lib.seed(1))``), so one environment variable re-runs the
    whole course on other random draws: ``make robust SEEDS="1 2"`` checks that every experiment's
    asserts hold there too. Unset or ``0``, the seeds are the committed ones.
    """
    return _shift(n, "n")


def _shift(n: object, name: str) -> int:
    check_int(n, name, minimum=0)
    wanted = os.environ.get(_SEED_ENV, "").strip() or "0"
    if not wanted.isdigit():
        raise ValueError(f"{_SEED_ENV}: expected a non-negative integer such as 0 or 3, got {wanted!r}")
    return n + _SEED_STRIDE * int(wanted)


def _pick_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU; ``$COURSE_DEVICE`` (e.g. ``cpu``, ``cuda:1``) overrides."""
    wanted = os.environ.get(_DEVICE_ENV, "").strip()
    if wanted:
        try:
            device = torch.device(wanted)
        except RuntimeError as error:
            raise ValueError(
                f"{_DEVICE_ENV}: expected a torch device such as 'cpu', 'cuda' or 'mps', got {wanted!r}"
            ) from error
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{_DEVICE_ENV}={wanted!r}, but this machine has no CUDA GPU")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"{_DEVICE_ENV}={wanted!r}, but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setup(seed: int = 0) -> torch.device:
    """Seed Python, NumPy and torch, pick the device, switch off TF32, style the figures.

    Args:
        seed: the seed for ``random``, ``numpy.random`` and ``torch`` (CPU and CUDA), shifted by
            ``$COURSE_SEED`` like every seed of the course (see ``course_lib.seed``).

    Returns:
        The device the notebook should use (also available later as ``get_device()``).
    """
    global _device
    value = _shift(seed, "seed")
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    from course_lib.plots import use_course_style  # matplotlib loads only when needed

    use_course_style()
    _device = _pick_device()
    return _device


def get_device() -> torch.device:
    """The device chosen by ``setup()``; picks one the same way if ``setup()`` was not called."""
    return _device if _device is not None else _pick_device()
