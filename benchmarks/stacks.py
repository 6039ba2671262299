"""Chip throughput: rsmm's CoRegisteredStack next to torchgeo's IntersectionDataset.

``python benchmarks/stacks.py --help``; the same as ``rsmm benchmark stacks`` (the code is
:mod:`rsmm.benchmarks.stacks`).
"""

from rsmm.benchmarks.stacks import main

if __name__ == "__main__":
    main()
