"""A Sphinx extension of the book (notebooks/_config.yml, ``sphinx: local_extensions``).

With Jupyter Book 1.x on Sphinx 7.4, sphinx-thebe and sphinx-togglebutton each add their inline
configuration script twice to every page; the second ``const THEBE_JS_URL = ...`` is then a
SyntaxError in the browser console. This drops every repeated script from the page context, so
each page loads without a console error (tests/test_browser.py checks it in Chromium).
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


def setup(app):
    # Early: the first handler of this event that returns a value ends the event.
    app.connect("html-page-context", drop_repeated_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
