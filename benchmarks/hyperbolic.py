"""Hyperbolic pre-training (hyp_ntxent) against eq. 4.1 (ntxent) on the generated scene.

``python benchmarks/hyperbolic.py --help``; the same as ``rsmm benchmark hyperbolic`` (the
code is :mod:`rsmm.benchmarks.hyperbolic`).
"""

from rsmm.benchmarks.hyperbolic import main

if __name__ == "__main__":
    main()
