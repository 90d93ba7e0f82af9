"""A Sphinx extension of the book (notebooks/_config.yml, ``sphinx: local_extensions``).

It puts a "Run this notebook" box under the title of every notebook's page: a link that downloads
the ``.ipynb`` file, and the way to open it in JupyterLab from a copy of the course (``make lab``).

With Jupyter Book 1.x on Sphinx 7.4, sphinx-thebe and sphinx-togglebutton each add their inline
configuration script twice to every page; the second ``const THEBE_JS_URL = ...`` is then a
SyntaxError in the browser console. This drops every repeated script from the page context, so
each page loads without a console error (tests/test_browser.py checks it in Chromium).
"""

from html import escape

# JupyterLab's default address; `make lab` serves notebooks/, so a notebook's path is its file name.
LAB_URL = "http://localhost:8888/lab/tree/"
RUN_BOX = """
<div class="admonition tip run-this-notebook">
<p class="admonition-title">Run this notebook</p>
<p>Download <a class="download-notebook" href="_sources/{name}" download="{name}">{name}</a>
and open it in any Jupyter where the course is installed (<code>pip install -e .</code> in the
repository). In your copy of the course, <code>make lab</code> installs it and starts JupyterLab on
<code>notebooks/</code>; while that runs,
<a class="open-in-jupyterlab" href="{lab}{name}">open this notebook in JupyterLab</a>
(or use the address that <code>make lab</code> prints, if its port is not 8888).</p>
</div>
"""


def _key(script):
    attributes = getattr(script, "attributes", {}) or {}
    # An inline script's filename is None in one copy and "" in the other.
    return getattr(script, "filename", script) or "", tuple(sorted(attributes.items()))


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # In place: the list is the builder's own, which Sphinx resets before each page and to which
    # later handlers (MathJax's among them) still add.
    context["script_files"][:] = kept


def add_run_box(app, pagename, templatename, context, doctree):
    """Under the title of a notebook's page: download the notebook, or open it in JupyterLab."""
    if doctree is None or not str(app.env.doc2path(pagename)).endswith(".ipynb"):
        return
    name = escape(f"{pagename}.ipynb")
    body = context.get("body", "")
    title_end = body.find("</h1>") + len("</h1>")
    if title_end >= len("</h1>"):
        context["body"] = body[:title_end] + RUN_BOX.format(name=name, lab=LAB_URL) + body[title_end:]


def setup(app):
    # Early: the first handler of this event that returns a value ends the event.
    app.connect("html-page-context", drop_repeated_scripts, priority=100)
    app.connect("html-page-context", add_run_box, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
