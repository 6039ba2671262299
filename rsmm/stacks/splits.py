"""Spatial block splits: train, val and test chips never overlap or touch.

Chips are grouped into square blocks (``block_size`` metres, on a grid anchored at
the chip grid's origin; a chip belongs to the block holding its centre). Blocks are
shuffled with the seed and dealt, in that order, to the split furthest below its
target number of chips. A guard band then drops chips so that no chip comes within a
small tolerance of a chip of another split (no train chip touches a test chip, even
where chip edges computed in floating point miss each other by a rounding error).
Two guard modes (:data:`GUARDS`, ``--guard``):

- ``"chips"`` (the default): every chip that intersects, touches or comes within the
  tolerance of a chip of another split is dropped, from the split with the larger
  target fraction. With overlapping chips (stride below the chip size) that split
  loses a band about one chip wide around every block of another split.
- ``"edges"``: the band is laid along the edges where blocks of different splits
  meet and shared by both sides: a chip reaching into a block of another split is
  dropped, and the split with the larger fraction also keeps off the edge itself.
  It keeps more chips when chips overlap and keeps the splits nearer their target
  fractions; the ``"chips"`` rule still runs after it, so the guarantee is the same.

:func:`split_report` measures what a split kept (chips per split, classes missing
from a split, the guard band's share) and :func:`suggest_block_size` tries other
block sizes on the same chips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsmm.errors import ConfigError

SPLITS = ("train", "val", "test")
#: The guard-band modes (see the module docstring).
GUARDS = ("chips", "edges")
#: Above this share of the chips dropped in the guard band, a build warns.
GUARD_WARN_FRACTION = 1 / 3
_ROW = 1_000_003


def block_ids(centres: np.ndarray, origin: tuple[float, float], block_m: float) -> np.ndarray:
    """Block of each chip centre (``N x 2``): ``row * 1_000_003 + col`` from the top-left."""
    col = np.floor((centres[:, 0] - origin[0]) / block_m).astype(np.int64)
    row = np.floor((origin[1] - centres[:, 1]) / block_m).astype(np.int64)
    return row * _ROW + col


def count_blocks(blocks: np.ndarray, fractions: Sequence[float]) -> tuple[int, int]:
    """``(blocks, splits with a positive fraction)``."""
    return len(np.unique(blocks)), int((np.asarray(fractions) > 0).sum())


def assign_blocks(blocks: np.ndarray, fractions: Sequence[float], seed: int = 0) -> np.ndarray:
    """Split name of every chip, dealing whole blocks (see the module docstring).

    Raises:
        ConfigError: if there are fewer blocks than splits with a positive fraction.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    unique, counts = np.unique(blocks, return_counts=True)
    n_blocks, wanted = count_blocks(blocks, fractions)
    if n_blocks < wanted:
        raise ConfigError(
            f"block_size: only {n_blocks} spatial block(s) for {wanted} splits; use a "
            "smaller --block-size (or a larger area)"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    target = fractions * counts.sum()
    got = np.zeros(len(fractions))
    split_of_block = {}
    for rank, i in enumerate(order):
        deficit = np.where(fractions > 0, target - got, -np.inf)
        # the first blocks go one to each split in need, so that none stays empty
        empty = (got == 0) & (fractions > 0)
        if empty.any() and len(order) - rank <= empty.sum():
            deficit = np.where(empty, deficit + 1e12, -np.inf)
        s = int(np.argmax(deficit))
        split_of_block[unique[i]] = s
        got[s] += counts[i]
    return np.array([SPLITS[split_of_block[b]] for b in blocks], dtype=object)


def _ranks(splits: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Rank of every chip's split: lower = dropped first (larger fraction, then earlier)."""
    order = sorted(range(len(SPLITS)), key=lambda i: (-fractions[i], i))
    rank_of = {SPLITS[i]: r for r, i in enumerate(order)}
    return np.array([rank_of[s] for s in splits], dtype=np.int64)


def guard_band(
    geometries, splits: np.ndarray, fractions: Sequence[float], tolerance: float = 0.0
) -> np.ndarray:
    """Mask of chips to drop so that chips of different splits neither overlap nor touch.

    Of two chips in different splits at most ``tolerance`` apart (intersecting or
    touching at 0), the one in the split with the larger target fraction is dropped
    (ties: the earlier split in train, val, test).

    Args:
        geometries: shapely polygons (array-like) of the chips.
        splits: split name per chip.
        fractions: the target fractions of train, val, test.
        tolerance: distance (CRS units) under which two chips count as touching; a
            millionth of the chip size absorbs floating-point gaps between neighbours.
    """
    import shapely

    geoms = np.asarray(geometries)
    splits = np.asarray(splits)
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="dwithin", distance=tolerance)
    rank = _ranks(splits, fractions)
    foreign = splits[a] != splits[b]
    a, b = a[foreign], b[foreign]
    drop = np.zeros(len(geoms), dtype=bool)
    drop[np.where(rank[a] < rank[b], a, b)] = True
    return drop


def edge_guard(
    bounds: np.ndarray,
    blocks: np.ndarray,
    splits: np.ndarray,
    origin: tuple[float, float],
    block_m: float,
    fractions: Sequence[float],
    tolerance: float = 0.0,
) -> np.ndarray:
    """Mask of chips reaching into a block of another split (the ``"edges"`` guard).

    A chip of the split ranked to lose (larger fraction) is dropped when it comes
    within ``tolerance`` of a block of a winning split; a chip of the winning split
    when it reaches more than ``tolerance`` into a block of a losing split.
    """
    split_of = dict(zip(blocks.tolist(), splits))
    rank = _ranks(splits, fractions)
    rank_of = dict(zip(splits, rank))
    ox, oy = origin
    drop = np.zeros(len(bounds), dtype=bool)
    for i, (xmin, ymin, xmax, ymax) in enumerate(bounds):
        for pad, lose in ((tolerance, True), (-tolerance, False)):
            c0 = int(np.floor((xmin - pad - ox) / block_m))
            c1 = int(np.floor((xmax + pad - ox) / block_m))
            r0 = int(np.floor((oy - ymax - pad) / block_m))
            r1 = int(np.floor((oy - ymin + pad) / block_m))
            for r in range(r0, r1 + 1):
                for c in range(c0, c1 + 1):
                    other = split_of.get(r * _ROW + c)
                    if other is None or other == splits[i]:
                        continue
                    if (rank[i] < rank_of[other]) == lose:
                        drop[i] = True
    return drop


def spatial_split(
    geometries: Any,
    origin: tuple[float, float],
    block_m: float,
    fractions: Sequence[float],
    seed: int = 0,
    tolerance: float = 0.0,
    guard: str = "chips",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block, split and guard-band drop mask of every chip (see the module docstring).

    Args:
        geometries: the chip polygons (array-like).
        origin: top-left corner of the block grid (the chip grid's origin).
        block_m: block side in CRS units.
        fractions: the target fractions of train, val, test.
        seed: the seed shuffling the blocks.
        tolerance: see :func:`guard_band`.
        guard: ``"chips"`` or ``"edges"`` (:data:`GUARDS`).

    Returns:
        ``(block ids, split names, chips to drop)``, one entry per chip.

    Raises:
        ConfigError: for an unknown guard, or fewer blocks than splits.
    """
    import shapely

    if guard not in GUARDS:
        raise ConfigError(f"guard: expected one of {', '.join(GUARDS)}, got {guard!r}")
    geoms = np.asarray(geometries)
    centres = shapely.centroid(geoms)
    blocks = block_ids(
        np.column_stack([shapely.get_x(centres), shapely.get_y(centres)]), origin, block_m
    )
    splits = assign_blocks(blocks, fractions, seed)
    drop = np.zeros(len(geoms), dtype=bool)
    if guard == "edges":
        drop = edge_guard(
            shapely.bounds(geoms), blocks, splits, origin, block_m, fractions, tolerance
        )
    keep = np.flatnonzero(~drop)
    drop[keep[guard_band(geoms[keep], splits[keep], fractions, tolerance)]] = True
    return blocks, splits, drop


@dataclass(frozen=True)
class SplitReport:
    """What a split kept.

    Attributes:
        block_m: the block side.
        guard: the guard mode.
        chips: chips before the guard band.
        guard_dropped: chips dropped in the guard band.
        per_split: ``{split: chips kept}``.
        missing_classes: ``{split: class ids present in the chips but not in it}``,
            for splits with a positive fraction (empty without labels).
    """

    block_m: float
    guard: str
    chips: int
    guard_dropped: int
    per_split: dict[str, int]
    missing_classes: dict[str, list[int]]

    @property
    def guard_fraction(self) -> float:
        """Share of the chips dropped in the guard band."""
        return self.guard_dropped / max(self.chips, 1)

    @property
    def ok(self) -> bool:
        """No split lost a class and the guard band took at most a third of the chips."""
        return not self.missing_classes and self.guard_fraction <= GUARD_WARN_FRACTION


def split_report(
    splits: np.ndarray,
    drop: np.ndarray,
    labels: np.ndarray | None,
    fractions: Sequence[float],
    block_m: float,
    guard: str,
) -> SplitReport:
    """Measure a split (see :class:`SplitReport`); ``labels`` < 0 are unlabelled;
    multi-label: ``(N, classes)`` boolean multi-hot rows."""
    keep = ~np.asarray(drop)
    splits = np.asarray(splits)
    per_split = {s: int((keep & (splits == s)).sum()) for s in SPLITS}
    missing: dict[str, list[int]] = {}
    if labels is not None:
        labels = np.asarray(labels)

        def classes_of(rows: np.ndarray) -> set[int]:
            if labels.ndim == 2:
                return set(np.flatnonzero(labels[rows].any(0)).tolist())
            return set(labels[rows & (labels >= 0)].tolist())

        present = classes_of(np.ones(len(labels), dtype=bool))
        for s, f in zip(SPLITS, fractions):
            if f > 0:
                lost = sorted(present - classes_of(keep & (splits == s)))
                if lost:
                    missing[s] = lost
    return SplitReport(block_m, guard, len(keep), int((~keep).sum()), per_split, missing)


def suggest_block_size(
    geometries: Any,
    origin: tuple[float, float],
    candidates: Sequence[float],
    fractions: Sequence[float],
    labels: np.ndarray | None = None,
    seed: int = 0,
    tolerance: float = 0.0,
    guard: str = "chips",
) -> SplitReport | None:
    """The first of ``candidates`` (block sides) whose split is :attr:`SplitReport.ok`.

    Returns:
        Its report, or ``None`` if none is (or none gives enough blocks).
    """
    for block_m in candidates:
        try:
            _, splits, drop = spatial_split(
                geometries, origin, block_m, fractions, seed, tolerance, guard
            )
        except ConfigError:
            continue
        report = split_report(splits, drop, labels, fractions, block_m, guard)
        if report.ok:
            return report
    return None
