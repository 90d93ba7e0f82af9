"""Shared fixtures and the rule that no required tool may be skipped in CI.

Tests that need an instructor or site tool (nbgrader, jupyter-book, a Jupyter kernel, Chromium)
call ``require(module)`` (or ``require_distribution``, ``require_program``): it skips with a reason
where the tool is missing, unless ``COURSE_REQUIRE_ALL=1`` (set by ``make test`` and CI), where a
missing tool fails the test.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _missing(what: str, install: str = "pip install -e '.[test,instructor]'") -> None:
    message = f"{what} is not installed ({install})"
    if os.environ.get("COURSE_REQUIRE_ALL") == "1":
        pytest.fail(message + " and COURSE_REQUIRE_ALL=1 forbids skipping")
    pytest.skip(message)


def require(module: str) -> None:
    """Skip (or, under COURSE_REQUIRE_ALL=1, fail) when ``module`` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        _missing(f"the module {module}")


def require_distribution(name: str) -> None:
    """Like ``require``, for an installed distribution (a pip package) such as ``jupyter``."""
    try:
        version(name)
    except PackageNotFoundError:
        _missing(f"the package {name}")


def require_program(*names: str, install: str) -> str:
    """The path of the first of ``names`` on PATH; skip (or fail, as above) when there is none."""
    for name in names:
        if path := shutil.which(name):
            return path
    _missing(f"the program {' or '.join(names)}", install)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The HTML book (its ``_build/html``), built once per session as ``make book`` builds it."""
    from course_lib.syllabus import FIGURE, NOTEBOOK_DIR

    require("jupyter_book")
    tmp_path = tmp_path_factory.mktemp("book")
    source = tmp_path / "notebooks"
    figure = source / FIGURE.relative_to(NOTEBOOK_DIR)
    shutil.copytree(ROOT / "notebooks", source, ignore=shutil.ignore_patterns("_build", FIGURE.name))
    script = ROOT / "course_lib" / "syllabus.py"  # what `make book` does first: the landing figure
    drawn = subprocess.run([sys.executable, str(script), str(figure)], timeout=120)
    assert drawn.returncode == 0 and figure.is_file()
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(source)]
    command += ["--path-output", str(tmp_path), "--warningiserror", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp_path / "_build" / "html"
