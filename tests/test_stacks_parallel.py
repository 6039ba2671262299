"""Parallel chip indexing (``rsmm manifest build --workers N``, issue 22): the same
manifest, row for row and bit for bit, as one worker; progress; the option's errors."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rsmm.cli import main
from rsmm.errors import ConfigError
from rsmm.stacks import build_manifest, spec_from_dirs
from rsmm.stacks.parallel import (
    BAR_FORMAT,
    WORKER_GDAL_CACHE_MB,
    ProgressBar,
    available_cpus,
    batch_size,
    check_workers,
    read_chips,
)
from rsmm.stacks.spec import CloudSpec, LabelSpec

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"


def _table_and_meta(path: Path) -> tuple[pa.Table, dict[bytes, object]]:
    """The table without its metadata, and the metadata (the ``rsmm`` JSON parsed, less
    its creation time)."""
    table = pq.read_table(path)
    meta: dict[bytes, object] = dict(table.schema.metadata)
    meta[b"rsmm"] = json.loads(meta[b"rsmm"])
    meta[b"rsmm"].pop("created")  # type: ignore[attr-defined]
    return table.replace_schema_metadata(None), meta


def _cli_build(tmp_path: Path, workers: int, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / f"chips_{workers}.parquet"
    args = ["manifest", "build", "--chip-size", "160m", "--workers", str(workers)]
    args += ["--s1", str(SCENE / "s1"), "--s2", str(SCENE / "s2"), "--naip", str(SCENE / "naip")]
    args += ["--labels", str(SCENE / "labels.gpkg"), "--label-column", "landcover"]
    args += ["--label-layer", "fields", "--cloud-layer", str(SCENE / "s2_scl")]
    args += ["--optional", "naip", "--block-size", "320m", "--max-cloud", "0.5"]
    args += ["--out", str(out)]
    rc = main(args)
    _, err = capsys.readouterr()
    assert rc == 0, err
    return out


def test_two_workers_write_the_same_geoparquet_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--crs auto (the default) over S1 + S2 + optional NAIP with labels and a cloud
    filter (the committed generated scene: 28 candidate chips, 16 kept)."""
    one, two = _cli_build(tmp_path, 1, capsys), _cli_build(tmp_path, 2, capsys)
    (t1, m1), (t2, m2) = _table_and_meta(one), _table_and_meta(two)
    assert t1.num_rows >= 10 and set(t1.column("split").to_pylist()) == {"train", "val", "test"}
    assert t1.equals(t2)  # every row, column and value, geometry included
    assert m1 == m2  # geo metadata, statistics, split report, dropped counts


def test_one_crs_build_with_label_raster_is_bit_identical(tmp_path: Path) -> None:
    """The one-CRS path: rows, splits, labels and the float statistics, exactly."""
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1"},
        chip_size="160m",
        crs="EPSG:32618",
        labels=LabelSpec(str(SCENE / "labels.tif")),
        cloud=CloudSpec(str(SCENE / "s2_scl")),
    )
    a, b = build_manifest(spec), build_manifest(spec, workers=2)
    assert len(a.chips) > 20
    assert a.chips.drop(columns="geometry").equals(b.chips.drop(columns="geometry"))
    assert np.array_equal(a.chips.geometry.values, b.chips.geometry.values)
    for k, bands in a.meta["stats"].items():
        for band, (mean, std) in bands.items():
            assert b.meta["stats"][k][band] == [mean, std]  # bit-identical floats
    assert {k: v for k, v in a.meta.items() if k != "created"} == {
        k: v for k, v in b.meta.items() if k != "created"
    }


def test_progress_counts_every_candidate_chip() -> None:
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1"}, chip_size="160m", split=(1.0, 0.0, 0.0)
    )
    calls: list[tuple[int, int]] = []
    m = build_manifest(spec, lambda d, t: calls.append((d, t)), workers=2)
    total = calls[0][1]
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    kept_or_dropped = len(m.chips) + sum(m.meta["dropped"].values())
    assert total == kept_or_dropped and m.meta["dropped"]  # S1's NaN strip drops chips


class _Echo:
    """A reader whose chips are numbers: ``read`` returns the id and the square."""

    def read(self, chip_id: str, chip: int) -> tuple[str, int]:
        if chip < 0:
            raise ConfigError(f"bad chip {chip_id}")
        return chip_id, chip * chip


def test_read_chips_keeps_chip_order_across_batches() -> None:
    ids, boxes = [f"c{i}" for i in range(203)], list(range(203))
    serial = list(read_chips(_Echo(), ids, boxes, workers=1))
    assert serial == [(f"c{i}", i * i) for i in range(203)]
    assert list(read_chips(_Echo(), ids, boxes, workers=3)) == serial
    assert list(read_chips(_Echo(), ids[:1], boxes[:1], workers=4)) == serial[:1]
    assert list(read_chips(_Echo(), [], [], workers=2)) == []


def test_a_worker_error_reaches_the_caller() -> None:
    with pytest.raises(ConfigError, match="bad chip c7"):
        list(read_chips(_Echo(), [f"c{i}" for i in range(10)], [1] * 7 + [-1, 1, 1], workers=2))


class _Dies(_Echo):
    """A reader whose worker process dies (as if killed for memory) at chip ``c5``."""

    def read(self, chip_id: str, chip: int) -> tuple[str, int]:
        if chip_id == "c5":
            os._exit(9)
        return super().read(chip_id, chip)


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(RuntimeError, match=r"worker process died .* of 10 chips.*--workers 1"):
        list(read_chips(_Dies(), [f"c{i}" for i in range(10)], [1] * 10, workers=2))


def test_batches_and_workers() -> None:
    assert batch_size(10, 2) == 1 and batch_size(1000, 2) == 16 and batch_size(80, 2) == 10
    assert available_cpus() >= 1
    assert check_workers(3) == 3
    with pytest.raises(ConfigError, match="--workers must be at least 1, got 0"):
        check_workers(0)


def test_workers_zero_is_a_one_line_cli_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["manifest", "build", "--s2", str(SCENE / "s2"), "--workers", "0"]
    rc = main([*args, "--out", str(tmp_path / "c.parquet")])
    _, err = capsys.readouterr()
    assert rc != 0
    assert "--workers must be at least 1, got 0" in err and "Traceback" not in err
    assert not (tmp_path / "c.parquet").exists()


def test_progress_bar_draws_lightnings_format(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    with ProgressBar("Indexing chips", disable=False) as bar:
        for done in range(4):
            bar(done, 3)
    text = stream.getvalue()
    assert "Indexing chips" in text and "3/3" in text and "chip/s" in text
    assert "{rate_noinv_fmt}" in BAR_FORMAT
    quiet = io.StringIO()
    monkeypatch.setattr("sys.stderr", quiet)
    off = ProgressBar()  # not a terminal: no bar
    off(0, 3)
    off.close()
    assert quiet.getvalue() == "" and off.bar is None


class _CacheProbe:
    """A reader returning its process's GDAL block cache limit."""

    def read(self, chip_id: str, chip: int) -> object:
        from rasterio.env import get_gdal_config

        return get_gdal_config("GDAL_CACHEMAX")


def test_workers_bound_their_gdal_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    got = set(read_chips(_CacheProbe(), ["a", "b", "c"], [1, 2, 3], workers=2))
    assert got == {WORKER_GDAL_CACHE_MB * 2**20}
