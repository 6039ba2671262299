"""The quick-start report: CSV readers, PCA projection and the figure."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from rsmm.report import pca_2d, read_confusion, read_logged, write_report
from rsmm.tasks.metrics import save_confusion


def test_read_logged_skips_rows_without_the_metric(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "step", "train/loss", "val/knn_acc"])
        w.writerows([[0, 4, 2.5, ""], [0, 9, 2.0, ""], [0, 9, "", 0.4], [1, 14, 1.5, ""]])
    steps, values = read_logged(path, "train/loss")
    assert steps.tolist() == [4, 9, 14]
    assert values.tolist() == [2.5, 2.0, 1.5]
    with pytest.raises(KeyError, match="val/loss"):
        read_logged(path, "val/loss")
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_logged(tmp_path / "nope.csv", "train/loss")


def test_read_confusion_round_trips_save_confusion(tmp_path: Path) -> None:
    cm = torch.tensor([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    csv_path, _ = save_confusion(cm, ["water", "forest", "urban"], tmp_path)
    counts, classes = read_confusion(csv_path)
    assert classes == ["water", "forest", "urban"]
    np.testing.assert_array_equal(counts, cm.numpy())


def test_pca_2d_matches_numpy_svd() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) @ np.diag([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    xy = pca_2d(x, standardise=False)
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:2].T
    # same up to the sign of each component
    for k in range(2):
        sign = np.sign(xy[:, k] @ expected[:, k])
        np.testing.assert_allclose(xy[:, k], sign * expected[:, k], atol=1e-9)
    assert xy[:, 0].var() > xy[:, 1].var()
    # standardised: the same as PCA of the z-scored features
    z = centred / x.std(0, ddof=1)
    np.testing.assert_allclose(np.abs(pca_2d(x)), np.abs(pca_2d(z, standardise=False)), atol=1e-9)
    assert pca_2d(rng.normal(size=(5, 1))).shape == (5, 2)


def test_write_report_writes_one_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    out = write_report(
        tmp_path / "report" / "report.png",
        loss=(np.arange(10), np.linspace(3, 1, 10)),
        confusions={"random": (np.eye(3, dtype=int) * 4, ["a", "b", "c"])},
        embeddings={"random": (rng.normal(size=(40, 2)), labels)},
        classes=["a", "b", "c"],
    )
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["report.png"]
