"""The named pretrained weights: list them, and fetch them ahead of use.

    spyolo weights                      # names, sizes, sources, licences, and what is cached
    spyolo weights sfptt-voc            # download, verify and convert now; print the checkpoint's path

(``python tools/weights.py ...`` is the same program.)

Any command that takes weights takes a name instead of a file: ``spyolo demo --weights sfptt-voc``,
``spyolo eval --weights sfptt-voc``, ``spyolo export --weights ...``, ``model.init_from=yolov4-tiny-coco``,
``train.distill_from=...``. On first use the files are downloaded into the cache (``$SPYOLO_CACHE``,
else ``$XDG_CACHE_HOME/spyolo``, else ``~/.cache/spyolo``) with a progress bar, through a temporary
file that is checked against the publisher's checksum before it is kept, and converted once into a
spyolo checkpoint (``<cache>/checkpoints/<name>.pt``). Offline, or when a download fails, is cut
short or does not verify, the command stops with one line naming the URL, the expected checksum and
where to put the file by hand; nothing partial is left in the cache. A file put in the cache by hand
is verified before use.
"""

from __future__ import annotations

import argparse
import sys

from spyolo.cli.common import command_parser, parse_command_line, run_command

__all__ = ["add_arguments", "build_parser", "main", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="fetch these now (default: list every name)")
    p.add_argument("--no-progress", action="store_true", help="no download progress bar")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("weights", __doc__, add_arguments)


def run(args: argparse.Namespace) -> int:
    from spyolo.hub import REGISTRY, cache_dir, cache_state, fetch_named

    if args.names:
        for name in args.names:
            path = fetch_named(name, progress=not args.no_progress)
            print(f"{name}: {path}")
        return 0
    print(f"cache: {cache_dir()} (SPYOLO_CACHE moves it)")
    width = max(len(name) for name in REGISTRY)
    for entry in REGISTRY.values():
        print(f"{entry.name:<{width}}  {entry.size:>8}  {cache_state(entry).describe()}")
        print(f"{'':<{width}}  {entry.summary}")
        print(f"{'':<{width}}  source: {entry.source}; licence: {entry.licence}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
