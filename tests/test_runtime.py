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


@pytest.mark.parametrize(
    ("seed", "error"), [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)]
)
def test_bad_seed_is_rejected(seed, error):
    with pytest.raises(error, match="seed: expected an int >= 0"):
        course_lib.setup(seed=seed)


def test_course_seed_shifts_every_seed_and_setup(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert [course_lib.seed(n) for n in (0, 1, 123)] == [0, 1, 123]  # the committed seeds
    course_lib.setup(seed=7)
    committed = torch.randn(3)
    monkeypatch.setenv("COURSE_SEED", "2")
    shifted = [course_lib.seed(n) for n in (0, 1, 123)]
    assert len(set(shifted)) == 3 and not set(shifted) & {0, 1, 123}
    course_lib.setup(seed=7)
    assert not torch.equal(torch.randn(3), committed)
    monkeypatch.setenv("COURSE_SEED", "0")
    assert course_lib.seed(5) == 5


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_course_seed_says_what_is_wrong(monkeypatch, value):
    monkeypatch.setenv("COURSE_SEED", value)
    with pytest.raises(ValueError, match=f"COURSE_SEED: expected a non-negative integer .*, got '{value}'"):
        course_lib.seed(0)
