"""User co-registered GeoTIFF stacks: spec, sources, labels, splits, chip manifests.

``rsmm manifest build`` (:func:`build_manifest` + :func:`write_manifest`) turns folders
of Sentinel-1 / Sentinel-2 / NAIP GeoTIFFs into a GeoParquet chip index that
:class:`rsmm.datasets.CoRegisteredStack` reads; :func:`generate_scene` writes a
synthetic scene to try it on.

Modules, in the order a build uses them: :mod:`~rsmm.stacks.spec` (what to build),
:mod:`~rsmm.stacks.files` and :mod:`~rsmm.stacks.sources` (a modality's files, bands
and GSD), :mod:`~rsmm.stacks.zones` (``--crs auto``, the default: every chip in the UTM zone
of its centre, on its file's pixel grid) or :mod:`~rsmm.stacks.crs` (one ``--crs``),
:mod:`~rsmm.stacks.layout` (the chip grid), :mod:`~rsmm.stacks.acquisitions`,
:mod:`~rsmm.stacks.windows`, :mod:`~rsmm.stacks.clouds` and :mod:`~rsmm.stacks.chips`
(per-chip reads), :mod:`~rsmm.stacks.labels`, :mod:`~rsmm.stacks.splits`,
:mod:`~rsmm.stacks.stats`, :mod:`~rsmm.stacks.manifest` (the written index);
:mod:`~rsmm.stacks.build` runs these steps. :mod:`~rsmm.stacks.scene` and
:mod:`~rsmm.stacks.ground` make the synthetic scene.
"""

from rsmm.stacks.build import build_manifest
from rsmm.stacks.crs import common_crs
from rsmm.stacks.manifest import ChipManifest, read_manifest, save_figure, write_manifest
from rsmm.stacks.scene import Scene, generate_scene
from rsmm.stacks.sources import ModalitySource, make_raster_dataset
from rsmm.stacks.spec import (
    CloudSpec,
    LabelSpec,
    ModalitySpec,
    StackSpec,
    load_spec,
    parse_length,
    spec_from_dirs,
)
from rsmm.stacks.windows import read_window

__all__ = [
    "ChipManifest",
    "CloudSpec",
    "LabelSpec",
    "ModalitySource",
    "ModalitySpec",
    "Scene",
    "StackSpec",
    "build_manifest",
    "common_crs",
    "generate_scene",
    "load_spec",
    "make_raster_dataset",
    "parse_length",
    "read_manifest",
    "read_window",
    "save_figure",
    "spec_from_dirs",
    "write_manifest",
]
