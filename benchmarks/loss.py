"""Cost of the optimal-transport objectives inside a full pre-training step.

``python benchmarks/loss.py --help``; the same as ``rsmm benchmark loss`` (the code is
:mod:`rsmm.benchmarks.loss`).
"""

from rsmm.benchmarks.loss import main

if __name__ == "__main__":
    main()
