#!/usr/bin/env python3
"""``spyolo demo`` as a script: ``python tools/demo.py --help`` (see spyolo/cli/demo.py)."""

import sys

import _bootstrap  # noqa: F401  (the checkout's spyolo first on sys.path)

from spyolo.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
