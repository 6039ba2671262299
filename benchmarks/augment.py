"""Augmentation throughput: rsmm's batched pipeline against torchgeo and a per-sample loop.

``python benchmarks/augment.py --help``; the same as ``rsmm benchmark augment`` (the code is
:mod:`rsmm.benchmarks.augment`).
"""

from rsmm.benchmarks.augment import main

if __name__ == "__main__":
    main()
