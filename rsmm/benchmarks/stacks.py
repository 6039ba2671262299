"""Chip throughput: rsmm's CoRegisteredStack next to torchgeo's IntersectionDataset.

Both read the same generated scene (rsmm.stacks.generate_scene: S2 13 bands in UTM,
S1 VV/VH in Web Mercator, NAIP 1 m in a state plane), one process, the same number
of chips of the same size. torchgeo samples with RandomGeoSampler over an
IntersectionDataset of generic RasterDatasets (S2 first, so everything is resampled
to 10 m and concatenated); rsmm reads each modality at its own GSD (NAIP 1 m chips
are 100x more pixels than torchgeo's resampled NAIP). Prints samples/s and ratios.

    python benchmarks/stacks.py [--extent 2560] [--chip 320] [--samples 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings

from rsmm.benchmarks._timing import cpu_name, median_seconds


def scene_options(p: argparse.ArgumentParser) -> None:
    """The options of the stack benchmarks: scene side, chip side, samples, repeats."""
    p.add_argument("--extent", type=float, default=2560.0, help="S2 scene side in metres")
    p.add_argument("--chip", type=float, default=320.0, help="chip side in metres")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)


def main(argv: list[str] | None = None) -> dict[str, float]:
    import pandas as pd
    from torchgeo.datasets import IntersectionDataset
    from torchgeo.samplers import RandomGeoSampler, Units

    from rsmm.datasets import CoRegisteredStack
    from rsmm.stacks import (
        ModalitySource,
        build_manifest,
        common_crs,
        generate_scene,
        make_raster_dataset,
        spec_from_dirs,
    )

    p = argparse.ArgumentParser(
        prog="rsmm benchmark stacks", allow_abbrev=False, description=__doc__
    )
    scene_options(p)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scene = generate_scene(tmp, extent_m=(a.extent, a.extent), seed=0)
        for mods in (("s2", "s1"), ("s2", "s1", "naip")):
            dirs = {m: scene.root / m for m in mods}
            spec = spec_from_dirs(dirs, chip_size=f"{a.chip:g}m", split=(1.0, 0.0, 0.0))
            stack = CoRegisteredStack(build_manifest(spec))
            n = a.samples

            def read_rsmm(stack: CoRegisteredStack = stack, n: int = n) -> None:
                for i in range(n):
                    stack[i % len(stack)]

            sources = {m: ModalitySource(s) for m, s in spec.modalities.items()}
            crs = common_crs(spec, sources)
            tg = [make_raster_dataset(sources[m], crs) for m in mods]
            for ds in tg:  # S1 and S2 dates differ by days: ignore time, as rsmm does here
                ds.index.index = pd.IntervalIndex.from_tuples(
                    [(pd.Timestamp.min, pd.Timestamp.max)] * len(ds.index),
                    closed="both",
                    name="datetime",
                )
            inter = IntersectionDataset(tg[0], tg[1])
            if len(tg) == 3:
                inter = IntersectionDataset(inter, tg[2])
            name = "+".join(mods)

            def read_torchgeo(inter: IntersectionDataset = inter, n: int = n) -> None:
                sampler = RandomGeoSampler(inter, size=a.chip, length=n, units=Units.CRS)
                for query in sampler:
                    inter[query]

            t_rsmm = median_seconds(read_rsmm, a.repeats)
            t_tg = median_seconds(read_torchgeo, a.repeats)
            rates[f"rsmm CoRegisteredStack {name}"] = n / t_rsmm
            rates[f"torchgeo IntersectionDataset {name}"] = n / t_tg
            rates[f"ratio {name}"] = t_tg / t_rsmm
    print(
        f"chip throughput on {cpu_name()} ({a.chip:g} m chips, {a.samples} samples, "
        f"median of {a.repeats}, one process)"
    )
    print("| loader | samples/s |")
    print("| --- | --- |")
    for name, r in rates.items():
        if not name.startswith("ratio"):
            print(f"| {name} | {r:.1f} |")
    for name, r in rates.items():
        if name.startswith("ratio"):
            print(f"rsmm / torchgeo samples/s, {name[6:]}: {r:.2f}x")
    return rates


if __name__ == "__main__":
    main()
