"""The cloud fraction of a chip, from a cloud or scene-classification layer.

The layer (:class:`~rsmm.stacks.spec.CloudSpec`) is a Sentinel-2 SCL raster (cloud
shadow, medium/high-probability cloud and cirrus count as cloud; 0 is nodata), an L1C
QA60 bit mask (bits 10 and 11) or any 0/1 mask. A chip is read from the layer's file
nearest in time to the chip's reference acquisition, at the layer's own GSD; a chip
outside the layer gets NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS

from rsmm.stacks.acquisitions import acquisitions
from rsmm.stacks.crs import gsd_in_crs
from rsmm.stacks.files import parse_date
from rsmm.stacks.spec import SCL_CLOUD_VALUES, CloudSpec
from rsmm.stacks.windows import read_window


class CloudLayer:
    """The cloud layer's (checked) files: footprints in the stack CRS, dates, GSD there.

    Args:
        spec: the layer's kind and folder.
        files: the layer's files (already checked).
        crs: the stack's CRS.
    """

    def __init__(self, spec: CloudSpec, files: Sequence[str], crs: CRS) -> None:
        import geopandas as gpd
        import rasterio
        import shapely
        from rasterio.warp import transform_bounds

        geoms = []
        for f in files:
            with rasterio.open(f) as src:
                geoms.append(shapely.box(*transform_bounds(src.crs, crs, *src.bounds)))
        # in metres of the stack CRS, also for a layer in degrees (EPSG:4326)
        self.res = gsd_in_crs(files[0], crs)
        self.kind = spec.kind
        self.index = gpd.GeoDataFrame(
            {"path": list(files), "date": [parse_date(Path(f).name) for f in files]},
            geometry=geoms,
            crs=crs,
        )

    def fraction(self, chip: Any, chip_m: float, crs: CRS, date: datetime | None) -> float:
        """Cloudy fraction of the valid pixels of the polygon ``chip`` (NaN: none valid).

        Args:
            chip: the chip polygon in ``crs``.
            chip_m: the chip side in metres.
            crs: the stack's CRS.
            date: the chip's reference acquisition date; the nearest layer file is read.
        """
        acqs = acquisitions(self.index, chip)
        if date is not None:
            acqs.sort(key=lambda a: abs((a[0] - date).days) if a[0] else 1e9)
        if not acqs:
            return float("nan")
        n = max(1, round(chip_m / self.res))
        v = read_window(acqs[0][1], chip.bounds, n, crs, resampling="nearest")[0]
        valid = np.isfinite(v)
        if self.kind == "scl":
            valid &= v != 0
            cloudy = np.isin(v, SCL_CLOUD_VALUES)
        elif self.kind == "qa60":
            cloudy = (np.nan_to_num(v).astype(np.int64) & (1 << 10 | 1 << 11)) != 0
        else:
            cloudy = np.nan_to_num(v) != 0
        return float((cloudy & valid).sum() / valid.sum()) if valid.any() else float("nan")
