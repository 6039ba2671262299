"""rsmm's Sinkhorn against POT's log-domain Sinkhorn (torch backend), same inputs, same iterations.

``python benchmarks/sinkhorn.py --help``; the same as ``rsmm benchmark sinkhorn`` (the code is
:mod:`rsmm.benchmarks.sinkhorn`).
"""

from rsmm.benchmarks.sinkhorn import main

if __name__ == "__main__":
    main()
