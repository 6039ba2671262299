"""Which files cover a chip, and which acquisition of each modality a chip is read from.

Every modality's files are indexed by footprint in the stack's CRS
(:func:`footprint_index`, through torchgeo). Over one chip, the files of the same date
form one acquisition (:func:`acquisitions`), ranked by the fraction of the chip they
cover, then by recency. :func:`choose_acquisitions` takes the best one per modality;
with ``max_days``, the time-matched modalities (Sentinel-1/-2) must be at most that
many days apart: the reference modality's acquisitions are tried best first, each with
the best covering acquisition of every other timed modality near enough in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rasterio.crs import CRS

from rsmm.stacks.sources import ModalitySource, make_raster_dataset

if TYPE_CHECKING:
    import geopandas as gpd

#: One acquisition over a chip: ``(date or None, file paths, covered fraction of the chip)``.
Acquisition = tuple[datetime | None, list[str], float]


def footprint_index(source: ModalitySource, crs: CRS) -> gpd.GeoDataFrame:
    """GeoDataFrame of the source's items (path, date, geometry) in ``crs`` (via torchgeo).

    Files that torchgeo does not index are added to ``source.ignored``.
    """
    import geopandas as gpd

    ds = make_raster_dataset(source, crs)
    first = source.bands[0] if source.separate_files else ""
    by_path = {item.band_path(first): item for item in source.items}
    items = [by_path[p] for p in ds.index["filepath"]]
    for p in sorted(set(by_path) - set(ds.index["filepath"])):
        source.ignored.append((p, "not indexed by torchgeo"))
    return gpd.GeoDataFrame(
        {"path": [i.path for i in items], "date": [i.date for i in items]},
        geometry=ds.index.geometry.values,
        crs=ds.index.crs,
    )


def acquisitions(index: gpd.GeoDataFrame, chip: Any) -> list[Acquisition]:
    """The acquisitions of ``index`` over the polygon ``chip``, best covering first.

    Ties in coverage go to the more recent date.
    """
    import shapely

    hits = index.sindex.query(chip, predicate="intersects")
    groups: dict[Any, list[int]] = {}
    for h in hits:
        groups.setdefault(index["date"].iat[h], []).append(int(h))
    out = []
    for date, rows in groups.items():
        cover = shapely.union_all(index.geometry.values[rows]).intersection(chip).area / chip.area
        out.append((date, [index["path"].iat[r] for r in rows], float(cover)))
    out.sort(key=lambda a: (-round(a[2], 6), -(a[0].timestamp() if a[0] else 0)))
    return out


def nearest(options: Sequence[Acquisition], date: datetime, max_days: float) -> Acquisition | None:
    """The best covering acquisition of ``options`` at most ``max_days`` from ``date``."""
    near = [a for a in options if abs((a[0] - date).days) <= max_days]
    if not near:
        return None
    return min(near, key=lambda a: (-round(a[2], 6), abs((a[0] - date).days)))


def choose_acquisitions(
    options: dict[str, list[Acquisition]],
    timed: Sequence[str],
    max_days: float | None,
    required: Sequence[str] | None = None,
) -> dict[str, Acquisition] | None:
    """One acquisition per modality; ``None`` when no time-compatible choice exists.

    Args:
        options: ``{modality: acquisitions}`` from :func:`acquisitions`, best first.
        timed: the modalities ``max_days`` applies to (the reference first).
        max_days: tolerance between timed acquisitions, or ``None``.
        required: modalities that must be chosen (default: all); an optional one
            without a (time-compatible) acquisition is left out of the result.
    """
    required = list(options) if required is None else required
    chosen = {k: options[k][0] for k in required if options[k]}
    if len(chosen) < len(required):
        return None
    timed_req = [k for k in timed if k in required]
    anchor = None
    if max_days is not None and len(timed_req) >= 2:
        ref, others = timed_req[0], timed_req[1:]
        for acq in options[ref]:
            picks = {ref: acq}
            for k in others:
                pick = nearest(options[k], acq[0], max_days)
                if pick is None:
                    break
                picks[k] = pick
            else:
                chosen.update(picks)
                anchor = acq[0]
                break
        else:
            return None
    elif max_days is not None and timed_req:
        anchor = chosen[timed_req[0]][0]
    for k in options:
        if k in required or not options[k]:
            continue
        if anchor is not None and k in timed:
            pick = nearest(options[k], anchor, max_days)  # type: ignore[arg-type]
            if pick is not None:
                chosen[k] = pick
        else:
            chosen[k] = options[k][0]
    return chosen
