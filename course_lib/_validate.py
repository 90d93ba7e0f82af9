"""Input checks shared by every module: one place that words "expected ..., got ..." errors.

Python's own rule, followed everywhere in the course: ``TypeError`` for a value of the wrong type
(``1.5`` where an int is needed, a list where a tensor is), ``ValueError`` for a value of the right
type that is out of range or of the wrong shape (``dropout=1.5``, ``n_heads=0``). Every message
names the argument, what was expected and what was given. Never a bare ``assert``: ``python -O``
removes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def describe(value: object) -> str:
    """A short description of a value for error messages: shape and dtype for arrays."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(value).__name__} {value!r}"


def check_tensor(
    value: object,
    name: str,
    *,
    ndim: int | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
) -> torch.Tensor:
    """Return ``value`` if it is a tensor with ``ndim`` dimensions and one of ``dtypes``.

    Raises:
        TypeError: if ``value`` is not a tensor or has another dtype.
        ValueError: if it has another number of dimensions.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {describe(value)}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(
            f"{name}: expected a {ndim}-D tensor, got shape {tuple(value.shape)} ({value.ndim}-D)"
        )
    if dtypes is not None and value.dtype not in dtypes:
        wanted = " or ".join(str(d) for d in dtypes)
        raise TypeError(f"{name}: expected dtype {wanted}, got {value.dtype}")
    return value


def check_int(value: object, name: str, *, minimum: int = 0) -> int:
    """Return ``value`` if it is an int (not a bool) ``>= minimum``.

    Raises:
        TypeError: if ``value`` is not an int (``1.5``, ``"3"``, ``True``).
        ValueError: if it is smaller than ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int greater than zero (``TypeError`` / ``ValueError`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a positive int, got {describe(value)}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return value


def check_number(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a real number (not a bool), else raise ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {describe(value)}")
    return float(value)


def check_probability(value: object, name: str) -> float:
    """Return ``value`` if it is a number in ``[0, 1)``: a dropout rate or a masking probability."""
    if not 0 <= check_number(value, name) < 1:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return float(value)


def check_fraction(value: object, name: str) -> float:
    """Return ``value`` if it is a number strictly between 0 and 1, else raise ``ValueError``."""
    if not 0 < check_number(value, name) < 1:
        raise ValueError(f"{name}: expected a number strictly between 0 and 1, got {value!r}")
    return float(value)


def check_heads(d_model: object, n_heads: object, n_kv_heads: object = None, *, rope: bool = False) -> int:
    """Check an attention layout and return the head dimension ``D = d_model / n_heads``.

    The rules every config and attention layer shares: ``d_model``, ``n_heads`` (and ``n_kv_heads``
    unless ``None``) positive ints, ``n_heads`` dividing ``d_model``, ``n_kv_heads`` dividing
    ``n_heads`` (each K/V head serves a whole group of query heads), and, when ``rope`` is set,
    an even head dimension (RoPE rotates pairs of channels).
    """
    check_positive_int(d_model, "d_model")
    check_positive_int(n_heads, "n_heads")
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
    if n_kv_heads is not None:
        check_positive_int(n_kv_heads, "n_kv_heads")
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads={n_heads} must be divisible by n_kv_heads={n_kv_heads}")
    head_dim = d_model // n_heads
    if rope and head_dim % 2:
        raise ValueError(
            f"RoPE rotates pairs: head_dim = d_model / n_heads must be even, "
            f"got {d_model} / {n_heads} = {head_dim}"
        )
    return head_dim
