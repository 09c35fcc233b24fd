#!/usr/bin/env python3
"""``spyolo download`` as a script: ``python tools/download.py --help`` (see spyolo/cli/download.py)."""

import sys

import _bootstrap  # noqa: F401  (the checkout's spyolo first on sys.path)

from spyolo.cli.download import main

if __name__ == "__main__":
    sys.exit(main())
