"""Streaming shards vs GeoTIFF windows: samples/s of the training loader, 1 and 4 workers.

A generated scene (rsmm.stacks.generate_scene) is indexed twice: S1 + S2 chips of
1200 m (S1 2 bands, S2 the 12 L2A bands, 120 x 120 pixels each, float32 as rsmm's
samples are) and NAIP chips of 240 m (4 bands, 240 x 240 at 1 m). Each set is read

* from the GeoTIFFs (CoRegisteredStack, windowed reads, through a shuffled DataLoader);
* from LitData shards written by rsmm.datasets.shards (ShardDataModule's loader: a
  StreamingDataLoader, shuffled by chunk), in two layouts written in the same run: the
  files' dtypes (uint16 S2, uint8 NAIP, float32 S1: what ``rsmm manifest shard``
  writes) and float32 throughout (the layout of shard format 1), with the shard bytes
  per sample of each;

with batches of 32 and 0 (in the main process), 1 and 4 loader workers, after a
warm-up epoch (the shards in the page cache; workers start at every epoch, as in
training). The epochs of the two layouts alternate, so that a change of the machine's
load affects both alike; with 0 workers the samples per CPU second of the process are
given too (steadier than samples/s on a loaded machine). The integer records are
converted while collated (each value read once and written once into the float32
batch, see rsmm.datamodules.collate). The shard rows also give the raw record rate
(what the loader collates, without collation) and the memory bandwidth of this
machine, which bound what collation (one copy of every byte into the batch) can reach.

    python benchmarks/shards.py [--extent 4800] [--stride 200] [--epochs 2] [--workers 0,1,4]
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


def _rates(loaders: dict[str, Any], epochs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Samples/s and samples per CPU second of this process of each loader (of batches
    or of single samples) over ``epochs`` epochs after a warm-up epoch, the epochs of
    the loaders alternating."""
    for loader in loaders.values():  # starts the workers, fills the page cache
        for _ in loader:
            pass
    n = dict.fromkeys(loaders, 0)
    wall, cpu = dict.fromkeys(loaders, 0.0), dict.fromkeys(loaders, 0.0)
    for _ in range(epochs):
        for key, loader in loaders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for item in loader:
                n[key] += len(item["label"]) if item["label"].ndim else 1
            wall[key] += time.perf_counter() - start
            cpu[key] += time.process_time() - start_cpu
    return {k: n[k] / wall[k] for k in loaders}, {k: n[k] / cpu[k] for k in loaders}


def _rate(loader: Any, epochs: int) -> float:
    """Samples/s of one loader (see :func:`_rates`)."""
    return _rates({"loader": loader}, epochs)[0]["loader"]


def _bytes_per_sample(root: Path, samples: int) -> float:
    """Bytes of the chunks of a split folder per sample."""
    return sum(p.stat().st_size for p in root.glob("*.bin")) / samples


def _ratio(rates: dict[str, float], name: str, loader: str) -> float:
    """Samples/s of the files' dtypes shards over the float32 ones."""
    return rates[f"shards {name}, dtypes, {loader}"] / rates[f"shards {name}, float32, {loader}"]


LAYOUTS = {"dtypes": "source", "float32": "float32"}  # name in the tables: --dtypes


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
    p.add_argument("--workers", default="0,1,4", help="loader worker counts (comma-separated)")
    a = p.parse_args(argv)
    worker_counts = [int(w) for w in a.workers.split(",")]
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rates: dict[str, float] = {}
    sizes: dict[str, float] = {}
    s2_bands = [b for b in get_sensor("s2").band_names if b != "B10"]  # the 12 of L2A
    with tempfile.TemporaryDirectory() as tmp:
        scene = generate_scene(tmp, extent_m=a.extent, seed=0, s2_bands=s2_bands, clouds=False)
        sets = {
            "S1+S2 120x120": (
                {"s1": scene.root / "s1", "s2": scene.root / "s2"},
                "1200m",
                a.stride,
            ),
            "NAIP 240x240": ({"naip": scene.root / "naip"}, "240m", 240.0),
        }
        for name, (dirs, chip, stride) in sets.items():
            spec = spec_from_dirs(dirs, chip_size=chip, stride=f"{stride:g}m", split=(1, 0, 0))
            stack = CoRegisteredStack(build_manifest(spec), split="train")
            modules = {}
            for layout, dtypes in LAYOUTS.items():
                out = Path(tmp) / "shards" / layout / name.split()[0]
                start = time.perf_counter()
                write_shards(stack, out / "train", chunk_bytes="64MB", dtypes=dtypes)
                rates[f"write {name}, {layout}"] = len(stack) / (time.perf_counter() - start)
                sizes[f"{name}, {layout}"] = _bytes_per_sample(out / "train", len(stack))
                modules[layout] = ShardDataModule(str(out), batch_size=a.batch_size)
                modules[layout].setup("fit")
            # the records the training loader collates (integer ones not converted)
            streams = {
                f"shards {name}, {layout}, records, no collation": dm.datasets["train"].streaming(
                    shuffle=True, drop_last=True, convert=False
                )
                for layout, dm in modules.items()
            }
            rates.update(_rates(streams, 1)[0])
            for workers in worker_counts:
                loaders = {}
                for layout, dm in modules.items():
                    dm.num_workers = workers
                    loaders[f"shards {name}, {layout}, {workers} workers"] = dm._loader(
                        "train", True
                    )
                wall, cpu = _rates(loaders, a.epochs)
                rates.update(wall)
                if workers == 0:  # the work is in this process
                    rates.update({f"{k}, per CPU second": v for k, v in cpu.items()})
            for workers in worker_counts:
                tif = DataLoader(stack, batch_size=a.batch_size, shuffle=True, num_workers=workers)
                rates[f"GeoTIFF windows {name}, {workers} workers"] = _rate(tif, 1)
            sample = stack[0]
            mb = sum(sample[m].numel() * 4 for m in stack.modalities) / 1e6
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
    print("\n| shards | bytes per sample |")
    print("| --- | --- |")
    for key, value in sizes.items():
        print(f"| {key} | {value:,.0f} |")
    bw = rates["memory copy GB/s, one thread"]
    print(f"\nmemory copy bandwidth, one thread: {bw:.1f} GB/s")
    for name in sets:
        mb = rates[f"MB per sample {name}"]
        ceiling = bw * 1e3 / 2 / mb  # collation reads and writes every byte once
        w = worker_counts[0]
        ratio = (
            rates[f"shards {name}, dtypes, {w} workers"]
            / rates[f"GeoTIFF windows {name}, {w} workers"]
        )
        print(
            f"{name}: shards / GeoTIFF windows ({w} workers) {ratio:.1f}x; one copy per "
            f"sample ({mb:.2f} MB) caps collation at {ceiling:.0f} samples/s"
        )
        size = sizes[f"{name}, dtypes"] / sizes[f"{name}, float32"]
        speed = ", ".join(
            f"{_ratio(rates, name, f'{n} workers'):.2f}x ({n} workers)" for n in worker_counts
        )
        if 0 in worker_counts:
            speed += f", {_ratio(rates, name, '0 workers, per CPU second'):.2f}x per CPU second"
        records = _ratio(rates, name, "records, no collation")
        print(
            f"{name}: files' dtypes / float32 shards: {size:.2f}x the bytes; samples/s "
            f"{speed}; records without collation {records:.2f}x"
        )
    return rates


if __name__ == "__main__":
    main()
