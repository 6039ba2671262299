"""Run a results grid: ``python scripts/run_grid.py configs/eurosat/grid.yaml [--dry-run]``.

See :mod:`rsmm.grid` for the spec format and the output layout.
"""

import sys

from rsmm.cli.grid import main

if __name__ == "__main__":
    sys.exit(main())
