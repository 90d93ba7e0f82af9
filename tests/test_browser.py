"""The built book works offline in a real browser: headless Chromium opens every page from disk.

Each page must load without a console error, typeset its math with the MathJax served from the
book itself, load every image, link only to pages and anchors that exist, and send no request
off the machine; each chapter's page offers its notebook for download and its address in
JupyterLab. Screenshots of the landing page (whole) and of one chapter's first displayed formula
go to _build/screenshots/.
Needs Debian's ``chromium`` (``make browser``) and Playwright for Python (the ``test`` extra);
without them the tests skip, or fail under COURSE_REQUIRE_ALL=1.
"""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from course_lib.syllabus import SYLLABUS
from tests.conftest import ROOT, require, require_program

CHAPTERS = [chapter.filename.removesuffix(".ipynb") for chapter in SYLLABUS if chapter.written]
PAGES = ["intro", *CHAPTERS, "genindex", "search"]  # index.html only redirects to intro.html
SCREENSHOTS = ROOT / "_build" / "screenshots"
ALLOWED_SCHEMES = {"file", "data", "blob", "about"}  # and http(s) to 127.0.0.1 only
WAIT_FOR_MATHJAX = """async () => {
    if (!document.querySelector('script[src*="mathjax"]')) return 0;
    for (let waited = 0; !(window.MathJax && MathJax.startup && MathJax.startup.promise); waited += 20) {
        if (waited > 15000) return -1;  // MathJax never started: its script did not load
        await new Promise(resolve => setTimeout(resolve, 20));
    }
    await MathJax.startup.promise;
    return document.querySelectorAll("mjx-container").length;
}"""
IMAGES_NOT_LOADED = """async () => {
    const images = Array.from(document.images);
    images.forEach(image => { image.loading = "eager"; });
    await Promise.all(images.map(image => image.complete ? null
        : new Promise(resolve => { image.onload = image.onerror = resolve; setTimeout(resolve, 10000); })));
    return [images.length, images.filter(image => image.naturalWidth === 0).map(image => image.src)];
}"""
VISIBLE_TEXT = """() => {
    document.querySelectorAll("details").forEach(details => { details.open = true; });
    return document.body.innerText;
}"""


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ALLOWED_SCHEMES or (
        parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname == "127.0.0.1"
    )


class _Resources(HTMLParser):
    """What a page loads by itself: scripts, stylesheets, images, frames (not its <a> links)."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):  # stylesheets, preloads, and index/next/prev pages
            self.urls.append(attrs["href"])


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.anchors = set()

    def handle_starttag(self, tag, attrs):
        self.anchors.update(value for name, value in attrs if name in ("id", "name") and value)


def _anchors(page: Path, cache={}) -> set[str]:  # noqa: B006 - a cache shared by the calls
    if page not in cache:
        parser = _Anchors()
        parser.feed(page.read_text(encoding="utf-8"))
        cache[page] = parser.anchors
    return cache[page]


@pytest.fixture(scope="module")
def html(built_book) -> Path:
    """The book, built as ``make book`` builds it (conftest's ``built_book``)."""
    return built_book


@pytest.fixture(scope="module")
def browser():
    require("playwright")
    chromium = require_program(
        "chromium", "chromium-browser", install="make browser, or apt-get install chromium"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


class Visit:
    """One page opened in a fresh browser context that records what the page asks for and logs."""

    def __init__(self, browser, url: str, typeset: bool = True):
        self.requests, self.errors = [], []
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        # Anything bound off the machine is refused at once (and reported by the test).
        self.context.route(re.compile(r"^(https?|wss?)://"), self._refuse_foreign)
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url} ({r.failure})"))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("console", self._console)
        self.page.goto(url)
        self.math = self.page.evaluate(WAIT_FOR_MATHJAX) if typeset else 0

    def _refuse_foreign(self, route):
        if _is_local(route.request.url):
            route.continue_()
        else:
            route.abort()

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location.get('url')}")

    def close(self):
        self.context.close()


def test_pages_load_only_files_of_the_book(html):
    """Without a browser too: every script, stylesheet and image is a file of the built site."""
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for name in ["index", *PAGES]:
        parser = _Resources()
        parser.feed((html / f"{name}.html").read_text(encoding="utf-8"))
        for url in parser.urls:
            assert "://" not in url and not url.startswith("//"), f"{name}.html loads {url}"
            path = unquote(urlsplit(url).path)  # empty: the page itself ('#')
            assert not path or (html / path).is_file(), f"{name}.html: missing {url}"


@pytest.mark.parametrize("name", PAGES)
def test_page_works_offline(html, browser, name):
    root = html.resolve()
    visit = Visit(browser, (root / f"{name}.html").as_uri())
    try:
        assert visit.math >= 0, f"{name}: MathJax did not start"
        page = visit.page
        count, broken = page.evaluate(IMAGES_NOT_LOADED)
        assert not broken, f"{name}: images that did not load: {broken}"
        if name in ("intro", *CHAPTERS):
            assert count > 0, f"{name}: no figure"
        assert page.locator("mjx-merror").count() == 0, f"{name}: MathJax reports a TeX error"
        text = page.evaluate(VISIBLE_TEXT)
        for raw in ("\\(", "\\[", "$$"):
            where = text[max(text.find(raw) - 80, 0) :][:200]
            assert raw not in text, f"{name}: raw math {raw!r} left in: ...{where}"
        if name in ("intro", "01_forward_backward"):
            assert visit.math > 0, f"{name}: no typeset formula"

        hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a[href]'), a => a.href)")
        assert hrefs, f"{name}: no links"
        if name == "intro":
            missing = [c for c in CHAPTERS if not any(h.split("#")[0].endswith(f"/{c}.html") for h in hrefs)]
            assert not missing, f"intro: no link to {missing}"
        if name in CHAPTERS:
            _check_run_box(page, root, name)
        for href in hrefs:
            parts = urlsplit(href)
            if parts.scheme != "file":
                continue  # a link out (https, mailto): followed only by the reader, never loaded
            target = Path(unquote(parts.path))
            assert target.is_relative_to(root), f"{name}: link out of the book: {href}"
            assert target.is_file(), f"{name}: link to a missing file: {href}"
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                assert fragment in _anchors(target), f"{name}: link to a missing anchor: {href}"

        # Last, once the lazy images, the opened <details> and MathJax's fonts have loaded too.
        page.evaluate("() => document.fonts.ready.then(() => 0)")
        page.wait_for_load_state("networkidle")
        foreign = [url for url in visit.requests if not _is_local(url)]
        assert not foreign, f"{name}: requests off the machine: {foreign}"
        assert not visit.errors, f"{name}: " + "\n".join(visit.errors)
    finally:
        visit.close()


def _check_run_box(page, root: Path, name: str) -> None:
    """Under a chapter's title: a download of the very notebook, and its address in JupyterLab."""
    box = page.locator("article .run-this-notebook")
    assert box.count() == 1, f"{name}: no 'Run this notebook' box"
    heading = page.locator("article h1").first.bounding_box()
    assert box.bounding_box()["y"] > heading["y"], f"{name}: the run box sits above the title"
    download = box.locator("a.download-notebook")
    assert download.get_attribute("download") == f"{name}.ipynb"
    downloaded = Path(unquote(urlsplit(download.evaluate("a => a.href")).path))
    source = ROOT / "notebooks" / f"{name}.ipynb"
    assert downloaded.read_bytes() == source.read_bytes(), f"{name}: the download is not {source.name}"
    lab = box.locator("a.open-in-jupyterlab").get_attribute("href")
    assert lab == f"http://localhost:8888/lab/tree/{name}.ipynb", (
        f"{name}: {lab}"
    )  # make lab serves notebooks/
    assert "make lab" in box.inner_text()


def test_every_page_is_checked_and_the_front_door_leads_to_the_intro(html, browser):
    built = sorted(path.stem for path in html.glob("*.html"))
    assert built == sorted(["index", *PAGES])
    visit = Visit(browser, (html / "index.html").resolve().as_uri(), typeset=False)
    try:
        visit.page.wait_for_url("**/intro.html", timeout=10_000)
        assert not visit.errors, visit.errors
    finally:
        visit.close()


def test_screenshots_show_typeset_math(html, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in ("intro", "01_forward_backward"):
        visit = Visit(browser, (html / f"{name}.html").resolve().as_uri())
        try:
            page, path = visit.page, SCREENSHOTS / f"{name}.png"
            if name == "intro":  # the whole landing page: the syllabus figure and the notation table
                page.screenshot(path=path, full_page=True)
                shown = page.locator("article img, article mjx-container")
            else:  # the chapter: scrolled to its first displayed formula
                formula = page.locator('article mjx-container[display="true"]').first
                formula.scroll_into_view_if_needed()
                page.screenshot(path=path)
                box, height = formula.bounding_box(), page.viewport_size["height"]
                assert box["y"] >= 0 and box["y"] + box["height"] <= height, (
                    "the formula is off the screenshot"
                )
                shown = formula
            assert shown.count() > 0 and all(item.is_visible() for item in shown.all())
            assert path.stat().st_size > 10_000
        finally:
            visit.close()
