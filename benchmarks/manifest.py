"""Manifest building: parallel speed-up and peak memory (issue 22).

``python benchmarks/manifest.py speed [--extent 2560] [--chip 160] [--workers 2]``:
``build_manifest`` of a generated S1 + S2 + NAIP scene with polygon labels (the whole
build: listing, footprints, chip reads, labels, split, statistics) with one worker and
with ``--workers``, alternated ``--repeats`` times, in one run; prints the median
times and their ratio (goal: at least 1.7x with 2 workers on 2 cores) and checks that
both manifests are the same. Each repeat also times a perfectly parallel CPU-bound
loop (:func:`ceiling`) on one process and on ``--workers``: the ratio this machine
gives any code at the load of the run (other jobs on shared cores lower it), to read
the build's ratio against.

``python benchmarks/manifest.py memory [--extent 20000] [--chip 640] [--workers 2]``:
peak resident memory of building the manifest of a generated three-modality scene of
``--extent`` metres a side (S2 at 10 m, S1 at 10 m, NAIP at ``--naip-gsd``), next to a
``--small`` scene built the same way: each build runs in a fresh process, which reports
its own peak (``VmHWM``; the parent lists files, lays chips, labels, splits) and how far
each worker's peak rose above what it shared with the parent when forked (the pixels
of the chips it reads), and the memory the scene's
pixels would take decoded (float32). The goal: peaks bounded by a few chips per worker,
the same for both scenes, far below the decoded scene.

Scenes are written under ``--root`` (default: a temporary folder) and reused when
present there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

MB = 2**20


#: Parcel sides (min, max metres) of the speed scenes and of the memory scenes (larger
#: parcels keep drawing a 20 km scene fast and label chips of 640 m).
SMALL_FIELDS, LARGE_FIELDS = (60.0, 220.0), (800.0, 2500.0)


def scene_at(
    root: Path, extent: float, naip_gsd: float, fields: tuple[float, float] = SMALL_FIELDS
) -> Path:
    """A generated S1 + S2 + NAIP scene of ``extent`` metres a side under ``root``."""
    from rsmm.stacks import generate_scene

    folder = root / f"scene_{extent:g}m_naip{naip_gsd:g}m_fields{fields[0]:g}m"
    if not (folder / "labels.gpkg").exists():
        generate_scene(
            folder, extent_m=(extent, extent), seed=0, naip_gsd=naip_gsd, field_size=fields
        )
    return folder


def spec_for(folder: Path, chip: float) -> Any:
    """Three required modalities, polygon labels, the default ``--crs auto``."""
    from rsmm.stacks import spec_from_dirs
    from rsmm.stacks.spec import LabelSpec

    return spec_from_dirs(
        {m: folder / m for m in ("s2", "s1", "naip")},
        chip_size=f"{chip:g}m",
        labels=LabelSpec(str(folder / "labels.gpkg"), "landcover", "fields"),
    )


def decoded_mb(folder: Path) -> float:
    """MiB the scene's rasters would take read whole as float32."""
    import rasterio

    total = 0
    for m in ("s2", "s1", "naip"):
        for f in sorted((folder / m).rglob("*.tif")):
            with rasterio.open(f) as src:
                total += src.width * src.height * src.count * 4
    return total / MB


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _spin(steps: int) -> int:
    """A CPU-bound pure-Python loop of ``steps`` steps (no memory traffic, no I/O)."""
    total = 0
    for i in range(steps):
        total += i * i % 7
    return total


def ceiling(pool: Any, workers: int, steps: int = 1_500_000) -> tuple[float, float]:
    """Seconds of ``workers`` loops of ``steps`` steps run one after the other here, and
    run at once on the ``workers`` processes of ``pool``: their ratio is the speed-up a
    perfectly parallel job gets from this machine now."""
    t = time.perf_counter()
    for _ in range(workers):
        _spin(steps)
    one = time.perf_counter() - t
    t = time.perf_counter()
    list(pool.map(_spin, [steps] * workers))
    return one, time.perf_counter() - t


def speed(argv: list[str]) -> dict[str, float]:
    """Median build time with one worker and with ``--workers``; their ratio."""
    from rsmm.benchmarks._timing import cpu_name
    from rsmm.stacks import build_manifest

    p = argparse.ArgumentParser(prog="benchmarks/manifest.py speed")
    p.add_argument("--extent", type=float, default=2560.0, help="scene side in metres")
    p.add_argument("--chip", type=float, default=160.0, help="chip side in metres")
    p.add_argument("--naip-gsd", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--root", help="folder of the generated scenes (default: temporary)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(a.workers) as spinners:
        folder = scene_at(Path(a.root or tmp), a.extent, a.naip_gsd)
        spec = spec_for(folder, a.chip)
        before = load()
        times: dict[int, list[float]] = {1: [], a.workers: []}
        cpu: dict[int, list[float]] = {1: [], a.workers: []}
        spins: list[tuple[float, float]] = []
        built = {}
        build_manifest(spec)  # warm-up: imports, file listing, the page cache
        ceiling(spinners, a.workers, 1000)  # start the loops' processes
        for _ in range(a.repeats):
            spins.append(ceiling(spinners, a.workers))
            for w in times:
                cold_reads()
                t0, t = os.times(), time.perf_counter()
                built[w] = build_manifest(spec, workers=w)
                times[w].append(time.perf_counter() - t)
                t1 = os.times()
                own = t1.user + t1.system - t0.user - t0.system
                kids = t1.children_user + t1.children_system
                kids -= t0.children_user + t0.children_system
                cpu[w].append(own + kids / w)  # the parent's CPU and a worker's share
        one, many = built[1], built[a.workers]
        same = one.chips.equals(many.chips) and one.meta["stats"] == many.meta["stats"]
        candidates = len(one.chips) + sum(one.meta["dropped"].values())
    med = {w: statistics.median(ts) for w, ts in times.items()}
    per = {w: statistics.median(ts) for w, ts in cpu.items()}
    ratio = med[1] / med[a.workers]
    ideal = statistics.median(one / many for one, many in spins)
    print(
        f"manifest build on {cpu_name()} ({len(os.sched_getaffinity(0))} CPUs; load "
        f"{before} before, {load()} after): {a.extent:g} m scene, S2 13 bands + S1 + NAIP "
        f"{a.naip_gsd:g} m, chips of {a.chip:g} m: {candidates} read, {len(one.chips)} kept; "
        f"median of {a.repeats}, alternated, GDAL handles closed before each build"
    )
    print("| workers | seconds | chips/s | CPU s: parent + one worker's share |")
    print("| --- | --- | --- | --- |")
    for w, sec in med.items():
        print(f"| {w} | {sec:.2f} | {candidates / sec:.0f} | {per[w]:.2f} |")
    print(
        f"{a.workers} workers / 1: {ratio:.2f}x wall; {per[1] / per[a.workers]:.2f}x by CPU "
        f"time (what idle cores would give); same manifest: {same}"
    )
    print(
        f"a perfectly parallel CPU-bound loop in the same run, {a.workers} processes / 1: "
        f"{ideal:.2f}x (median of {a.repeats}: what this machine gave any code at this load)"
    )
    return {
        "one_s": med[1],
        "many_s": med[a.workers],
        "ratio": ratio,
        "ceiling": ideal,
        "same": float(same),
    }


def cold_reads() -> None:
    """Close this process's cached GDAL handles, dropping their decoded blocks, so that
    one worker reads as cold as the freshly started workers do (a real build is cold)."""
    from rsmm.stacks import windows

    while windows._HANDLES:
        windows._HANDLES.popitem()[1].close()  # type: ignore[attr-defined]


def _status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` (peak) of this process from ``/proc/self/status``, in MiB."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


#: ``[folder of the notes, VmRSS when this worker started]`` (see :func:`_watch_workers`).
_WATCH: list[Any] = [None, 0.0]


def _init_and_note(reader: Any, items: Any) -> None:
    _WATCH[1] = _status_mb("VmRSS")
    _WATCH_INIT[0](reader, items)


def _read_and_note(start: int, stop: int) -> Any:
    out = _WATCH_READ[0](start, stop)
    Path(_WATCH[0], str(os.getpid())).write_text(f"{_status_mb('VmHWM') - _WATCH[1]}")
    return out


_WATCH_INIT: list[Any] = [None]
_WATCH_READ: list[Any] = [None]


def _watch_workers(folder: str) -> None:
    """Make every worker record, after each run of chips, how far its peak memory rose above
    what it had when it started (the parent's pages it shares after ``fork``)."""
    from rsmm.stacks import parallel

    _WATCH[0] = folder
    _WATCH_INIT[0], _WATCH_READ[0] = parallel._init_worker, parallel._read_run
    parallel._init_worker, parallel._read_run = _init_and_note, _read_and_note


def _peak(argv: list[str]) -> None:
    """(Child process) build one manifest, print its peak memory as JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--chip", type=float)
    p.add_argument("--workers", type=int)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    import geopandas  # noqa: F401  (what the build imports, before the baseline)
    import torchgeo.datasets  # noqa: F401

    from rsmm.stacks import build_manifest

    spec = spec_for(Path(a.folder), a.chip)
    with tempfile.TemporaryDirectory() as notes:
        _watch_workers(notes)
        base = _status_mb("VmRSS")
        t = time.perf_counter()
        m = build_manifest(spec, workers=a.workers)
        seconds = time.perf_counter() - t
        rises = [float(f.read_text()) for f in Path(notes).iterdir()]
    read = len(m.chips) + sum(m.meta["dropped"].values())
    print(
        json.dumps(
            {"imports_mb": base, "parent_mb": _status_mb("VmHWM"), "worker_mb": max(rises),
             "chips": read, "kept": len(m.chips), "seconds": seconds}
        )
    )  # fmt: skip


def memory(argv: list[str]) -> dict[str, dict[str, float]]:
    """Peak memory of building a large and a small scene's manifests."""
    p = argparse.ArgumentParser(prog="benchmarks/manifest.py memory")
    p.add_argument("--extent", type=float, default=20000.0, help="large scene side in metres")
    p.add_argument("--small", type=float, default=5120.0, help="small scene side in metres")
    p.add_argument("--chip", type=float, default=640.0, help="chip side in metres")
    p.add_argument("--naip-gsd", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--root", help="folder of the generated scenes (default: temporary)")
    a = p.parse_args(argv)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for extent in (a.small, a.extent):
            folder = scene_at(Path(a.root or tmp), extent, a.naip_gsd, LARGE_FIELDS)
            cmd = [sys.executable, __file__, "_peak", str(folder), "--chip", f"{a.chip:g}"]
            cmd += ["--workers", str(a.workers)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out[f"{extent:g} m"] = {
                **json.loads(done.stdout.strip().splitlines()[-1]),
                "decoded_mb": decoded_mb(folder),
            }
    chip_px = a.chip / 10
    print(
        f"peak memory of rsmm manifest build (--workers {a.workers}; chips of {a.chip:g} m: "
        f"S2 13 x {chip_px:g}^2, S1 2 x {chip_px:g}^2, NAIP 4 x {a.chip / a.naip_gsd:g}^2 "
        f"pixels; load {load()})"
    )
    print("| scene | chips read | scene decoded (MiB) | parent after imports | parent peak | "
          "worker peak rise | seconds |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in out.items():
        print(
            f"| {name} | {r['chips']} | {r['decoded_mb']:.0f} | {r['imports_mb']:.0f} MiB | "
            f"{r['parent_mb']:.0f} MiB | {r['worker_mb']:.0f} MiB | {r['seconds']:.1f} |"
        )
    return out


if __name__ == "__main__":
    commands = {"speed": speed, "memory": memory, "_peak": _peak}
    if sys.argv[1:2] and sys.argv[1] in commands:
        commands[sys.argv[1]](sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
