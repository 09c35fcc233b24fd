#!/usr/bin/env python3
"""``spyolo convert`` as a script: ``python tools/convert.py --help`` (see spyolo/cli/convert.py)."""

import sys

import _bootstrap  # noqa: F401  (the checkout's spyolo first on sys.path)

from spyolo.cli.convert import main

if __name__ == "__main__":
    sys.exit(main())
