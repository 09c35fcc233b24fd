"""Benchmark reports: a JSON file with every number and a markdown file with the tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spyolo.utils.io import atomic_write_files

__all__ = ["TABLE_COLUMNS", "markdown_report", "markdown_table", "write_pair", "write_report"]

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("method", "method"),
    ("timesteps", "T"),
    ("batch", "batch"),
    ("img_size", "size"),
    ("width", "width"),
    ("compile", "compile"),
    ("amp_dtype", "amp"),
    ("ltc_backend", "LTC update"),
    ("images_per_s", "images/s"),
    ("ms_per_image_timestep", "ms / image-step"),
    ("peak_gib", "peak GiB"),
    ("gflops_per_image_timestep", "GFLOP / image-step"),
    ("tflops_achieved", "TFLOP/s"),
    ("sync_free", "sync-free"),
)
"""``(result key, column title)`` of the markdown result table."""

CONVENTIONS = (
    "One iteration = one batch: T timesteps (FPTT, BPTT, inference) or one step (ANN twin), "
    "with the real YOLO loss and, for FPTT, the real FPTT update at every step. "
    "images/s = batch / median seconds per iteration (synchronised timing after warm-up). "
    "ms / image-step = median seconds per iteration / (batch x steps). "
    "Peak memory: CUDA max_memory_allocated over the timed iterations; CPU peak RSS over the "
    "timed iterations of a fresh process per configuration (peak_method: vmhwm_reset or sampled). "
    "GFLOP / image-step: torch.utils.flop_counter on one forward timestep (convolutions and matrix "
    "products, multiply-add = 2). TFLOP/s: training counts forward + backward as 3 x forward FLOPs; "
    "inference 1 x."
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def markdown_table(rows: list[dict], columns: tuple[tuple[str, str], ...] = TABLE_COLUMNS) -> str:
    """A markdown table of ``rows``; rows with an ``"error"`` show it after the method."""
    lines = ["| " + " | ".join(title for _key, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        if row.get("error"):
            cells = [_cell(row.get(key)) for key, _title in columns[:5]]
            cells += [f"failed: {row['error']}"] + [""] * (len(columns) - 6)
        else:
            cells = [_cell(row.get(key)) for key, _title in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_lines(report: dict) -> list[str]:
    """The command, machine and software lines that head every markdown report."""
    machine = report.get("machine", {})
    gpus = ", ".join(g["name"] for g in machine.get("gpus", [])) or "none"
    return [
        f"- command: `{report.get('command', '')}`",
        f"- machine: CPU {machine.get('cpu_model', '?')} ({machine.get('cpu_cores', '?')} cores usable, "
        f"{machine.get('torch_threads', '?')} torch threads); GPU {gpus}",
        f"- software: torch {machine.get('torch', '?')}, CUDA {machine.get('cuda')}, triton {machine.get('triton')}, "
        f"Python {machine.get('python', '?')}",
    ]


def markdown_report(report: dict) -> str:
    """The whole report as markdown: machine, command, conventions, tables and extras."""
    parts = [
        "# spyolo benchmark",
        "",
        *machine_lines(report),
        f"- conventions: {CONVENTIONS}",
        "",
    ]
    if report.get("results"):
        parts += ["## Results", "", markdown_table(report["results"]), ""]
    ratio = report.get("cpu_ratio")
    if ratio:
        parts += [
            "## CPU ratio: one FPTT timestep vs one ANN-twin training step",
            "",
            f"batch {ratio['batch']}, {ratio['img_size']} px, width {ratio['width']}, T={ratio['timesteps']}, "
            f"{ratio['rounds']} interleaved rounds, LTC update {ratio['ltc_backend']}:",
            "",
            "| quantity | median |",
            "|---|---|",
            f"| FPTT timestep (s) | {_cell(ratio['fptt_step_s'])} |",
            f"| ANN step (s) | {_cell(ratio['ann_step_s'])} |",
            f"| ratio FPTT step / ANN step (median of per-round ratios) | {_cell(ratio['ratio'])} |",
            f"| forward FLOPs ratio SPYv4 / ANN | {_cell(ratio['flops_ratio'])} |",
            f"| target | <= {ratio['target']} ({'met' if ratio['ratio'] <= ratio['target'] else 'NOT met'}) |",
            "",
        ]
    loader = report.get("loader")
    if loader:
        parts += [
            "## Data loader",
            "",
            "| workers | batch | size | images/s | batches timed |",
            "|---|---|---|---|---|",
        ]
        for row in loader:
            parts.append(
                f"| {row['workers']} | {row['batch']} | {row['img_size']} | {_cell(row.get('images_per_s'))} "
                f"| {row.get('batches', '-')} |"
            )
        parts.append("")
    return "\n".join(parts)


def write_pair(json_path: Path, report: dict, md_path: Path, markdown: str) -> tuple[Path, Path]:
    """Write ``report`` as JSON and ``markdown`` beside it, each atomically, the two together
    (:func:`spyolo.utils.io.atomic_write_files`: both replace their files only once both are written)."""
    atomic_write_files([(json_path, (json.dumps(report, indent=2, default=str) + "\n").encode()),
                        (md_path, (markdown + "\n").encode())])
    return json_path, md_path


def write_report(out_dir: str | Path, report: dict, stem: str = "benchmark") -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.json`` and ``<stem>.md`` (atomically); return both paths."""
    out = Path(out_dir)
    return write_pair(out / f"{stem}.json", report, out / f"{stem}.md", markdown_report(report))
