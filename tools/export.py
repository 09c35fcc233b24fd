#!/usr/bin/env python3
"""``spyolo export`` as a script: ``python tools/export.py --help`` (see spyolo/cli/export.py)."""

import sys

import _bootstrap  # noqa: F401  (the checkout's spyolo first on sys.path)

from spyolo.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
