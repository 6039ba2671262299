"""Chip throughput of user stacks.

``python benchmarks/stacks.py --help``: rsmm's CoRegisteredStack next to torchgeo's
IntersectionDataset (the same as ``rsmm benchmark stacks``; the code is
:mod:`rsmm.benchmarks.stacks`).

``python benchmarks/stacks.py zones [--extent 2560] [--chip 320] [--samples 200]``:
chip reads per second of a multi-zone stack (``--crs auto``: the quick start's scene
across the UTM 17/18 border, each chip read in its own zone, on its file's pixel grid)
against a one-CRS stack of the same chips (every chip moved, as a square around the
same centre, into EPSG:32618 and read from there: the western tile is resampled), in
one run; prints both rates and their ratio (per-zone / one-CRS, must not be below 0.9).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from typing import Any

#: The one CRS of the comparison stack.
ONE_CRS = "EPSG:32618"


def one_crs(manifest: Any, crs: str = ONE_CRS) -> Any:
    """The chips of ``manifest`` as squares of the same size around the same centres,
    all in ``crs`` (a :class:`~rsmm.stacks.manifest.ChipManifest`)."""
    from pyproj import Transformer

    from rsmm.stacks import ChipManifest

    chips = manifest.chips.copy()
    half = float(manifest.meta["chip_size_m"]) / 2
    cx = (chips["xmin"].to_numpy() + chips["xmax"].to_numpy()) / 2
    cy = (chips["ymin"].to_numpy() + chips["ymax"].to_numpy()) / 2
    for src in chips["crs"].unique():
        at = (chips["crs"] == src).to_numpy()
        t = Transformer.from_crs(src, crs, always_xy=True)
        cx[at], cy[at] = t.transform(cx[at], cy[at])
    chips["crs"] = crs
    chips["xmin"], chips["xmax"] = cx - half, cx + half
    chips["ymin"], chips["ymax"] = cy - half, cy + half
    meta = {**manifest.meta, "chip_crs": crs, "zones": None}
    return ChipManifest(chips=chips, meta=meta)


def zones(argv: list[str] | None = None) -> dict[str, float]:
    """Run the per-zone vs one-CRS benchmark; returns the rates and the ratio."""
    from rsmm.benchmarks._timing import cpu_name, median_seconds
    from rsmm.benchmarks.stacks import scene_options
    from rsmm.datasets import CoRegisteredStack
    from rsmm.quickstart import ZONE_BORDER_X
    from rsmm.stacks import build_manifest, generate_scene, spec_from_dirs

    p = argparse.ArgumentParser(prog="benchmarks/stacks.py zones", description=__doc__)
    scene_options(p)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        origin = (ZONE_BORDER_X - round(a.extent / 2 / 60) * 60, 4311000.0)
        scene = generate_scene(
            tmp, extent_m=(a.extent, a.extent), seed=0, west_crs="EPSG:32617", origin=origin
        )
        dirs = {m: scene.root / m for m in ("s2", "s1")}
        spec = spec_from_dirs(dirs, chip_size=f"{a.chip:g}m", split=(1.0, 0.0, 0.0))
        multi = build_manifest(spec)
        stacks = {"per-zone (--crs auto)": multi, f"one CRS ({ONE_CRS})": one_crs(multi)}
        rates = {}
        for name, manifest in stacks.items():
            ds = CoRegisteredStack(manifest)

            def read(ds: CoRegisteredStack = ds, n: int = a.samples) -> None:
                for i in range(n):
                    ds[i % len(ds)]

            rates[name] = a.samples / median_seconds(read, a.repeats)
    per_zone, one = rates.values()
    rates["ratio"] = per_zone / one
    zone_counts = ", ".join(f"{z} {n}" for z, n in multi.meta["zone_chips"].items())
    print(
        f"chip reads on {cpu_name()} ({len(multi.chips)} chips of {a.chip:g} m: {zone_counts}; "
        f"s2 13 bands + s1; {a.samples} samples, median of {a.repeats}, one process)"
    )
    print("| stack | chips/s |")
    print("| --- | --- |")
    for name, r in rates.items():
        if name != "ratio":
            print(f"| {name} | {r:.1f} |")
    print(f"per-zone / one-CRS chips/s: {rates['ratio']:.2f}x")
    return rates


if __name__ == "__main__":
    if sys.argv[1:2] == ["zones"]:
        zones(sys.argv[2:])
    else:
        from rsmm.benchmarks.stacks import main

        main()
