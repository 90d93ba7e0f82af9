"""The syllabus figure: the one that notebook 00 shows and that `make book` writes for the landing page."""

import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import same_color  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from course_lib import syllabus  # noqa: E402
from course_lib.syllabus import SYLLABUS  # noqa: E402
from tests.conftest import ROOT  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_draw_shows_one_box_per_notebook_coloured_once_written():
    ax = syllabus.draw()
    boxes = [patch for patch in ax.patches if isinstance(patch, Rectangle)]
    assert len(boxes) == len(SYLLABUS)
    grey = [same_color(box.get_facecolor()[:3], "lightgrey") for box in boxes]
    assert grey == [not chapter.written for chapter in SYLLABUS]
    texts = [text.get_text().replace("\n", " ") for text in ax.texts]
    parts = list(dict.fromkeys(chapter.part for chapter in SYLLABUS))
    assert [text for text in texts if text in parts] == parts
    for chapter in SYLLABUS:
        assert f"{chapter.number:02d} · {chapter.title}" in texts
    bottom = min(box.get_y() for box in boxes)
    assert ax.get_ylim()[0] <= bottom and not ax.axison
    assert tuple(ax.figure.get_size_inches()) == syllabus.FIGSIZE


def test_draw_uses_the_axes_it_is_given():
    fig, ax = plt.subplots()
    assert syllabus.draw(ax) is ax and ax.get_title() == "The syllabus"
    assert syllabus.draw(plt.subplots()[1], title=None).get_title() == ""  # the book's version


def test_every_label_keeps_clear_of_its_box_edges():
    ax = syllabus.draw(plt.figure(figsize=syllabus.FIGSIZE, dpi=100).subplots())
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    boxes = [patch for patch in ax.patches if isinstance(patch, Rectangle)]
    labels = [text for text in ax.texts if " · " in text.get_text()]
    assert len(labels) == len(boxes) == len(SYLLABUS)
    for box, label in zip(boxes, labels, strict=True):
        outer, inner = box.get_window_extent(renderer), label.get_window_extent(renderer)
        margins = (inner.x0 - outer.x0, outer.x1 - inner.x1, inner.y0 - outer.y0, outer.y1 - inner.y1)
        assert min(margins) >= 5, f"{label.get_text()!r}: {min(margins):.1f} px from its box's edge"


def test_save_figure_writes_a_png_and_keeps_an_identical_one(tmp_path):
    path = syllabus.save_figure(tmp_path / "static" / "syllabus.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    os.utime(path, ns=(0, 0))
    syllabus.save_figure(path)
    assert path.stat().st_mtime_ns == 0, "an unchanged figure must not be rewritten"


def test_make_book_script_writes_the_figure_without_torch(tmp_path):
    """`make book` runs course_lib/syllabus.py as a script: matplotlib only, about a second."""
    out = tmp_path / "syllabus.png"
    script = ROOT / "course_lib" / "syllabus.py"
    code = (
        "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
        "assert 'torch' not in sys.modules, 'the script loaded torch'"
    )
    command = [sys.executable, "-c", code, str(script), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes().startswith(b"\x89PNG") and str(out) in result.stdout
    assert syllabus.FIGURE == ROOT / "notebooks" / "_static" / "syllabus.png"
