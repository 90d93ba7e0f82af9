"""Shared fixtures and the rule that no required tool may be skipped in CI.

Tests that need an instructor or site tool (nbgrader, jupyter-book, a Jupyter kernel, Chromium)
call ``require(module)`` (or ``require_distribution``, ``require_program``): it skips with a reason
where the tool is missing, unless ``COURSE_REQUIRE_ALL=1`` (set by ``make test`` and CI), where a
missing tool fails the test.
"""

import importlib.util
import os
import shutil
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
