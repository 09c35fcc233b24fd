"""benchmarks/quality_chart.py: bars from several bench_quality tables, and its input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import quality_chart

ROOT = Path(__file__).resolve().parents[1]


def _table(path: Path, rows: dict[str, float]) -> Path:
    path.write_text(json.dumps({"rows": [{"run": k, "map_voc07": v} for k, v in rows.items()]}), encoding="utf-8")
    return path


def test_collect_keeps_order_and_selection(tmp_path):
    a = _table(tmp_path / "a.json", {"ann_twin": 0.32, "spyv4_fptt": 0.19, "spyv4_bptt": 0.13})
    b = _table(tmp_path / "b.json", {"spyv4_fptt_transfer": 0.23})
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"row": {"run": "spyv4_fptt_mean", "map_voc07": 0.18}}), encoding="utf-8")
    rows = quality_chart.collect([f"{a}:spyv4_fptt,ann_twin", str(b), str(c)])
    assert [r["run"] for r in rows] == ["spyv4_fptt", "ann_twin", "spyv4_fptt_transfer", "spyv4_fptt_mean"]
    assert [r["map_voc07"] for r in rows] == [0.19, 0.32, 0.23, 0.18]


def test_draw_writes_a_png_with_reference_lines(tmp_path):
    a = _table(tmp_path / "a.json", {"ann_twin": 0.32, "spyv4_fptt": 0.19})
    out = tmp_path / "chart.png"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.quality_chart", str(a), "--out", str(out),
                           "--reference", "ann_twin", "--ratio", "0.85"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 runs" in proc.stdout


@pytest.mark.parametrize("case", ["duplicate", "missing_run", "not_a_table", "no_file", "bad_reference", "bad_value",
                                  "out_is_input"])
def test_bad_input_is_one_line_exit_2(tmp_path, case):
    a = _table(tmp_path / "a.json", {"ann_twin": 0.32, "spyv4_fptt": 0.19})
    b = _table(tmp_path / "b.json", {"ann_twin": 0.30})
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}', encoding="utf-8")
    args, needle = {
        "duplicate": ([str(a), str(b)], "also in"),
        "missing_run": ([f"{a}:spyv4_bptt"], "no run named spyv4_bptt"),
        "not_a_table": ([str(junk)], "not a bench_quality table"),
        "no_file": ([str(tmp_path / "none.json")], "benchmark table not found"),
        "bad_reference": ([str(a), "--reference", "nothing"], "no such run"),
        "bad_value": ([str(_table(tmp_path / "c.json", {"x": "high"}))], "map_voc07 is 'high'"),
        "out_is_input": ([str(a)], "is one of the input tables"),
    }[case]
    out = a if case == "out_is_input" else tmp_path / "chart.png"
    before = a.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.quality_chart", *args, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    assert a.read_bytes() == before
    if out != a:
        assert not out.exists()
