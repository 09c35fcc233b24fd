"""The ``spyolo`` command: ``spyolo train | eval | demo | synth | download | export | convert | weights``
(``spyolo <cmd> --help``).

Each subcommand is a module here with ``add_arguments(parser)`` and ``run(args)``; the scripts
in ``tools/`` run the same modules (``python tools/train.py`` is ``spyolo train``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# The commands never need the network: albumentations would otherwise look up its latest
# version online when spyolo's data pipeline imports it (and warn on every offline run).
# A program embedding spyolo decides this for itself.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = {
    "train": "train SPYv4 (FPTT/BPTT) or its ANN twin on a VOC, COCO, YOLO or event dataset",
    "eval": "evaluate a checkpoint (or detection text files) with the exact VOC protocol",
    "demo": "detect objects in images, a folder, a video or a camera; write annotated results",
    "synth": "generate the synthetic shapes dataset (VOC or YOLO layout, or event recordings)",
    "download": "download PASCAL VOC (2007 trainval + test, 2012 trainval) into ROOT/VOCdevkit",
    "export": "export a checkpoint for inference",
    "convert": "convert a Darknet YOLOv4-tiny (.weights + .cfg) or the sFPTT release's SPYv4 into a spyolo checkpoint",
    "weights": "list the named pretrained weights (sfptt-voc, yolov4-tiny-coco, ...) and fetch them",
}
"""Subcommand -> one-line description; each is the module ``spyolo.cli.<name>``."""


def build_parser() -> argparse.ArgumentParser:
    from spyolo import __version__
    from spyolo.cli.common import add_logging_flags

    parser = argparse.ArgumentParser(
        prog="spyolo",
        description="spyolo: spiking object detection (SPYv4 with LTC neurons, trained online with FPTT).",
        epilog="Run 'spyolo <command> --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"spyolo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"spyolo.cli.{name}")
        p = sub.add_parser(name, help=help_text, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        add_logging_flags(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spyolo`` console command."""
    from spyolo.cli.common import parse_command_line, run_command

    args = parse_command_line(build_parser(), argv)
    return run_command(args._run, args)


if __name__ == "__main__":
    sys.exit(main())
