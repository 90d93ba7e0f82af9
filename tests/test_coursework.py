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


def _role(cell, role):
    """nbgrader's cell roles: "solution" (an exercise) or "grade" (its checker)."""
    return cell.metadata.get("nbgrader", {}).get(role, False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_hides_solutions_and_outputs(student_dir, path):
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(student_dir / path.name, as_version=4)
    assert len(student.cells) == len(solution.cells)
    text = "\n".join(c.source for c in _cells(student))
    assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text
    solutions = [c for c in _cells(solution) if "### BEGIN SOLUTION" in c.source]
    assert len(solutions) >= 3 and all(_role(c, "solution") for c in solutions)
    already = "\n".join(c.source for c in _cells(solution)).count("raise NotImplementedError()")
    assert text.count("raise NotImplementedError()") == already + len(solutions)
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
    first_exercise = next(i for i, c in enumerate(code) if _role(c, "solution"))
    errors = {i: o for i, c in enumerate(code) for o in c.outputs if o.output_type == "error"}
    for i, error in errors.items():
        assert i > first_exercise, f"cell {i} fails before the first exercise: {error.ename}: {error.evalue}"
        assert _role(code[i], "grade"), f"only checker cells may fail, not cell {i}: {error.evalue}"
    checkers = [i for i, c in enumerate(code) if _role(c, "grade")]
    assert len(checkers) >= 3 and set(errors) == set(checkers), "every checker must report its exercise"
    for i in checkers:
        assert errors[i].ename == "ExerciseNotDone", f"{errors[i].ename}: {errors[i].evalue}"
        assert "is not written yet" in errors[i].evalue
