"""Command line of the course: ``python -m course_lib {doctor,student,run}``.

- ``doctor``: checks Python, each dependency, the device, the shipped data and the MiniLM weights.
- ``student [--out DIR]``: writes student versions of the notebooks (default ``student/``).
- ``run [--out DIR] [NOTEBOOK ...]``: executes notebooks in order and prints a timing table.
"""

from __future__ import annotations

import argparse
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

# The distributions that `pip install -e .` brings (tests check this against pyproject.toml).
REQUIRED = ("torch", "numpy", "matplotlib", "jupyter", "nbval", "tqdm", "safetensors", "ipywidgets")
# The extras: tests and coursework tools; reported, but not required to learn.
OPTIONAL = (
    "pytest",
    "hypothesis",
    "ruff",
    "nbstripout",
    "pyyaml",
    "transformers",
    "playwright",
    "nbgrader",
    "jupyter-book",
    "sphinx-mathjax-offline",
)


def _line(ok: bool | None, what: str, detail: str) -> str:
    mark = {True: "[OK]  ", False: "[FAIL]", None: "[--]  "}[ok]
    return f"{mark} {what:<14} {detail}"


def doctor() -> int:
    """Print one line per check; return 1 if any required check fails, else 0."""
    lines = [_line(sys.version_info >= (3, 10), "python", platform.python_version() + " (need >= 3.10)")]
    for name in REQUIRED + OPTIONAL:
        try:
            lines.append(_line(True, name, version(name)))
        except PackageNotFoundError:
            required = name in REQUIRED
            lines.append(
                _line(
                    False if required else None,
                    name,
                    "not installed" + ("" if required else " (optional: test/instructor extra)"),
                )
            )
    try:
        from course_lib import data, get_device

        device = get_device()
        lines.append(_line(True, "device", str(device)))
        lines.append(_line(data.corpus_ok(), "data", f"{data.DATA_DIR / data.CORPUS_FILE} (SHA-256)"))
        from course_lib import pretrained

        try:
            lines.append(_line(True, "minilm", str(pretrained.minilm_dir())))
        except FileNotFoundError as error:  # only notebook 10's last section needs the weights
            lines.append(_line(None, "minilm", f"optional, for notebook 10: {error}"))
    except Exception as error:  # the doctor reports every failure instead of stopping
        lines.append(_line(False, "course_lib", f"{type(error).__name__}: {error}"))
    print("\n".join(lines))
    return 1 if any(line.startswith("[FAIL]") for line in lines) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="check the installation")
    student = commands.add_parser("student", help="write student versions of the notebooks")
    student.add_argument("--out", default=None, help="output folder (default: student/)")
    run = commands.add_parser("run", help="execute notebooks in order and time them")
    run.add_argument("--out", default="_build/executed", help="where the executed copies go")
    run.add_argument("notebooks", nargs="*", help="default: every notebook")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        return doctor()
    from course_lib import coursework

    if args.command == "student":
        out = args.out or coursework.STUDENT_DIR
        for path in coursework.write_student_versions(out):
            print(f"wrote {path}")
        return 0
    times = coursework.run_notebooks(args.out, args.notebooks or None)
    print("| notebook | seconds |\n|---|---:|")
    for name, seconds in times:
        print(f"| {name} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
