"""``python -m rsmm.cli``: the ``rsmm`` command."""

from rsmm.cli import run

run()
