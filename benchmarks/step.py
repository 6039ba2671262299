"""One pre-training step: rsmm vs torchgeo's SimCLRTask vs a bare ResNet-18 step.

``python benchmarks/step.py --help``; the same as ``rsmm benchmark step`` (the code is
:mod:`rsmm.benchmarks.step`).
"""

from rsmm.benchmarks.step import main

if __name__ == "__main__":
    main()
