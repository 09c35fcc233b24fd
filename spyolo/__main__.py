"""``python -m spyolo``: the ``spyolo`` command."""

import sys

from spyolo.cli import main

sys.exit(main())
