"""Streaming shards vs GeoTIFF windows: samples/s of the training loader, 1 and 4 workers.

A generated scene (rsmm.stacks.generate_scene) is indexed twice: S1 + S2 chips of
1200 m (S1 2 bands, S2 the 12 L2A bands, 120 x 120 pixels each, float32 as rsmm's
samples are) and NAIP chips of 240 m (4 bands, 240 x 240 at 1 m). Each set is read

* from the GeoTIFFs (CoRegisteredStack, windowed reads, through a shuffled DataLoader);
* from LitData shards written by rsmm.datasets.shards (ShardDataModule's loader: a
  StreamingDataLoader, shuffled by chunk);

with batches of 32 and 0 (in the main process), 1 and 4 loader workers, after a
warm-up epoch (the shards in the page cache; workers start at every epoch, as in
training). The shard rows also
give the raw record rate (no collation) and the memory bandwidth of this machine, which
bound what collation (one copy of every byte into the batch) can reach.

    python benchmarks/shards.py [--extent 4800] [--stride 200] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch


def _rate(loader: Any, epochs: int) -> float:
    """Samples/s over ``epochs`` epochs after a warm-up epoch."""
    for _ in loader:  # starts the workers, fills the page cache
        pass
    n, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            n += len(batch["label"])
    return n / (time.perf_counter() - start)


def _bandwidth_gb_s() -> float:
    """Memory copy bandwidth (GB/s read + written) of one thread: 256 MB copied into a
    buffer already touched (no page faults)."""
    x = torch.ones(64 * 2**20, dtype=torch.float32)
    y = torch.zeros_like(x)
    start = time.perf_counter()
    for _ in range(5):
        y.copy_(x)
    return 2 * 5 * x.numel() * 4 / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> dict[str, float]:
    from torch.utils.data import DataLoader

    from rsmm.datamodules.streaming import ShardDataModule
    from rsmm.datasets import CoRegisteredStack
    from rsmm.datasets.shards import write_shards
    from rsmm.sensors import get_sensor
    from rsmm.stacks import build_manifest, generate_scene, spec_from_dirs

    p = argparse.ArgumentParser(prog="benchmarks/shards.py", description=__doc__)
    p.add_argument("--extent", type=float, default=4800.0, help="scene side in metres")
    p.add_argument("--stride", type=float, default=200.0, help="S1+S2 chip stride in metres")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per loader")
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rates: dict[str, float] = {}
    s2_bands = [b for b in get_sensor("s2").band_names if b != "B10"]  # the 12 of L2A
    with tempfile.TemporaryDirectory() as tmp:
        scene = generate_scene(tmp, extent_m=a.extent, seed=0, s2_bands=s2_bands, clouds=False)
        sets = {
            "S1+S2 120x120": ({"s1": scene.root / "s1", "s2": scene.root / "s2"}, "1200m", a.stride),
            "NAIP 240x240": ({"naip": scene.root / "naip"}, "240m", 240.0),
        }
        for name, (dirs, chip, stride) in sets.items():
            spec = spec_from_dirs(dirs, chip_size=chip, stride=f"{stride:g}m", split=(1, 0, 0))
            stack = CoRegisteredStack(build_manifest(spec), split="train")
            out = Path(tmp) / "shards" / name.split()[0]
            start = time.perf_counter()
            write_shards(stack, out / "train", chunk_bytes="64MB")
            rates[f"write {name}"] = len(stack) / (time.perf_counter() - start)
            sample = stack[0]
            mb = sum(sample[m].numel() * 4 for m in stack.modalities) / 1e6
            dm = ShardDataModule(str(out), batch_size=a.batch_size)
            dm.setup("fit")
            records = dm.datasets["train"].streaming(shuffle=True, drop_last=True)
            start = time.perf_counter()
            n = sum(1 for _ in records)
            rates[f"shards {name}, records, no collation"] = n / (time.perf_counter() - start)
            for workers in (0, 1, 4):
                dm.num_workers = workers
                loader = dm._loader("train", shuffle=True)
                rates[f"shards {name}, {workers} workers"] = _rate(loader, a.epochs)
                tif = DataLoader(
                    stack,
                    batch_size=a.batch_size,
                    shuffle=True,
                    num_workers=workers,
                )
                rates[f"GeoTIFF windows {name}, {workers} workers"] = _rate(tif, 1)
            rates[f"MB per sample {name}"] = mb
            print(f"{name}: {len(stack)} chips, {mb:.2f} MB per sample (float32)", flush=True)
    rates["memory copy GB/s, one thread"] = _bandwidth_gb_s()
    cores = torch.multiprocessing.cpu_count()
    load = os.getloadavg()[0]
    print(f"\nsamples/s, batches of {a.batch_size}, {cores} CPU cores, load average {load:.1f}")
    print("| loader | samples/s |")
    print("| --- | --- |")
    for key, value in rates.items():
        if not key.startswith(("MB", "memory")):
            print(f"| {key} | {value:.0f} |")
    bw = rates["memory copy GB/s, one thread"]
    print(f"\nmemory copy bandwidth, one thread: {bw:.1f} GB/s")
    for name in sets:
        mb = rates[f"MB per sample {name}"]
        ceiling = bw * 1e3 / 2 / mb  # collation reads and writes every byte once
        ratio = rates[f"shards {name}, 0 workers"] / rates[f"GeoTIFF windows {name}, 0 workers"]
        print(
            f"{name}: shards / GeoTIFF windows (main process) {ratio:.1f}x; one copy per "
            f"sample ({mb:.2f} MB) caps collation at {ceiling:.0f} samples/s"
        )
    return rates


if __name__ == "__main__":
    main()
