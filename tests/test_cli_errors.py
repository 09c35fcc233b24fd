"""The commands' error policy: what a user can fix (a SpyoloError, an OSError) is one line
``error: ...`` and exit status 2; anything else is a bug and shows its traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spyolo.cli import eval as eval_cli
from spyolo.cli import main
from spyolo.cli import synth as synth_cli

REPO = Path(__file__).resolve().parents[1]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, needle", [
    (["--train", "1", "--test", "1", "--min-side", "10"], "need 32 <= min_side <= max_side, got 10, 500"),
    (["--train", "1", "--test", "1", "--jpeg-quality", "0"], "jpeg_quality must be in 1..100, got 0"),
    (["--train", "-1", "--test", "1"], "need n_train >= 0"),
    (["--train", "1", "--test", "1", "--classes", "blob"], "unknown synthetic classes ['blob']"),
])
def test_a_bad_argument_is_one_line_and_exit_2(tmp_path: Path, capsys, argv, needle) -> None:
    out = tmp_path / "synth"
    assert synth_cli.main(["--out", str(out), "--no-progress", *argv]) == 2
    assert needle in _one_error_line(capsys)
    assert not out.exists()


def test_bad_text_files_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    gt, det = tmp_path / "gt", tmp_path / "det"
    gt.mkdir()
    det.mkdir()
    assert eval_cli.main(["--gt-dir", str(gt), "--det-dir", str(det)]) == 2
    assert f"no .txt ground-truth files in {gt}" in _one_error_line(capsys)


@pytest.mark.parametrize("bug", [ValueError, RuntimeError, KeyError])
def test_an_internal_bug_propagates_with_its_traceback(tmp_path: Path, monkeypatch, bug) -> None:
    import spyolo.data.synthetic as synthetic

    def broken(*_args, **_kwargs):
        raise bug("an internal bug")

    monkeypatch.setattr(synthetic, "generate_synthetic_voc", broken)
    with pytest.raises(bug, match="an internal bug"):
        main(["synth", "--out", str(tmp_path / "s"), "--train", "1", "--test", "1", "--no-progress"])


def test_the_console_command_prints_an_internal_bugs_traceback(tmp_path: Path) -> None:
    code = (
        "import sys, spyolo.data.synthetic as s\n"
        "def broken(*a, **k):\n"
        "    raise ValueError('an internal bug')\n"
        "s.generate_synthetic_voc = broken\n"
        "from spyolo.cli import main\n"
        f"sys.exit(main(['synth', '--out', {str(tmp_path / 's')!r}, '--train', '1', '--test', '1']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Traceback (most recent call last)" in r.stderr and "ValueError: an internal bug" in r.stderr
