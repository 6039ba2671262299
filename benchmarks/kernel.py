"""Linear-probe OA after pre-training with the geodesic metadata kernel vs plain eq. 4.1.

``python benchmarks/kernel.py --help``; the code is :mod:`rsmm.benchmarks.kernel`.
"""

from rsmm.benchmarks.kernel import main

if __name__ == "__main__":
    main()
