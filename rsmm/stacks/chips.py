"""Per-chip reads: the acquisitions chosen, each modality read, nodata and cloud checks.

For every laid-out chip (:class:`ChipReader`), one acquisition per modality is chosen
(:func:`~rsmm.stacks.acquisitions.choose_acquisitions`), the chip is read at each
modality's GSD, and the chip is dropped if a required modality misses more than
``max_nodata`` of its pixels or the cloud fraction exceeds ``max_cloud`` (chips
outside the cloud layer keep a NaN cloud fraction and are kept; where Sentinel-2 is
optional, a cloudier chip is kept without it), or it is covered by fewer than
``min_modalities`` modalities. An optional modality
covers the chip when it misses at most ``max_nodata``; the ``modalities`` column lists
the modalities covering each chip. A label raster is read here too (its majority
class per chip), and vector labels label every kept chip here
(:class:`~rsmm.stacks.vector_labels.VectorLabels`: in the worker processes of a
parallel build); the band sums of every kept chip feed the statistics.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.crs import CRS

from rsmm.errors import ConfigError
from rsmm.stacks.acquisitions import Acquisition, acquisitions, choose_acquisitions
from rsmm.stacks.clouds import CloudLayer
from rsmm.stacks.crs import gsd_in_crs
from rsmm.stacks.files import band_path
from rsmm.stacks.labels import raster_labels
from rsmm.stacks.layout import ChipGrid, ChipLayout
from rsmm.stacks.parallel import read_chips
from rsmm.stacks.sources import ModalitySource
from rsmm.stacks.spec import StackSpec
from rsmm.stacks.stats import band_sums
from rsmm.stacks.vector_labels import VectorLabels
from rsmm.stacks.windows import read_window


@dataclass
class ChipReads:
    """What the reads kept: one manifest row and one band-sum record per kept chip.

    Attributes:
        rows: ``{column: value}`` per kept chip (``chip_id``, ``geometry``,
            ``nodata_<k>``, ``files_<k>``, ``date_<k>``, ``cloud_fraction``, ``label``
            of a label raster, ``modalities``).
        sums: per kept chip, ``{modality: band_sums(...)}`` of the modalities covering it.
        dropped: ``{reason: chips dropped}``.
        split: what the split kept (the manifest's ``split_report``, set by
            :func:`~rsmm.stacks.build.split_chips`).
        warnings: what a user should know about the chips (a split without a class,
            a large guard band), printed with the summary.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    sums: list[dict[str, np.ndarray]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    split: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def no_chip_left(dropped: Counter[str], spec: StackSpec) -> str:
    """The message for a build whose filters dropped every chip."""
    return (
        f"no chip left after filtering: all {sum(dropped.values())} chips dropped: "
        + ", ".join(f"{n} {r}" for r, n in dropped.most_common())
        + f" (the limits: --max-nodata {spec.max_nodata:g}"
        + ("" if spec.max_cloud is None else f", --max-cloud {spec.max_cloud:g}")
        + ("" if spec.max_days is None else f", --max-days {spec.max_days:g}")
        + ")"
    )


class ChipReader:
    """Reads the chips of one stack (see the module docstring).

    Args:
        spec: the stack description.
        sources: the checked files of every modality.
        index: ``{modality: footprint index}`` in ``crs``
            (:func:`~rsmm.stacks.acquisitions.footprint_index`).
        crs: the stack's CRS.
        grid: chip sizes and the reference modality.
        required: the required modalities (the others are optional).
        cloud_files: the cloud layer's checked files (if ``spec.cloud``).

    Raises:
        ConfigError: with ``max_days``, for a timed modality whose file names carry no date.
    """

    def __init__(
        self,
        spec: StackSpec,
        sources: Mapping[str, ModalitySource],
        index: Mapping[str, Any],
        crs: CRS,
        grid: ChipGrid,
        required: Sequence[str],
        cloud_files: Sequence[str] = (),
    ) -> None:
        self.spec, self.sources, self.index, self.crs, self.grid = spec, sources, index, crs, grid
        self.keys = list(sources)
        self.required = list(required)
        self.optional = [k for k in self.keys if k not in required]
        self.timed = [k for k in self.keys if spec.modalities[k].use_time]
        if spec.max_days is not None:
            self.timed.sort(key=lambda k: k != grid.reference)
            for k in self.timed:
                if not sources[k].dated:
                    raise ConfigError(
                        f"max_days: the {k} file names under {spec.modalities[k].root} carry "
                        "no YYYYMMDD date; drop --max-days or rename the files"
                    )
        self.cloud = CloudLayer(spec.cloud, cloud_files, crs) if spec.cloud is not None else None
        #: ``(path, chip side in its pixels, min_cover)`` of a label raster
        self.label_raster: tuple[str, int, float] | None = None
        if spec.labels is not None and spec.labels.is_raster:
            # its GSD in metres of the stack CRS, also for a raster in degrees (WorldCover)
            lgsd = gsd_in_crs(spec.labels.path, crs)
            n = max(1, round(grid.chip_m / lgsd))
            self.label_raster = (spec.labels.path, n, spec.labels.min_cover)
        #: vector labels (not per-patch label files), in ``crs``, labelling each kept chip
        self.labeller: VectorLabels | None = None
        lab = spec.labels
        if lab is not None and not lab.is_raster and not lab.per_patch:
            self.labeller = VectorLabels.load(lab, crs.to_string())

    def read_all(
        self,
        layout: ChipLayout,
        progress: Callable[[int, int], None] | None = None,
        require: bool = True,
        workers: int = 1,
    ) -> ChipReads:
        """Read every chip of ``layout``, in ``workers`` processes
        (:func:`~rsmm.stacks.parallel.read_chips`: the same result, in the same order,
        as one); ``progress(done, total)`` first with 0, then after each chip.

        Raises:
            ConfigError: if no chip is left (with ``require``), naming how many each
                reason dropped.
        """
        out = ChipReads()
        for result in read_chips(self, layout.chip_ids(), layout.boxes, workers, progress):
            if isinstance(result, str):
                out.dropped[result] += 1
                continue
            out.rows.append(result[0])
            out.sums.append(result[1])
        if require and not out.rows:
            raise ConfigError(no_chip_left(out.dropped, self.spec))
        return out

    def choose(self, chip: Any) -> dict[str, Acquisition] | None:
        """The acquisition read per modality over the polygon ``chip`` (``None``: no
        time-compatible choice for the required ones)."""
        options = {k: acquisitions(self.index[k], chip) for k in self.keys}
        for k in self.optional:  # files that only touch the chip do not cover it
            options[k] = [a for a in options[k] if a[2] > 0]
        return choose_acquisitions(options, self.timed, self.spec.max_days, self.required)

    def read(self, chip_id: str, chip: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]] | str:
        """The manifest row and band sums of one chip, or why it is dropped."""
        spec = self.spec
        chosen = self.choose(chip)
        if chosen is None:
            timed_req = "/".join(k for k in self.timed if k in self.required)
            return f"no {timed_req} acquisitions within {spec.max_days:g} days"
        row: dict[str, Any] = {"chip_id": chip_id, "geometry": chip}
        sums, reason, covered = {}, None, []
        for k in self.keys:
            s = self.sources[k]
            row[f"nodata_{k}"], row[f"files_{k}"] = float("nan"), "[]"
            if s.dated:
                row[f"date_{k}"] = None
            if k not in chosen:  # an optional modality with no file over the chip
                continue
            date, paths, _ = chosen[k]
            arr = self.read_modality(k, paths, chip)
            frac = float(np.isnan(arr).any(0).mean())
            row[f"nodata_{k}"] = frac
            if frac > spec.max_nodata:
                if k in self.required and reason is None:
                    reason = f"more than {spec.max_nodata:.0%} nodata in {k}"
                continue
            covered.append(k)
            row[f"files_{k}"] = json.dumps(paths)
            if s.dated:
                row[f"date_{k}"] = date.date().isoformat()
            sums[k] = band_sums(arr)
        if reason is not None:
            return reason
        if self.cloud is not None:
            s2 = self.optional_s2(covered)  # the clouds are those of its acquisition
            row["cloud_fraction"] = self.cloud.fraction(
                chip, self.grid.chip_m, self.crs, chosen[s2 or self.grid.reference][0]
            )
            # NaN: outside the cloud layer; kept (and counted in the summary)
            if spec.max_cloud is not None and row["cloud_fraction"] > spec.max_cloud:
                if s2 is None:
                    return f"more than {spec.max_cloud:.0%} cloud"
                covered.remove(s2)  # an optional S2 is absent on a cloudy chip
                row[f"files_{s2}"] = "[]"
                if self.sources[s2].dated:
                    row[f"date_{s2}"] = None
                sums.pop(s2, None)
        if spec.min_modalities is not None and len(covered) < spec.min_modalities:
            return f"covered by fewer than {spec.min_modalities} modalities"
        if self.label_raster is not None:
            path, n, _ = self.label_raster
            v = read_window([path], chip.bounds, n, self.crs)[0]
            row.update(raster_labels(v, spec.labels))
        elif self.labeller is not None:
            row.update(self.labeller.chip_entries(chip, spec.labels))
        row["modalities"] = ",".join(covered)
        return row, sums

    def optional_s2(self, covered: Sequence[str]) -> str | None:
        """The optional Sentinel-2 modality among ``covered`` (made absent instead of
        dropping a chip cloudier than ``max_cloud``), or ``None``."""
        for k in covered:
            if k in self.optional and (self.spec.modalities[k].sensor or k) == "s2":
                return k
        return None

    def read_modality(self, k: str, paths: Sequence[str], chip: Any) -> np.ndarray:
        """Modality ``k``'s ``C x n x n`` pixels of the polygon ``chip`` from ``paths``
        (one acquisition; per-band files expanded), NaN where missing."""
        s = self.sources[k]
        entries: list[str] | list[list[str]] = list(paths)
        if s.separate_files:
            entries = [[band_path(p, b) for b in s.bands] for p in paths]
        return read_window(
            entries,
            chip.bounds,
            self.grid.pixels[k],
            self.crs,
            s.spec.nodata,
            s.spec.resampling,
            indexes=s.band_indexes,
            shifts=[s.shift(p) for p in paths],
        )
