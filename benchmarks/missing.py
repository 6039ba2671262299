"""Missing modalities on the generated scene: (a) drop incomplete chips, (b) train on
every chip with presence, (c) one modality; OA / kappa with every test-time subset.

``python benchmarks/missing.py --help``; the code is :mod:`rsmm.benchmarks.missing`.
"""

from rsmm.benchmarks.missing import main

if __name__ == "__main__":
    main()
