"""``rsmm manifest build|stats|shard``: chip indexes of user stacks, band statistics,
streaming shards."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmm.errors import ConfigError, DatasetFileError
from rsmm.parsing import OptionParser


def _add_build_parser(sub: Any) -> None:
    b = sub.add_parser(
        "build",
        help="chip index (GeoParquet) of your own co-registered S1/S2/NAIP rasters or S2 SAFE products",
        description="Index chips over the overlap of your modality folders (any CRS, "
        "resolution and tiling), with labels, spatial splits and train band statistics. "
        "Example: rsmm manifest build --s1 s1/ --s2 s2/ --naip naip/ --chip-size 600m "
        "--labels fields.gpkg --label-column crop --out chips.parquet --map chips.png",
    )
    b.add_argument("--spec", help="stack YAML (see rsmm.stacks.spec); flags override it")
    sources = {
        "s1": "Sentinel-1 rasters (a GRD export: per-polarisation files *_VV.tif, *_VH.tif, "
        "or multi-band files)",
        "s2": "Sentinel-2 rasters (per-band files *_B02.jp2 ..., multi-band files) or SAFE "
        "products (L1C or L2A .SAFE folders or their .zip, read as they are)",
        "naip": "NAIP rasters",
    }
    for m, what in (("s1", "Sentinel-1"), ("s2", "Sentinel-2"), ("naip", "NAIP")):
        b.add_argument(
            f"--{m}",
            metavar="DIR",
            help=f"folder of {sources[m]}: every .tif, .tiff, .jp2 and .vrt file under it, "
            "or one GDAL dataset name (/vsizip/..., a subdataset string)",
        )
        b.add_argument(
            f"--{m}-glob",
            metavar="PATTERN",
            help=f"read only the {what} files matching this pattern (e.g. '*_10m.tif')",
        )
        b.add_argument(
            f"--{m}-bands",
            metavar="B1,B2",
            help=f"{what} band names in file order, - for a band not to read "
            "(e.g. --s1-bands VV,VH,- for a VV, VH, angle export; write "
            "--s1-bands=-,VV,VH when the list starts with -)",
        )
    b.add_argument(
        "--optional",
        action="append",
        metavar="MODALITY",
        help="a modality that need not cover every chip (e.g. naip; repeatable or comma "
        "separated): chips cover the other modalities' overlap, and a 'modalities' column "
        "says which cover each chip",
    )
    b.add_argument("--s1-units", choices=("db", "linear"), help="Sentinel-1 values (default db)")
    b.add_argument(
        "--s2-offset",
        action="append",
        metavar="OFFSET|PATTERN=OFFSET",
        help="added to the stored Sentinel-2 values before the x 1e4 reflectance scale "
        "(default: each SAFE product's RADIO/BOA_ADD_OFFSET, -1000 since baseline 04.00, "
        "also for a SENTINEL2_L1C/L2A subdataset; else 0): OFFSET for every file, or "
        "PATTERN=OFFSET for the products and files a glob matches (product names, "
        ".SAFE/.zip and file names; a pattern wins over OFFSET; repeatable or comma "
        "separated, e.g. --s2-offset 'S2*_MSIL1C_*=0,S2*_MSIL2A_*=-1000', as offsets: in "
        "the stack YAML; write --s2-offset=-1000,... when the list starts with -); the "
        "offset of every product lets L1C and L2A products share the modality",
    )
    b.add_argument("--naip-gsd", type=float, help="NAIP target GSD in m (default: the files')")
    b.add_argument(
        "--chip-size",
        help="chip side: 600m, or 60px of Sentinel-2 (default 600m); a whole number of "
        "pixels of every modality",
    )
    b.add_argument("--stride", help="distance between chips (default: the chip size)")
    b.add_argument(
        "--crs",
        help="auto (default): each chip in the UTM zone of its centre, on its file's pixel "
        "grid; or one CRS for every chip, e.g. EPSG:32631",
    )
    b.add_argument("--max-days", type=float, help="S1/S2 acquisitions at most N days apart")
    b.add_argument(
        "--labels", metavar="FILE", help="points/polygons (GeoPackage, GeoJSON, Shapefile)"
    )
    b.add_argument("--label-column", help="class column of --labels")
    b.add_argument("--label-layer", help="layer of a multi-layer --labels file")
    b.add_argument("--label-raster", metavar="FILE", help="GeoTIFF of class ids")
    b.add_argument("--classes", help="class names in id order, comma separated")
    b.add_argument(
        "--multilabel",
        action="store_true",
        help="multi-label chips from --labels polygons or --label-raster: every class "
        "covering at least --min-class-fraction of a chip (a 'labels' column)",
    )
    b.add_argument(
        "--min-class-fraction",
        type=float,
        metavar="F",
        help="multi-label: least fraction of a chip a class covers (default 0.1; implies "
        "--multilabel)",
    )
    b.add_argument(
        "--label-files",
        nargs="?",
        const="*_labels_metadata.json",
        metavar="PATTERN",
        help="multi-label chips from per-patch JSON label files ({\"labels\": [names]}) in "
        "the folders of the reference modality's files (default pattern "
        "*_labels_metadata.json: BigEarthNet)",
    )
    b.add_argument(
        "--label-nomenclature",
        choices=("43", "19"),
        help="CORINE labels of --label-files: the 43 classes as stored (default) or "
        "BigEarthNet's 19-class nomenclature",
    )
    b.add_argument("--split", help="train,val,test fractions (default 0.7,0.15,0.15)")
    b.add_argument("--block-size", help="side of the spatial split blocks (default 4 chips)")
    b.add_argument("--seed", type=int, help="seed of the block split (default 0)")
    b.add_argument(
        "--guard",
        choices=("chips", "edges"),
        help="guard band keeping the splits apart (default chips): 'chips' drops every chip "
        "touching a chip of another split from the split with the larger fraction; 'edges' "
        "lays the band along the edges where blocks of different splits meet, shared by "
        "both sides (keeps more chips when the stride is below the chip size); either way "
        "no chip of one split touches a chip of another",
    )
    b.add_argument("--max-nodata", type=float, help="drop chips missing more (default 0.1)")
    b.add_argument("--cloud-layer", metavar="DIR", help="folder of S2 SCL / QA60 / mask GeoTIFFs")
    b.add_argument("--cloud-kind", choices=("scl", "qa60", "mask"), help="default scl")
    b.add_argument(
        "--max-cloud",
        type=float,
        help="drop chips more cloudy than this (where S2 is --optional: S2 is absent there)",
    )
    b.add_argument(
        "--min-modalities",
        type=int,
        metavar="K",
        help="drop chips covered by fewer than K modalities (default: no limit)",
    )
    b.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes reading chips (default: the CPUs available to this process); "
        "the manifest is the same for any number",
    )
    b.add_argument("--out", required=True, help="output chip index (.parquet)")
    b.add_argument("--map", help="also write a PNG map of the chips coloured by split")
    b.add_argument("--overwrite", action="store_true", help="replace existing --out / --map")


def _spec_from_args(a: argparse.Namespace) -> Any:
    from dataclasses import replace

    from rsmm.stacks.offsets import parse_offsets
    from rsmm.stacks.spec import (
        CloudSpec,
        LabelSpec,
        ModalitySpec,
        StackSpec,
        check_optional,
        load_spec,
        parse_fractions,
        parse_length,
    )

    spec = load_spec(a.spec) if a.spec else None
    mods = dict(spec.modalities) if spec else {}
    for m in ("s1", "s2", "naip"):
        bands = getattr(a, f"{m}_bands")
        kw: dict[str, Any] = {}
        if bands:
            kw["bands"] = tuple(x.strip() for x in bands.split(","))
        if m == "s1" and a.s1_units:
            kw["units"] = a.s1_units
        if m == "s2" and a.s2_offset:
            offset, offsets = parse_offsets(a.s2_offset, "--s2-offset")
            if offset is not None:
                kw["offset"] = offset
            if offsets:  # added to (and overriding) the stack YAML's
                kw["offsets"] = {**((mods["s2"].offsets or {}) if "s2" in mods else {}), **offsets}
        if getattr(a, f"{m}_glob"):
            kw["glob"] = getattr(a, f"{m}_glob")
        if m == "naip" and a.naip_gsd:
            kw["gsd"] = a.naip_gsd
        if getattr(a, m):
            mods[m] = ModalitySpec(key=m, root=getattr(a, m), **kw)
        elif m in mods and kw:
            mods[m] = replace(mods[m], **kw)
    if not mods:
        raise ConfigError("give the modality folders (--s1/--s2/--naip) or --spec stack.yaml")
    for m in check_optional(a.optional or (), mods, "--optional"):
        mods[m] = replace(mods[m], required=False)
    fields: dict[str, Any] = {"modalities": mods}
    if a.chip_size:
        fields["chip_size"] = parse_length(a.chip_size, "--chip-size")
    if a.stride:
        fields["stride"] = parse_length(a.stride, "--stride")
    if a.block_size:
        fields["block_size"] = parse_length(a.block_size, "--block-size")
    if a.split:
        fields["split"] = parse_fractions(a.split)
    for name in ("crs", "max_days", "seed", "max_nodata", "max_cloud", "guard", "min_modalities"):
        if getattr(a, name) is not None:
            fields[name] = getattr(a, name)
    classes = tuple(c.strip() for c in a.classes.split(",")) if a.classes else None
    given = [f for f in ("labels", "label_raster", "label_files") if getattr(a, f)]
    if len(given) > 1:
        names = " and ".join("--" + f.replace("_", "-") for f in given)
        raise ConfigError(f"give one of --labels, --label-raster and --label-files, not {names}")
    if a.label_nomenclature and not a.label_files:
        raise ConfigError("--label-nomenclature applies to --label-files only")
    multi: dict[str, Any] = {}
    if a.multilabel or a.min_class_fraction is not None:
        multi["multilabel"] = True
    if a.min_class_fraction is not None:
        multi["min_class_fraction"] = a.min_class_fraction
    if a.labels:
        fields["labels"] = LabelSpec(a.labels, a.label_column, a.label_layer, classes, **multi)
    elif a.label_raster:
        fields["labels"] = LabelSpec(a.label_raster, classes=classes, **multi)
    elif a.label_files:
        fields["labels"] = LabelSpec(
            a.label_files, classes=classes, per_patch=True, nomenclature=a.label_nomenclature
        )
    elif multi and spec is not None and spec.labels is not None:
        fields["labels"] = replace(spec.labels, **multi)
    elif multi:
        raise ConfigError("--multilabel / --min-class-fraction need --labels or --label-raster")
    if a.cloud_layer:
        fields["cloud"] = CloudSpec(a.cloud_layer, a.cloud_kind or "scl")
    return replace(spec, **fields) if spec is not None else StackSpec(**fields)


def _build(a: argparse.Namespace) -> int:
    from rsmm.atomic import commit
    from rsmm.stacks import build_manifest, write_manifest
    from rsmm.stacks.manifest import check_output_path, render_figure
    from rsmm.stacks.parallel import ProgressBar, available_cpus, check_workers

    outputs = {"--out": a.out, "--map": a.map}
    for option, path in outputs.items():
        if path is None:
            continue
        check_output_path(path, option)
        if Path(path).exists() and not a.overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    workers = check_workers(available_cpus() if a.workers is None else a.workers)
    spec = _spec_from_args(a)
    with ProgressBar("Indexing chips") as bar:
        manifest = build_manifest(spec, bar, workers=workers)
    # both outputs are rendered before either is moved into place
    figure = None
    if a.map:
        figure = render_figure(manifest.plot_map(manifest.extra.get("footprints")), a.map)
    try:
        write_manifest(manifest, a.out)
        if figure is not None:
            commit(figure, a.map)
    finally:
        if figure is not None:
            figure.unlink(missing_ok=True)
    print(manifest.summary())
    print(f"wrote {a.out}")
    if figure is not None:
        print(f"wrote {a.map}")
    return 0


def _add_shard_parser(sub: Any) -> None:
    s = sub.add_parser(
        "shard",
        help="write the chips of a chip manifest as LitData shards for streaming",
        description="Read every chip of a chip manifest once (every modality at its own "
        "GSD, labels, meta, band statistics) and write it with LitData into <out>/<split>/ "
        "for rsmm.datamodules.streaming.ShardDataModule. Example: rsmm manifest shard "
        "chips.parquet --out shards/ --split train --chunk-bytes 256MB",
    )
    s.add_argument("manifest", help="chip manifest (.parquet) of rsmm manifest build")
    s.add_argument("--out", required=True, help="folder of the split folders")
    s.add_argument("--split", choices=("train", "val", "test"), help="default: every split")
    s.add_argument("--chunk-bytes", default="256MB", help="chunk size (default 256MB)")
    s.add_argument("--workers", type=int, default=1, help="processes reading chips")
    s.add_argument("--modalities", help="modalities to write, comma separated (default all)")
    s.add_argument(
        "--dtypes",
        choices=("float32", "source"),
        default="float32",
        help="float32 (default: rsmm's samples, the fastest to read) or source (each "
        "modality in its files' dtype, S2 uint16 / NAIP uint8: 0.57x / 0.26x the bytes, "
        "for object stores; converted to float32 while batches are collated)",
    )


def _shard(a: argparse.Namespace) -> int:
    from rsmm.datasets.shards import shard_manifest

    if a.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {a.workers}")
    modalities = a.modalities.split(",") if a.modalities else None
    written = shard_manifest(
        a.manifest, a.out, a.split, a.chunk_bytes, a.workers, modalities, a.dtypes
    )
    for split, n in written.items():
        print(f"wrote {n} {split} chips to {Path(a.out) / split}")
    return 0


def main(argv: Sequence[str]) -> int:
    """Run ``rsmm manifest build|stats|shard``."""
    import json

    p = OptionParser(prog="rsmm manifest", description="Dataset manifests.")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("stats", help="recompute per-band mean/std of a dataset from its root")
    s.add_argument(
        "dataset", help="a benchmark dataset's name: meterml, eurosat ... (rsmm.datasets.DATASETS)"
    )
    s.add_argument("root", help="dataset root directory")
    s.add_argument("--split", default="train")
    s.add_argument("--max-samples", type=int, default=None, help="use at most this many samples")
    s.add_argument("--out", help="write an updated manifest JSON here (default: print the stats)")
    _add_build_parser(sub)
    _add_shard_parser(sub)
    a = p.parse_args(argv)
    if a.action == "build":
        return _build(a)
    if a.action == "shard":
        return _shard(a)

    from rsmm.atomic import write_text
    from rsmm.datasets import dataset_class
    from rsmm.manifests import compute_band_stats, load_manifest

    # checked here, not by argparse: listing the names would import torch for --help
    dataset = dataset_class(a.dataset)(a.root, split=a.split)
    n = len(dataset) if a.max_samples is None else min(a.max_samples, len(dataset))
    try:
        stats = compute_band_stats((dataset[i] for i in range(n)), dataset.bands)
    except DatasetFileError as err:  # name the data the numbers come from
        raise DatasetFileError(
            f"{a.dataset} under {a.root} (split {a.split!r}, {n} samples): {err}"
        ) from None
    if a.out:
        man = load_manifest(a.dataset).to_dict()
        for m, bs in stats.items():
            man["modalities"][m]["stats"] = {b: list(v) for b, v in bs.items()}
            man["modalities"][m]["stats_source"] = (
                f"rsmm manifest stats on {n} samples of split {a.split!r} of {a.root}"
            )
        write_text(a.out, json.dumps(man, indent=2))
        print(f"wrote {a.out}")
    else:
        print(
            json.dumps(
                {m: {b: list(v) for b, v in bs.items()} for m, bs in stats.items()}, indent=2
            )
        )
    return 0
