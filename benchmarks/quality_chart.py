#!/usr/bin/env python3
"""One bar chart of VOC2007 mAP from several ``benchmarks/bench_quality.py`` tables.

    python -m benchmarks.quality_chart runs/quality/table.json:ann_twin,spyv4_fptt \
        runs/quality_recipe2/table.json --out chart.png --reference ann_twin --ratio 0.85

Each argument is a ``table.json`` written by the benchmark (or a one-run record with its row
under ``"row"``), optionally followed by ``:`` and the comma-separated runs to take from it
(default: all of its rows). The bars keep the order of the arguments and of the rows. With
``--reference RUN`` the chart draws that run's mAP as a line,
and ``--ratio R`` a second line at R times it, and every bar is labelled with its mAP and its
ratio to the reference. A run named twice, a missing file, a file that is not a benchmark table,
a selected run the table does not hold, or an ``--out`` that is one of the inputs is one error
line and exit status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spyolo.utils.io import atomic_save_figure
from spyolo.utils.jsonfile import read_json


class ChartInputError(ValueError):
    """A table argument that cannot be used (the message names the file and the problem)."""


def load_rows(spec: str) -> list[dict]:
    """The rows ``PATH[:run,run,...]`` selects, in the table's order (or the selection's)."""
    path_text, _, selection = spec.rpartition(":") if not Path(spec).exists() else (spec, "", "")
    path = Path(path_text)
    table = read_json(path, ChartInputError, "benchmark table")
    rows = None
    if isinstance(table, dict):  # a table ({"rows": [...]}) or one run's record ({"row": {...}})
        rows = table.get("rows") if "rows" in table else [table["row"]] if "row" in table else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "run" in r and "map_voc07" in r for r in rows):
        raise ChartInputError(f"{path}: not a bench_quality table (no 'rows' with 'run' and 'map_voc07')")
    for row in rows:
        value = row["map_voc07"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ChartInputError(f"{path}: run {row['run']}: map_voc07 is {value!r}, not a fraction in [0, 1]")
    if not selection:
        return rows
    by_name = {r["run"]: r for r in rows}
    wanted = [name.strip() for name in selection.split(",") if name.strip()]
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise ChartInputError(f"{path}: no run named {', '.join(missing)} (it has: {', '.join(by_name)})")
    return [by_name[name] for name in wanted]


def collect(specs: list[str]) -> list[dict]:
    """Rows of every argument, in order; a run name given twice is an error."""
    rows: list[dict] = []
    seen: dict[str, str] = {}
    for spec in specs:
        for row in load_rows(spec):
            if row["run"] in seen:
                raise ChartInputError(
                    f"{spec}: run {row['run']} is also in {seen[row['run']]}; select one with PATH:run,...")
            seen[row["run"]] = spec
            rows.append(row)
    return rows


def draw(rows: list[dict], out: str | Path, reference: str | None = None, ratio: float | None = None,
         title: str = "") -> Path:
    """Horizontal bars of VOC2007 mAP (%) per run, with the reference and ratio lines."""
    from matplotlib.figure import Figure

    ref_map = None
    if reference is not None:
        matches = [r for r in rows if r["run"] == reference]
        if not matches:
            raise ChartInputError(f"--reference {reference}: no such run among the selected rows")
        ref_map = float(matches[0]["map_voc07"])
    values = [100.0 * float(r["map_voc07"]) for r in rows]
    fig = Figure(figsize=(8.0, 0.45 * len(rows) + 2.0))
    ax = fig.add_subplot(1, 1, 1)
    positions = list(range(len(rows)))[::-1]
    ax.barh(positions, values, color=["tab:gray" if r["run"] == reference else "tab:blue" for r in rows])
    for y, v in zip(positions, values):
        label = f"{v:.2f}%" + (f"  ({v / (100.0 * ref_map):.2f}x)" if ref_map else "")
        ax.text(v + 0.3, y, label, va="center", fontsize=8)
    if ref_map:
        ax.axvline(100.0 * ref_map, color="tab:gray", linestyle="--", label=f"{reference} {100 * ref_map:.2f}%")
        if ratio:
            ax.axvline(100.0 * ref_map * ratio, color="tab:red", linestyle=":",
                       label=f"{ratio:g} x {reference}")
        # below the axis, where it hides no bar label
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    ax.set_yticks(positions)
    ax.set_yticklabels([r["run"] for r in rows], fontsize=8)
    ax.set_xlabel("VOC2007 mAP (11-point, %)")
    ax.set_xlim(0.0, 1.2 * max(values + [100.0 * (ref_map or 0.0)]) + 1.0)
    ax.grid(True, axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return atomic_save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", help="table.json[:run,run,...] of bench_quality")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--reference", default=None, help="run drawn as the reference line (e.g. ann_twin)")
    parser.add_argument("--ratio", type=float, default=None, help="also draw ratio x the reference")
    parser.add_argument("--title", default="", help="chart title")
    args = parser.parse_args(argv)
    try:
        inputs = {Path(spec if Path(spec).exists() else spec.rpartition(":")[0]).resolve() for spec in args.tables}
        if Path(args.out).resolve() in inputs:
            raise ChartInputError(f"{args.out}: is one of the input tables; choose another --out")
        rows = collect(args.tables)
        path = draw(rows, args.out, args.reference, args.ratio, args.title)
    except ChartInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {args.out}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(f"wrote {path} ({len(rows)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
