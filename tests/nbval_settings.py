"""nbval settings for the strict run of the notebooks (loaded with ``-p tests.nbval_settings``).

Outputs that differ between machines and mean nothing are not compared: stderr (warnings,
progress bars), and the vector formats, whose text holds random ids. PNG figures are already
skipped by nbval.
"""

SKIPPED_OUTPUTS = ("stderr", "image/svg+xml", "application/pdf")


def pytest_collectstart(collector):
    if collector.path is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += SKIPPED_OUTPUTS
