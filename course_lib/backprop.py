"""Backpropagation by hand: a two-layer network in NumPy (notebook 01).

The network maps inputs ``X`` of shape ``(N, d_in)`` to probabilities over ``K`` classes::

    a1 = X @ W1 + b1        (N, d_hidden)   hidden pre-activation
    h  = relu(a1)           (N, d_hidden)
    z  = h @ W2 + b2        (N, K)          logits
    p  = softmax(z)         (N, K)
    L  = mean_n -log p[n, y_n]

``backward`` returns the exact gradient of ``L`` for each parameter, derived with the chain rule
(Rumelhart, Hinton and Williams, 1986); ``numerical_gradient`` checks it by finite differences.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Params = dict[str, np.ndarray]  # "W1" (d_in, d_hidden), "b1" (d_hidden,), "W2" (d_hidden, K), "b2" (K,)


def _check_matrix(value: object, name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.ndim != 2:
        got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(f"{name}: expected a 2-D NumPy array, got {got}")
    return value


def _check_labels(y: object, n: int, n_classes: int) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        got = f"shape {y.shape} dtype {y.dtype}" if isinstance(y, np.ndarray) else type(y).__name__
        raise ValueError(f"y: expected an integer array of shape ({n},), got {got}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y: expected class ids in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    return y


def init_params(n_in: int, n_hidden: int, n_out: int, seed: int = 0) -> Params:
    """He-initialised weights ``N(0, 2 / fan_in)`` and zero biases, float64."""
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_hidden)),
        "b1": np.zeros(n_hidden),
        "W2": rng.normal(0.0, np.sqrt(2.0 / n_hidden), size=(n_hidden, n_out)),
        "b2": np.zeros(n_out),
    }


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``(N, K)``, stable for large logits (subtracts each row's max)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-probability of the true classes: probs ``(N, K)``, y ``(N,)``."""
    _check_matrix(probs, "probs")
    _check_labels(y, probs.shape[0], probs.shape[1])
    return float(-np.log(probs[np.arange(len(y)), y]).mean())


def forward(params: Params, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Probabilities ``(N, K)`` for inputs ``X (N, d_in)``, and the cache that ``backward`` needs."""
    _check_matrix(X, "X")
    if X.shape[1] != params["W1"].shape[0]:
        raise ValueError(f"X: expected {params['W1'].shape[0]} features, got {X.shape[1]}")
    a1 = X @ params["W1"] + params["b1"]  # (N, d_hidden)
    h = np.maximum(a1, 0.0)  # (N, d_hidden)
    z = h @ params["W2"] + params["b2"]  # (N, K)
    probs = softmax(z)  # (N, K)
    return probs, {"X": X, "a1": a1, "h": h, "probs": probs}


def backward(params: Params, cache: dict[str, np.ndarray], y: np.ndarray) -> Params:
    """Gradients of the mean cross-entropy with respect to every parameter (same shapes)."""
    X, a1, h, probs = cache["X"], cache["a1"], cache["h"], cache["probs"]
    n = X.shape[0]
    _check_labels(y, n, probs.shape[1])
    dz = probs.copy()  # (N, K): dL/dz = (p - onehot(y)) / N
    dz[np.arange(n), y] -= 1.0
    dz /= n
    dh = dz @ params["W2"].T  # (N, d_hidden)
    da1 = dh * (a1 > 0)  # (N, d_hidden): ReLU passes the gradient where it was active
    return {
        "W1": X.T @ da1,  # (d_in, d_hidden)
        "b1": da1.sum(axis=0),  # (d_hidden,)
        "W2": h.T @ dz,  # (d_hidden, K)
        "b2": dz.sum(axis=0),  # (K,)
    }


def loss_and_grads(params: Params, X: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """One forward and one backward pass: the loss and the gradient of every parameter."""
    probs, cache = forward(params, X)
    return cross_entropy(probs, y), backward(params, cache, y)


def predict(params: Params, X: np.ndarray) -> np.ndarray:
    """The most probable class of each input: shape ``(N,)``."""
    return forward(params, X)[0].argmax(axis=1)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences ``(f(x + eps) - f(x - eps)) / (2 eps)``, one entry at a time.

    ``f`` takes no argument and reads ``x``, which is changed in place and restored.
    """
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = f()
        x[index] = original - eps
        minus = f()
        x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max(|a| + |b|)``: around 1e-7 or below for a correct gradient."""
    return float(np.abs(a - b).max() / max(1e-12, (np.abs(a) + np.abs(b)).max()))


def sgd_train(
    params: Params, X: np.ndarray, y: np.ndarray, lr: float, steps: int
) -> tuple[Params, list[float]]:
    """Full-batch gradient descent ``theta <- theta - lr * grad``; returns new params and losses."""
    params = {name: value.copy() for name, value in params.items()}
    losses = []
    for _ in range(steps):
        loss, grads = loss_and_grads(params, X, y)
        losses.append(loss)
        for name in params:
            params[name] -= lr * grads[name]
    return params, losses
