"""Student versions: solutions stubbed with nbgrader, outputs cleared, the teaching cells as in the
solution (which strict nbval runs), and an exercise section where every checker reports the missing
answer clearly."""

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


def _exercise_part(notebook):
    """The setup cell (imports, ``course_lib.setup()``) and every cell from the first exercise on.

    The cells in between teach; they are the same in the student and the solution version (a test
    below checks it), and the strict nbval run executes them in full, so running them again here
    would only cost time.
    """
    cells = notebook.cells
    setup = next(i for i, c in enumerate(cells) if c.cell_type == "code" and "course_lib.setup(" in c.source)
    first_exercise = next(i for i, c in enumerate(cells) if _role(c, "solution"))
    part = nbformat.from_dict(notebook)
    part.cells = cells[: setup + 1] + cells[first_exercise:]
    return part, setup, first_exercise


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_teaching_cells_equal_the_solution(student_dir, path):
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(student_dir / path.name, as_version=4)
    _, _, first_exercise = _exercise_part(student)
    assert [c.source for c in student.cells[:first_exercise]] == [
        c.source for c in solution.cells[:first_exercise]
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_exercises_run_and_every_checker_explains(student_dir, path):
    require("ipykernel")
    from nbclient import NotebookClient

    student, setup, _ = _exercise_part(nbformat.read(student_dir / path.name, as_version=4))
    NotebookClient(
        student,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    ).execute()
    code = _cells(student)
    errors = {i: o for i, c in enumerate(code) for o in c.outputs if o.output_type == "error"}
    for i, error in errors.items():
        assert _role(code[i], "grade"), f"only checker cells may fail, not code cell {i}: {error.evalue}"
    checkers = [i for i, c in enumerate(code) if _role(c, "grade")]
    assert len(checkers) >= 3 and set(errors) == set(checkers), "every checker must report its exercise"
    for i in checkers:
        assert errors[i].ename == "ExerciseNotDone", f"{errors[i].ename}: {errors[i].evalue}"
        assert "is not written yet" in errors[i].evalue
