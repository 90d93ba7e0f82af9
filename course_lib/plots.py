"""Figures used across the course: one style, loss curves, labelled heatmaps, decision regions.

Every function draws on an ``Axes`` (a new figure when none is given) and returns it, so a
notebook can combine plots; notebooks end figure cells with ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

COURSE_STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.frameon": False,
    "image.cmap": "viridis",
}


def use_course_style() -> None:
    """Apply the course's matplotlib style and make notebooks show figures as PNG only."""
    mpl.rcParams.update(COURSE_STYLE)
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python, no Jupyter
        return
    set_matplotlib_formats("png")


def _axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def loss_curves(
    curves: Mapping[str, Sequence[float]],
    steps: Mapping[str, Sequence[int]] | None = None,
    *,
    ax: Axes | None = None,
    title: str = "Loss",
    log_y: bool = False,
) -> Axes:
    """Plot one line per named loss curve.

    Args:
        curves: name -> loss values, e.g. ``{"train": [...], "val": [...]}``.
        steps: name -> the step of each value; default ``0, 1, 2, ...``.
    """
    ax = _axes(ax)
    for name, values in curves.items():
        x = steps[name] if steps is not None and name in steps else range(len(values))
        if len(x) != len(values):
            raise ValueError(f"curve {name!r}: expected {len(values)} steps, got {len(x)}")
        ax.plot(list(x), list(values), label=name)
    ax.set(xlabel="step", ylabel="loss", title=title)
    if log_y:
        ax.set_yscale("log")
    ax.legend()
    return ax


def heatmap(
    matrix: np.ndarray | torch.Tensor,
    *,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    x_title: str = "",
    y_title: str = "",
    title: str = "",
    ax: Axes | None = None,
    cmap: str = "viridis",
    annotate: bool = False,
    fmt: str = ".2f",
    fontsize: float | None = None,
) -> Axes:
    """Draw a 2-D matrix (rows, cols) as a heatmap with labelled axes and a colour bar.

    Args:
        matrix: shape ``(rows, cols)``; a tensor (any dtype, bfloat16 included) is moved to the CPU.
        x_labels, y_labels: one label per column / row.
        annotate: write each value in its cell (for small matrices); NaN cells stay empty.
        fmt, fontsize: format spec and font size of those values, e.g. ``".2g"`` and ``8`` when the
            cells are too narrow for ``-0.00``.
    """
    if isinstance(matrix, torch.Tensor):  # any device and dtype (NumPy has no bfloat16)
        values = matrix.detach().cpu().double().numpy()
    else:
        values = np.asarray(matrix)
    if values.ndim != 2:
        raise ValueError(f"matrix: expected 2-D (rows, cols), got shape {values.shape}")
    rows, cols = values.shape
    for labels, n, name in ((x_labels, cols, "x_labels"), (y_labels, rows, "y_labels")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{name}: expected {n} labels, got {len(labels)}")
    ax = _axes(ax)
    image = ax.imshow(values, cmap=cmap, aspect="auto")
    ax.figure.colorbar(image, ax=ax)
    ax.grid(False)
    if x_labels is not None:
        ax.set_xticks(range(cols), x_labels)
    if y_labels is not None:
        ax.set_yticks(range(rows), y_labels)
    if annotate:  # dark text on light cells, light text on dark ones, whatever the colour map
        for i in range(rows):
            for j in range(cols):
                if np.isnan(values[i, j]):  # a masked cell: nothing to write
                    continue
                red, green, blue, _ = image.cmap(image.norm(values[i, j]))
                light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5  # perceived brightness
                colour = "black" if light else "white"
                text = f"{values[i, j] + 0.0:{fmt}}"  # + 0.0 turns -0.0 into 0.0
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    ax.set(xlabel=x_title, ylabel=y_title, title=title)
    return ax


def decision_regions(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    *,
    ax: Axes | None = None,
    title: str = "Decision regions",
    resolution: int = 200,
) -> Axes:
    """Colour the plane by the class that ``predict`` gives and scatter the labelled points.

    Args:
        predict: maps points of shape ``(n, 2)`` to class ids of shape ``(n,)``.
        X: points of shape ``(n, 2)``; y: their classes, shape ``(n,)``.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X: expected shape (n, 2), got {X.shape}")
    pad = 0.2
    (x0, y0), (x1, y1) = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid_classes = np.asarray(predict(np.c_[gx.ravel(), gy.ravel()])).reshape(gx.shape)
    ax = _axes(ax, figsize=(5, 5))
    ax.contourf(gx, gy, grid_classes, alpha=0.3, cmap="brg", levels=np.arange(-0.5, y.max() + 1))
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="brg", s=12, edgecolors="k", linewidths=0.3)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.grid(False)
    return ax


def _mask_values(
    mask: np.ndarray | torch.Tensor, query_tokens: Sequence[str] | None, key_tokens: Sequence[str] | None
) -> np.ndarray:
    """A boolean ``(T, S)`` array of ``mask``, checked against the token labels."""
    values = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if values.ndim != 2 or values.dtype != bool:
        raise ValueError(
            f"mask: expected a 2-D boolean (T, S) mask, got shape {values.shape} and dtype {values.dtype}"
        )
    for labels, n, name in (
        (query_tokens, values.shape[0], "query_tokens"),
        (key_tokens, values.shape[1], "key_tokens"),
    ):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{name}: expected {n} labels, got {len(labels)}")
    return values


def mask_matrix(
    mask: np.ndarray | torch.Tensor,
    query_tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """Draw a boolean ``(T, S)`` mask as a grid: dark where query ``t`` (row) may attend key ``s``.

    ``key_tokens`` defaults to ``query_tokens`` (self-attention).
    """
    key_tokens = query_tokens if key_tokens is None else key_tokens
    values = _mask_values(mask, query_tokens, key_tokens)
    T, S = values.shape
    ax = _axes(ax, figsize=(3, 3))
    ax.imshow(values, cmap="Greys", vmin=-0.25, vmax=1.0)
    ax.set_xticks(np.arange(S + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(T + 1) - 0.5, minor=True)
    ax.grid(False)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xticks(range(S), key_tokens if key_tokens is not None else range(S))
    ax.set_yticks(range(T), query_tokens if query_tokens is not None else range(T))
    ax.set(xlabel="key", ylabel="query", title=title)
    return ax


def mask_arrows(
    mask: np.ndarray | torch.Tensor,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str = "",
    cross: bool = False,
) -> Axes:
    """Draw a boolean ``(T, S)`` mask as arrows from each key (bottom row) to each query (top row)
    that may attend to it; arrows from a later position to an earlier one (the future) are red.

    ``key_tokens`` defaults to ``query_tokens``. ``cross=True`` marks cross-attention: the keys are
    another sequence, so no key is "later" than a query and no arrow is red.
    """
    if not isinstance(cross, bool):
        raise TypeError(f"cross: expected a bool, got {type(cross).__name__}")
    key_tokens = query_tokens if key_tokens is None else key_tokens
    values = _mask_values(mask, query_tokens, key_tokens)
    T, S = values.shape
    ax = _axes(ax, figsize=(3, 3))
    width = max(T, S) - 1
    query_x = np.linspace(0, width, T) if T > 1 else np.array([width / 2])
    key_x = np.linspace(0, width, S) if S > 1 else np.array([width / 2])
    for t, s in zip(*np.nonzero(values), strict=True):
        future = not cross and s > t
        ax.annotate(
            "",
            xy=(query_x[t], 0.88),
            xytext=(key_x[s], 0.12),
            arrowprops={"arrowstyle": "->", "color": "C3" if future else "0.45", "lw": 1.0, "alpha": 0.8},
        )
    for x, label in zip(query_x, query_tokens, strict=True):
        ax.text(
            x, 1.0, str(label), ha="center", va="center", fontsize=10, bbox={"boxstyle": "round", "fc": "w"}
        )
    for x, label in zip(key_x, key_tokens, strict=True):
        ax.text(
            x, 0.0, str(label), ha="center", va="center", fontsize=10, bbox={"boxstyle": "round", "fc": "w"}
        )
    ax.set(xlim=(-0.6, width + 0.6), ylim=(-0.25, 1.25), title=title)
    ax.set_yticks([0.0, 1.0], ["keys", "queries"])
    ax.set_xticks([])
    ax.grid(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    return ax
