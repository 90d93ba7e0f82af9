"""The shared core of the exercise checkers: call the learner's function, compare expected with got.

Every answer is first turned into CPU values (``to_cpu``): a tensor on any device, with or without
grad, a NumPy array or a Python number. Then one helper compares it with the reference and, on a
mismatch, raises ``AssertionError("<what>: expected <x>, got <y>")``. A plausible wrong answer
(``None``, a list for a tuple, a tensor for a number, a tensor on the ``meta`` device, a wrong
shape or type) always ends as such an ``AssertionError``, never as an error inside the checker;
an error raised inside the learner's own function propagates unchanged, so the learner sees
their own traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "ExerciseNotDone",
    "as_float64",
    "as_number",
    "as_sequence",
    "as_tensor",
    "attempt",
    "expect",
    "expect_close",
    "expect_equal",
    "expect_number",
    "passed",
    "seeded_randn",
    "to_cpu",
]

FORGOT_RETURN = "got None: did you forget `return`?"


class ExerciseNotDone(AssertionError):
    """The exercise's function still raises ``NotImplementedError``."""


def _call_text(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``name(a, b, key=c)`` with short reprs, for messages."""
    shown = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(shown)})"


def _short(value: object) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"<{type(value).__name__} of shape {tuple(value.shape)}>"
    return f"{value!r:.40}"


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn(*args, **kwargs)``; turn ``NotImplementedError`` into ``ExerciseNotDone``.

    A function that cannot be called this way (wrong number or names of parameters) is reported
    as an ``AssertionError``; any other exception raised inside ``fn`` propagates unchanged.
    """
    if not callable(fn):
        raise AssertionError(f"expected a function, got {type(fn).__name__} {fn!r:.60}")
    name = getattr(fn, "__name__", "your function")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some built-ins have no signature: just call them
        signature = None
    if signature is not None:
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:
            raise AssertionError(
                f"`{name}`: expected a function that can be called as {_call_text(name, args, kwargs)}, "
                f"got one with parameters {signature} ({error})"
            ) from None
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseNotDone(
            f"`{name}` is not written yet: replace `raise NotImplementedError()` in its cell "
            "with your code, run that cell, then run this check again."
        ) from None


def expect(ok: bool, what: str, expected: object, got: object) -> None:
    """Raise ``AssertionError("<what>: expected <expected>, got <got>")`` unless ``ok`` (a ``bool``)."""
    if not ok:
        raise AssertionError(f"{what}: expected {expected}, got {got}")


def passed(message: str) -> None:
    """Print the one line of a right answer."""
    print(f"✅ Correct: {message}")


def seeded_randn(*shape: int, seed: int) -> torch.Tensor:
    """Float64 normal samples from their own generator: the global random state is left alone."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- turning answers into CPU values ---------------------------------------------------------


def _describe(value: object) -> str:
    """A short description of an answer: type, shape and dtype for arrays, the value otherwise."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype} on {value.device}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r:.80}"


def to_cpu(what: str, value: object) -> object:
    """``value`` with every tensor in it detached and on the CPU (lists and tuples element by element).

    Raises ``AssertionError`` for ``None`` (a forgotten ``return``) and for a tensor on the ``meta``
    device, which has shapes but no values.
    """
    if value is None:
        raise AssertionError(f"{what}: expected a result, {FORGOT_RETURN}")
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            raise AssertionError(
                f"{what}: expected values, got a tensor on the meta device (no values): "
                "compute on a real device (cpu, cuda, mps)"
            )
        return value.detach().cpu()
    if type(value) in (list, tuple):  # not a subclass such as a named tuple: it is left as it is
        return type(value)(to_cpu(what, v) for v in value)
    return value


def as_tensor(what: str, value: object) -> torch.Tensor:
    """A CPU tensor of a tensor (any device), array, number or nested list of numbers."""
    value = to_cpu(what, value)
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (str, bytes, dict, set, frozenset)):
        raise AssertionError(f"{what}: expected a tensor or an array, got {_describe(value)}")
    try:
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind in "USV":
            raise TypeError(array.dtype)
        return torch.as_tensor(array)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise AssertionError(f"{what}: expected a tensor or an array, got {_describe(value)}") from None


def as_float64(what: str, value: object) -> torch.Tensor:
    """A float64 CPU tensor of an answer, or an ``AssertionError`` saying what was given instead."""
    tensor = as_tensor(what, value)
    if tensor.is_complex():
        raise AssertionError(f"{what}: expected real numbers, got {_describe(tensor)}")
    return tensor.to(torch.float64)


def as_number(what: str, value: object) -> int | float:
    """A Python number of a number, a NumPy scalar or a one-element tensor or array (any device)."""
    given = to_cpu(what, value)
    one_element = isinstance(given, (torch.Tensor, np.ndarray, np.generic)) and np.prod(given.shape) == 1
    number = given.item() if one_element else given
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise AssertionError(f"{what}: expected a number, got {_describe(given)}")
    return number


def as_sequence(what: str, value: object, names: Sequence[str]) -> list[Any]:
    """The items of an answer that must be ``len(names)`` values in order: a tuple, a list, ...

    Any sequence is accepted where only the order matters; a dict, a set, a string or a wrong
    length is an ``AssertionError``.
    """
    wanted = f"({', '.join(names)})"
    value = to_cpu(what, value)
    is_array = isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim >= 1
    if not is_array and (not isinstance(value, Sequence) or isinstance(value, (str, bytes))):
        raise AssertionError(
            f"{what}: expected {len(names)} values in order {wanted}, got {_describe(value)}"
        )
    items = list(value)
    expect(len(items) == len(names), what, f"{len(names)} values {wanted}", f"{len(items)} values")
    return items


# --- comparing -------------------------------------------------------------------------------


def expect_close(
    what: str, got: object, expected: np.ndarray | torch.Tensor | float, atol: float = 1e-6
) -> None:
    """Check shape first (the commonest mistake), then values within ``atol`` (+ 1e-5 relative)."""
    expected_t = as_float64(f"{what} (reference)", expected)
    got_t = as_float64(what, got)
    expect(got_t.shape == expected_t.shape, f"{what} shape", tuple(expected_t.shape), tuple(got_t.shape))
    expect(bool(torch.isfinite(got_t).all()), f"{what}", "finite values", "NaN or inf")
    worst = (got_t - expected_t).abs().max().item() if got_t.numel() else 0.0
    ok = torch.allclose(got_t, expected_t, atol=atol, rtol=1e-5)
    expect(ok, f"{what} values", f"the reference within {atol:g}", f"a largest difference of {worst:.3g}")


def expect_number(what: str, got: object, want: float, rtol: float = 0.0) -> None:
    """``got`` must be a number (a one-element tensor or array will do) equal to ``want``.

    With ``rtol > 0`` it may differ by ``rtol * max(1, |want|)``.
    """
    value = as_number(what, got)
    ok = abs(value - want) <= rtol * max(1.0, abs(want)) if rtol else value == want  # NaN is never close
    expect(ok, what, want, value)


def _plain(value: object) -> object:
    """Python values of an answer: tensors and arrays as (nested) lists, scalars as numbers."""
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def expect_equal(what: str, got: object, want: object) -> None:
    """``got`` must equal ``want`` exactly, compared as values on the CPU.

    ``want`` is a number, a tensor (then ``got`` may be a tensor on any device, an array or a nested
    list of the same shape) or a list (then any sequence with the same items in order will do).
    """
    got = to_cpu(what, got)
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        expect_number(what, got, want)
    elif isinstance(want, torch.Tensor):
        want_t = want.detach().cpu()
        got_t = as_tensor(what, got)
        expect(got_t.shape == want_t.shape, f"{what} shape", tuple(want_t.shape), tuple(got_t.shape))
        common = torch.promote_types(got_t.dtype, want_t.dtype)
        ok = torch.equal(got_t.to(common), want_t.to(common))
        expect(ok, what, want_t.tolist(), got_t.tolist())
    else:
        if not isinstance(got, (list, tuple, torch.Tensor, np.ndarray)):  # a dict, set, string, ...
            raise AssertionError(f"{what}: expected {want}, got {_describe(got)}")
        plain = _plain(got)
        expect(plain == _plain(want), what, want, plain)
