"""The structure every course notebook keeps (COURSE_GUIDE section 2), checked on the committed files.

These tests read the notebooks as JSON and parse their code; nothing is executed, so they take
well under a second. They say which notebook and which cell breaks which rule.
"""

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [path.stem for path in NOTEBOOKS]

TITLE = re.compile(r"^# (\d\d) · \S")
HEADINGS = ("## Learning objectives", "**Prerequisites.**", "## Exercises", "## Summary", "## References")
EXERCISE = re.compile(r"^\*\*Exercise (\d+) · [^*]+\((easy|medium|hard)\)\.\*\*", re.M)
ANY_EXERCISE = re.compile(r"^(?:#+\s*|\*\*)Exercise\b", re.M)
CHECKER_CALL = re.compile(r"^checks\.check_\w+\(\w+\)$")
MATPLOTLIB_REPR = re.compile(r"<matplotlib\.|<Figure size|^\[?<?(Text|Line2D)\(| at 0x[0-9a-f]+>", re.M)
STUCK_BAR = re.compile(r"\b0%\|")
FIGURE_OBJECTS = {"plt", "ax", "axes", "fig", "left", "right"}


def _text(lines: str | list[str]) -> str:
    return "".join(lines) if isinstance(lines, list) else lines


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _output_text(output: dict) -> str:
    if output["output_type"] == "stream":
        return _text(output["text"])
    return _text(output.get("data", {}).get("text/plain", ""))


@pytest.fixture(params=NOTEBOOKS, ids=IDS)
def notebook(request) -> tuple[Path, list[dict]]:
    return request.param, _cells(request.param)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7, f"expected notebooks 00-06 at least, found {IDS}"


def test_title_and_sections(notebook):
    path, cells = notebook
    title = TITLE.match(_text(cells[0]["source"]))
    assert title, f"{path.name}: the first cell must be a title '# NN · Title'"
    assert title.group(1) == path.name[:2], f"{path.name}: the title's number is {title.group(1)}"
    markdown = "\n".join(_text(c["source"]) for c in cells if c["cell_type"] == "markdown")
    missing = [heading for heading in HEADINGS if heading not in markdown]
    assert not missing, f"{path.name}: missing {missing}"


def test_every_exercise_has_a_difficulty_a_solution_and_a_checker(notebook):
    path, cells = notebook
    exercises = 0
    for i, cell in enumerate(cells):
        source = _text(cell["source"])
        if cell["cell_type"] == "markdown":
            headings = ANY_EXERCISE.findall(source)
            labelled = EXERCISE.findall(source)
            assert len(headings) == len(labelled), (
                f"{path.name} cell {i}: write exercise headings as '**Exercise N · Title (easy).**' "
                "with a difficulty of easy, medium or hard"
            )
            exercises += len(labelled)
        elif "### BEGIN SOLUTION" in source:
            assert "### END SOLUTION" in source, f"{path.name} cell {i}: BEGIN SOLUTION without END"
            after = cells[i + 1] if i + 1 < len(cells) else {"cell_type": "none", "source": ""}
            call = _text(after["source"]).strip()
            assert after["cell_type"] == "code" and CHECKER_CALL.match(call), (
                f"{path.name} cell {i}: a solution cell must be followed by a cell that only calls a "
                f"checker, 'checks.check_xxx(fn)'; found {call[:60]!r}"
            )
    solutions = sum("### BEGIN SOLUTION" in _text(c["source"]) for c in cells if c["cell_type"] == "code")
    assert solutions >= 3, f"{path.name}: {solutions} exercises; at least 3"
    assert exercises == solutions, f"{path.name}: {exercises} exercise headings for {solutions} solutions"


def test_questions_have_revealable_answers(notebook):
    path, cells = notebook
    for i, cell in enumerate(cells):
        source = _text(cell["source"])
        if cell["cell_type"] == "markdown" and "Check your understanding" in source:
            assert re.search(r"<details>.*?</details>", source, re.S), (
                f"{path.name} cell {i}: 'Check your understanding' needs answers in a "
                "<details><summary>Answers</summary> ... </details> block in the same cell"
            )


def test_ignored_cells_end_with_an_assert(notebook):
    path, cells = notebook
    for i, cell in enumerate(cells):
        source = _text(cell["source"])
        if cell["cell_type"] == "code" and source.startswith("# NBVAL_IGNORE_OUTPUT"):
            last = ast.parse(source).body[-1]
            assert any(isinstance(node, ast.Assert) for node in ast.walk(last)), (
                f"{path.name} cell {i}: a cell whose output is not compared must end with an assert "
                f"on its result; it ends with {ast.unparse(last)[:60]!r}"
            )


def test_no_matplotlib_object_is_left_as_a_result(notebook):
    path, cells = notebook
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or not _text(cell["source"]).strip():
            continue
        last = ast.parse(_text(cell["source"])).body[-1]
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
            target = last.value.func
            while isinstance(target, (ast.Attribute, ast.Subscript)):
                target = target.value
            named = isinstance(target, ast.Name) and target.id in FIGURE_OBJECTS
            assert not named or ast.unparse(last) == "plt.show()", (
                f"{path.name} cell {i}: end a figure cell with plt.show(), not {ast.unparse(last)[:60]!r}"
            )
        for output in cell.get("outputs", []):
            if output["output_type"] == "execute_result":  # a figure's display_data is fine
                assert not MATPLOTLIB_REPR.search(_output_text(output)), (
                    f"{path.name} cell {i}: its result shows a matplotlib object or a memory address"
                )


def test_outputs_are_committed_clean(notebook):
    path, cells = notebook
    code = [c for c in cells if c["cell_type"] == "code" and _text(c["source"]).strip()]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts}; run the notebook top to bottom in a fresh kernel"
    )
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name} cell {i}: a stored error"
            assert "image/svg+xml" not in output.get("data", {}), f"{path.name} cell {i}: SVG (use PNG)"
            assert not STUCK_BAR.search(_output_text(output)), (
                f"{path.name} cell {i}: a progress bar stuck at 0%; pass progress=False to train"
            )
