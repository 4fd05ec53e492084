"""``python -m pytest_weightshape diff|show``: see :mod:`pytest_weightshape.report.cli`."""

import sys

from pytest_weightshape.report.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:  # `... diff | head`: the reader left; not an error of ours
    code = 0
raise SystemExit(code)
