import random

import matplotlib as mpl
import numpy as np
import pytest
import torch

import course_lib
from course_lib import runtime


@pytest.fixture(autouse=True)
def _restore_global_state():
    """``setup()`` changes process-wide state: put it back so later tests see what they expect."""
    rngs = random.getstate(), np.random.get_state(), torch.get_rng_state()
    flags = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    device = runtime._device
    with mpl.rc_context():  # restores matplotlib's rcParams on exit
        yield
    random.setstate(rngs[0])
    np.random.set_state(rngs[1])
    torch.set_rng_state(rngs[2])
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags[:2]
    torch.backends.cudnn.benchmark = flags[2]
    runtime._device = device


def test_setup_seeds_torch_and_numpy_reproducibly():
    import numpy as np

    course_lib.setup(seed=123)
    first = torch.randn(5), np.random.rand(3)
    course_lib.setup(seed=123)
    second = torch.randn(5), np.random.rand(3)
    torch.testing.assert_close(first[0], second[0])
    assert (first[1] == second[1]).all()
    course_lib.setup(seed=124)
    assert not torch.equal(torch.randn(5), first[0])


def test_setup_switches_tf32_off_and_returns_the_device(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    device = course_lib.setup()
    assert device == torch.device("cpu") == course_lib.get_device()
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False


def test_default_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert runtime._pick_device().type == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("tpu9", "expected a torch device"), ("cuda", "no CUDA GPU"), ("mps", "MPS is not available")],
)
def test_bad_course_device_says_what_is_wrong(monkeypatch, value, message):
    if value == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    if value == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    monkeypatch.setenv("COURSE_DEVICE", value)
    with pytest.raises(ValueError, match=message):
        course_lib.setup()


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed: expected a non-negative int"):
        course_lib.setup(seed=seed)
