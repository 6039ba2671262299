"""Loading throughput: rsmm's Meter-ML and SEN12MS loaders next to torchgeo's SEN12MS.

All read the same fake files (Meter-ML: tests/data/meterml; SEN12MS: TorchGeo's own
fixture). Prints samples/s and the ratio rsmm SEN12MS / torchgeo SEN12MS (same files,
same split, same bands).

    python benchmarks/loaders.py [--fixtures ../shared/fixtures/torchgeo] [--meterml DIR]
        [--repeats 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsmm.benchmarks._timing import cpu_name, median_seconds

# the defaults are the source checkout's test files; an installed rsmm has none: give
# --fixtures and --meterml
CHECKOUT = Path(__file__).resolve().parents[2]


def _read_all(ds) -> None:
    for i in range(len(ds)):
        ds[i]


def main(argv: list[str] | None = None) -> dict[str, float]:
    import warnings

    from torchgeo.datasets import SEN12MS as TGSEN12MS

    from rsmm.datasets import SEN12MS, MeterML

    p = argparse.ArgumentParser(
        prog="rsmm benchmark loaders", allow_abbrev=False, description=__doc__
    )
    p.add_argument(
        "--fixtures",
        default=str(CHECKOUT.parent / "shared" / "fixtures" / "torchgeo"),
        help="TorchGeo's test fixtures (a copy of its tests/data), with sen12ms/",
    )
    p.add_argument(
        "--meterml",
        default=str(CHECKOUT / "tests" / "data" / "meterml"),
        help="a Meter-ML root (default: the fake one in rsmm's tests/data/meterml)",
    )
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    sen_root = Path(a.fixtures) / "sen12ms"
    loaders = {
        "rsmm MeterML (s1+s2 13 bands+naip)": MeterML(a.meterml, split="train"),
        "rsmm SEN12MS (s1+s2)": SEN12MS(str(sen_root), split="train"),
        "torchgeo SEN12MS (all bands)": TGSEN12MS(str(sen_root), split="train", checksum=False),
    }
    rates = {}
    for name, ds in loaders.items():
        t = median_seconds(lambda ds=ds: _read_all(ds), a.repeats)
        rates[name] = len(ds) / t
    print(f"loading throughput on {cpu_name()} (median of {a.repeats})")
    print("| loader | samples/s |")
    print("| --- | --- |")
    for name, r in rates.items():
        print(f"| {name} | {r:.1f} |")
    ratio = rates["rsmm SEN12MS (s1+s2)"] / rates["torchgeo SEN12MS (all bands)"]
    print(f"\nrsmm SEN12MS / torchgeo SEN12MS samples/s: {ratio:.2f}x")
    rates["ratio_sen12ms"] = ratio
    return rates


if __name__ == "__main__":
    main()
