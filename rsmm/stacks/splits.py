"""Spatial block splits: train, val and test chips never overlap or touch.

Chips are grouped into square blocks (``block_size`` metres, on a grid anchored at
the chip grid's origin; a chip belongs to the block holding its centre). Blocks are
shuffled with the seed and dealt, in that order, to the split furthest below its
target number of chips. Then every chip that intersects, touches or comes within a
small tolerance of a chip of another split is dropped (a guard band), from the split
with the larger target fraction, so that no train chip touches a test chip, even where
chip edges computed in floating point miss each other by a rounding error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rsmm.errors import ConfigError

SPLITS = ("train", "val", "test")


def block_ids(centres: np.ndarray, origin: tuple[float, float], block_m: float) -> np.ndarray:
    """Block of each chip centre (``N x 2``): ``row * 1_000_003 + col`` from the top-left."""
    col = np.floor((centres[:, 0] - origin[0]) / block_m).astype(np.int64)
    row = np.floor((origin[1] - centres[:, 1]) / block_m).astype(np.int64)
    return row * 1_000_003 + col


def assign_blocks(blocks: np.ndarray, fractions: Sequence[float], seed: int = 0) -> np.ndarray:
    """Split name of every chip, dealing whole blocks (see the module docstring).

    Raises:
        ValueError: if there are fewer blocks than splits with a positive fraction.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    unique, counts = np.unique(blocks, return_counts=True)
    wanted = int((fractions > 0).sum())
    if len(unique) < wanted:
        raise ConfigError(
            f"block_size: only {len(unique)} spatial block(s) for {wanted} splits; use a "
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
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="dwithin", distance=tolerance)
    rank = {s: (-f, i) for i, (s, f) in enumerate(zip(SPLITS, fractions))}
    drop = np.zeros(len(geoms), dtype=bool)
    for i, j in zip(a, b):
        if splits[i] != splits[j]:
            loser = i if rank[splits[i]] < rank[splits[j]] else j
            drop[loser] = True
    return drop


def spatial_split(
    geometries: Any,
    origin: tuple[float, float],
    block_m: float,
    fractions: Sequence[float],
    seed: int = 0,
    tolerance: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block, split and guard-band drop mask of every chip (see the module docstring).

    Args:
        geometries: the chip polygons (array-like).
        origin: top-left corner of the block grid (the chip grid's origin).
        block_m: block side in CRS units.
        fractions: the target fractions of train, val, test.
        seed: the seed shuffling the blocks.
        tolerance: see :func:`guard_band`.

    Returns:
        ``(block ids, split names, chips to drop)``, one entry per chip.
    """
    import shapely

    geoms = np.asarray(geometries)
    centres = shapely.centroid(geoms)
    blocks = block_ids(
        np.column_stack([shapely.get_x(centres), shapely.get_y(centres)]), origin, block_m
    )
    splits = assign_blocks(blocks, fractions, seed)
    return blocks, splits, guard_band(geoms, splits, fractions, tolerance=tolerance)
