"""Student versions: solutions stubbed with nbgrader, outputs cleared, and runnable up to the
first exercise, after which every checker reports the missing answer clearly."""

import nbformat
import pytest

from course_lib import coursework
from course_lib.syllabus import NOTEBOOK_DIR
from tests.conftest import require

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    require("nbgrader")
    out = tmp_path_factory.mktemp("student")
    coursework.write_student_versions(out)
    return out


def _cells(notebook, kind="code"):
    return [c for c in notebook.cells if c.cell_type == kind]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_hides_solutions_and_outputs(student_dir, path):
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(student_dir / path.name, as_version=4)
    assert len(student.cells) == len(solution.cells)
    text = "\n".join(c.source for c in _cells(student))
    assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text
    n_solutions = sum("### BEGIN SOLUTION" in c.source for c in _cells(solution))
    assert n_solutions >= 3
    assert text.count("raise NotImplementedError()") == n_solutions
    assert all(not c.outputs and c.execution_count is None for c in _cells(student))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_runs_until_the_exercises_and_checkers_explain(student_dir, path):
    require("ipykernel")
    from nbclient import NotebookClient

    student = nbformat.read(student_dir / path.name, as_version=4)
    NotebookClient(
        student,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    ).execute()
    code = _cells(student)
    first_exercise = next(i for i, c in enumerate(code) if "raise NotImplementedError()" in c.source)
    errors = [(i, o) for i, c in enumerate(code) for o in c.outputs if o.output_type == "error"]
    assert errors, "the checkers of unanswered exercises must fail"
    for i, error in errors:
        assert i > first_exercise, f"cell {i} fails before the first exercise: {error.ename}: {error.evalue}"
        assert "check_" in code[i].source, f"only checker cells may fail, not cell {i}"
        assert error.ename == "ExerciseNotDone", f"{error.ename}: {error.evalue}"
        assert "is not written yet" in error.evalue
    n_checkers = sum("checks.check_" in c.source for c in code)
    assert len(errors) == n_checkers
