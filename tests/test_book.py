"""The HTML book builds offline from the stored outputs, in syllabus order, with math and figures."""

from course_lib.syllabus import FIGURE, SYLLABUS


def test_book_builds_with_every_notebook(built_book):
    html = built_book
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
