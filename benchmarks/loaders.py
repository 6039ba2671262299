"""Loading throughput: rsmm's Meter-ML and SEN12MS loaders next to torchgeo's SEN12MS.

``python benchmarks/loaders.py --help``; the same as ``rsmm benchmark loaders`` (the code is
:mod:`rsmm.benchmarks.loaders`).
"""

from rsmm.benchmarks.loaders import main

if __name__ == "__main__":
    main()
