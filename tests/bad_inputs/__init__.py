"""Bad inputs, one table: every case builds a bad input and says what must happen.

The cases live in one module per area; importing this package registers them all in
:data:`CASES` (run by ``tests/test_bad_inputs.py``).
"""

from bad_inputs import other, stacks, training, weights  # noqa: F401  (registers the cases)
from bad_inputs.core import CASES, Api, Cli, Shared, case

__all__ = ["CASES", "Api", "Cli", "Shared", "case"]
