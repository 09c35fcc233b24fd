#!/usr/bin/env python3
"""``spyolo synth`` as a script: ``python tools/make_synthetic_voc.py --help`` (see spyolo/cli/synth.py)."""

import sys

import _bootstrap  # noqa: F401  (the checkout's spyolo first on sys.path)

from spyolo.cli.synth import main

if __name__ == "__main__":
    sys.exit(main())
