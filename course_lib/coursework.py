"""Coursework: student versions of the solution notebooks, and a timed notebook runner.

Solution notebooks (``notebooks/``) are the source of truth. Student versions replace each
region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` with ``raise NotImplementedError()``,
drop ``### BEGIN HIDDEN TESTS`` regions and clear all outputs, using nbgrader's own
preprocessors, so an instructor can equally run ``nbgrader generate_assignment``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import nbformat

from course_lib.syllabus import NOTEBOOK_DIR

STUDENT_DIR = NOTEBOOK_DIR.parent / "student"


def _notebooks(paths: Iterable[str | Path] | None) -> list[Path]:
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")) if paths is None else [Path(p) for p in paths]
    missing = [str(p) for p in found if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"notebooks not found: {', '.join(missing)}")
    return found


def student_version(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with solutions stubbed, hidden tests removed and outputs cleared."""
    try:
        from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions
    except ImportError as error:
        raise ImportError(
            "student versions need nbgrader: pip install -e '.[instructor]' (or `make test`)"
        ) from error
    notebook = nbformat.from_dict(notebook)  # a deep copy
    resources: dict = {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), ClearOutput()):
        notebook, resources = preprocessor.preprocess(notebook, resources)
    return notebook


def write_student_versions(
    out_dir: str | Path = STUDENT_DIR, notebooks: Iterable[str | Path] | None = None
) -> list[Path]:
    """Write the student version of each notebook (default: all) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in _notebooks(notebooks):
        target = out_dir / path.name
        nbformat.write(student_version(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def run_notebooks(
    out_dir: str | Path, notebooks: Iterable[str | Path] | None = None, timeout: int = 600
) -> list[tuple[str, float]]:
    """Execute each notebook (default: all, in syllabus order) in a fresh kernel.

    The executed copies go to ``out_dir``; the committed notebooks are left untouched.
    Returns ``(file name, seconds)`` for each notebook. Raises ``nbclient``'s
    ``CellExecutionError`` at the first cell that fails.
    """
    from nbclient import NotebookClient

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    times = []
    for path in _notebooks(notebooks):
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        times.append((path.name, time.perf_counter() - start))
        nbformat.write(notebook, out_dir / path.name)
    return times
