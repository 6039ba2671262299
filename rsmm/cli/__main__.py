"""``python -m rsmm.cli``: the ``rsmm`` command."""

import sys

from rsmm.cli import main

sys.exit(main())
