"""The HTML book builds offline from the stored outputs, in syllabus order, with math and figures."""

import shutil
import subprocess
import sys
from pathlib import Path

from course_lib.syllabus import FIGURE, NOTEBOOK_DIR, SYLLABUS
from tests.conftest import ROOT, require


def test_book_builds_with_every_notebook(tmp_path):
    require("jupyter_book")
    source = tmp_path / "notebooks"
    figure = source / FIGURE.relative_to(NOTEBOOK_DIR)
    shutil.copytree(ROOT / "notebooks", source, ignore=shutil.ignore_patterns("_build", FIGURE.name))
    # What `make book` does first: draw the landing page's syllabus figure.
    script = ROOT / "course_lib" / "syllabus.py"
    drawn = subprocess.run([sys.executable, str(script), str(figure)], timeout=120)
    assert drawn.returncode == 0 and figure.is_file()
    command = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(source),
        "--path-output",
        str(tmp_path),
        "--warningiserror",
        "--quiet",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    assert "url=intro.html" in (html / "index.html").read_text()  # index.html opens the landing page
    landing = (html / "intro.html").read_text()
    assert f'src="_images/{FIGURE.name}"' in landing and (html / "_images" / FIGURE.name).is_file()
    for chapter in SYLLABUS:
        if chapter.written:
            page = (html / chapter.filename.replace(".ipynb", ".html")).read_text()
            assert f"{chapter.number:02d} · {chapter.title}" in page
            assert "<img" in page, f"{chapter.filename}: figures missing"
            download = f'href="_sources/{chapter.filename}"'  # the page's download menu: its .ipynb
            assert download in page, f"{chapter.filename}: no download of the notebook"
            assert (html / "_sources" / chapter.filename).is_file()
    forward_backward = (html / "01_forward_backward.html").read_text()
    assert "\\frac" in forward_backward and "mathjax" in forward_backward.lower()
