"""The project's own files agree with each other: dependencies, syllabus, README, book."""

import json
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

import yaml

from course_lib.__main__ import OPTIONAL, REQUIRED
from course_lib.syllabus import FIGURE, NOTEBOOK_DIR, SYLLABUS
from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
INTRO = NOTEBOOK_DIR / "intro.md"  # the book's landing page


def _section(text: str, heading: str) -> str:
    """The text under a markdown heading, up to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    return text.split(heading + "\n", 1)[1].split(f"\n{level} ", 1)[0]


def _first_table(text: str) -> list[str]:
    """The rows of the first markdown table in ``text``."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append(line.strip())
        elif rows:
            break
    assert rows, "no table found"
    return rows


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip()).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = PYPROJECT["project"]
    requirements = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    return dict(_split(r) for r in requirements)


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    pip = [item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item]
    for item in env["dependencies"] + sum(pip, []):
        if isinstance(item, str) and not item.startswith("-"):
            name, spec = _split(item)
            if name not in ("python", "pip"):
                found[CONDA_NAMES.get(name, name)] = spec
    return found


def test_environment_yml_and_pyproject_agree():
    assert _conda_requirements() == _pyproject_requirements()


def test_doctor_checks_exactly_the_declared_packages():
    project = PYPROJECT["project"]
    assert {_split(r)[0] for r in project["dependencies"]} == set(REQUIRED)
    extras = sum(project["optional-dependencies"].values(), [])
    assert {_split(r)[0] for r in extras} == set(OPTIONAL)


def test_python_floor_is_the_same_everywhere():
    floor = PYPROJECT["project"]["requires-python"].removeprefix(">=")  # e.g. "3.10"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python>={floor}" in env["dependencies"]
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + floor.replace(".", "")
    assert f"Python {floor}+" in (ROOT / "Makefile").read_text()


def test_notebooks_follow_the_syllabus():
    names = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    written = [c.filename for c in SYLLABUS if c.written]
    assert names == written, "every notebook must be a syllabus chapter, numbered without gaps"
    assert [c.number for c in SYLLABUS] == list(range(len(SYLLABUS)))
    assert written == [c.filename for c in SYLLABUS[: len(written)]]


def test_readme_lists_the_syllabus_with_status():
    readme = (ROOT / "README.md").read_text()
    for chapter in SYLLABUS:
        status = "ready" if chapter.written else "planned"
        row = rf"\|\s*{chapter.number:02d}\s*\|.*{re.escape(chapter.title)}.*\|\s*{status}\s*\|"
        assert re.search(row, readme), f"README syllabus row for {chapter.filename} ({status})"


def test_readme_quick_start_is_the_two_make_commands():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make \w+$", quick_start, re.M)
    assert commands == ["make course", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_times_table_covers_every_notebook():
    readme = (ROOT / "README.md").read_text()
    times = readme.split("## Execution times", 1)[1]
    for chapter in SYLLABUS:
        if chapter.written:
            assert re.search(rf"\|\s*{chapter.filename}\s*\|\s*\d+(\.\d+)?\s*\|", times), chapter.filename


def test_intro_times_table_is_the_readme_s():
    readme_times = _first_table(_section((ROOT / "README.md").read_text(), "## Execution times"))
    intro_times = _first_table(_section(INTRO.read_text(), "## How long each notebook takes"))
    assert intro_times == readme_times, "copy the README's execution-times table into notebooks/intro.md"


def test_intro_notation_table_is_notebook_00_s():
    cells = json.loads((NOTEBOOK_DIR / "00_orientation.ipynb").read_text())["cells"]
    (notation,) = ["".join(c["source"]) for c in cells if "".join(c["source"]).startswith("## 4. Notation")]
    intro_notation = _first_table(_section(INTRO.read_text(), "## Notation"))
    assert intro_notation == _first_table(notation), "copy notebook 00's notation table into intro.md"


def test_intro_shows_the_syllabus_figure_that_make_book_draws():
    intro = INTRO.read_text()
    assert f"```{{figure}} {FIGURE.relative_to(NOTEBOOK_DIR).as_posix()}\n" in intro
    book = (ROOT / "Makefile").read_text().split("\nbook:", 1)[1].split("\n\n", 1)[0]
    assert book.index("course_lib/syllabus.py") < book.index("jupyter-book build")
    assert FIGURE.relative_to(ROOT).as_posix() in (ROOT / ".gitignore").read_text().splitlines()


def test_intro_says_how_to_run_open_and_assign_the_course():
    intro = INTRO.read_text()
    run = _section(intro, "## Run it")
    assert re.findall(r"^make \w+$", run, re.M) == ["make course", "make test"]  # the README's quick start
    for words in ("make lab", "_build/html/index.html", "download", ".ipynb"):
        assert words in run, words
    assign = _section(intro, "## Assign it")
    for words in ("make student", "raise NotImplementedError()", "nbgrader generate_assignment"):
        assert words in assign.replace("\n", " "), words


def test_book_table_of_contents_is_the_syllabus_order():
    toc = yaml.safe_load((NOTEBOOK_DIR / "_toc.yml").read_text())
    files = [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    assert files == [c.filename.removesuffix(".ipynb") for c in SYLLABUS if c.written]
    assert toc["root"] == "intro"


def test_nbval_settings_plugin_is_active_and_skips_noise(request):
    from types import SimpleNamespace

    from tests import nbval_settings

    assert request.config.pluginmanager.has_plugin("tests.nbval_settings")
    notebook = SimpleNamespace(path=ROOT / "notebooks" / "00_orientation.ipynb", skip_compare=("metadata",))
    nbval_settings.pytest_collectstart(notebook)
    assert notebook.skip_compare == ("metadata", "stderr", "image/svg+xml", "application/pdf")
    module = SimpleNamespace(path=ROOT / "tests" / "test_data.py", skip_compare=())
    nbval_settings.pytest_collectstart(module)
    assert module.skip_compare == ()
