"""Download a public dataset: PASCAL VOC (VOC2007 trainval and test, VOC2012 trainval).

    spyolo download voc --root data/voc
    spyolo train --config configs/spyv4_voc.yaml          # its data.root is data/voc/VOCdevkit
    spyolo eval --weights runs/spyv4_voc/weights/best.pt

The archives (about 3.6 GB; their addresses and md5 sums are torchvision's) go to
``ROOT/.spyolo-download/`` and are extracted into ``ROOT/VOCdevkit/VOC2007`` and ``VOC2012``, each
year moved into place only when it is complete. An interrupted run (a cut connection, Ctrl-C)
resumes where it stopped when run again; a wrong md5 stops with one line and nothing extracted.
``ROOT`` must be new, empty or hold only what an earlier run put there. ``--mirror URL`` fetches
the same files from another address (the archive file names appended to it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spyolo.cli.common import command_parser, parse_command_line, run_command

__all__ = ["add_arguments", "build_parser", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=("voc",), help="the dataset (voc: PASCAL VOC 2007 + 2012)")
    parser.add_argument("--root", required=True,
                        help="folder that gets VOCdevkit/ (new, empty, or filled by an earlier run)")
    parser.add_argument("--years", nargs="+", default=["2007", "2012"], choices=("2007", "2012"),
                        help="VOC years (default: 2007 2012)")
    parser.add_argument("--mirror", default=None, metavar="URL",
                        help="base address of another copy of the VOC archives")
    parser.add_argument("--keep-archives", action="store_true",
                        help="keep the downloaded .tar files (in ROOT/.spyolo-download/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("download", __doc__, add_arguments)


def run(args: argparse.Namespace) -> int:
    from spyolo.data.download import download_voc, voc_archives

    archives = voc_archives(sorted(set(args.years)), mirror=args.mirror)
    devkit = download_voc(args.root, archives, progress=not args.no_progress, keep_archives=args.keep_archives)
    years = " and ".join(f"VOC{y}" for y in sorted(set(args.years)))
    print(f"{years} in {devkit}: use data.root={devkit}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
