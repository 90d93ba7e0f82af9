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
