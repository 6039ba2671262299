"""The y-aware contrastive loss (mm_kernel_ntxent) and the metadata kernels."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rsmm.losses import (
    delta_kernel,
    doy_kernel,
    geo_kernel,
    geo_time_kernel,
    kernel_positives,
    label_kernel,
    mm_kernel_ntxent,
    mm_ntxent,
    mm_supcon,
)
from rsmm.losses.kernels import circular_days, haversine_km


def rows(n: int = 5, groups: int = 3, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(n * groups, d, generator=g, dtype=torch.float64), dim=1)
    return z, torch.arange(n).repeat(groups)


def naive(z, ids, w, tau, mask=None) -> float:
    """The equation of the docstring, one anchor and one candidate at a time."""
    k = len(ids)
    mask = [True] * k if mask is None else mask.tolist()
    total, n = 0.0, 0
    for r in range(k):
        if not mask[r]:
            continue
        weight = [
            0.0 if j == r or not mask[j] else (1.0 if ids[j] == ids[r] else float(w[ids[r], ids[j]]))
            for j in range(k)
        ]
        norm = sum(weight)
        if norm == 0:
            continue
        denom = sum(math.exp(float(z[r] @ z[j]) / tau) for j in range(k) if j != r)
        total -= sum(
            weight[j] / norm * (float(z[r] @ z[j]) / tau - math.log(denom))
            for j in range(k)
            if weight[j] > 0
        )
        n += 1
    return total / n


def test_equals_the_naive_double_loop() -> None:
    z, ids = rows()
    g = torch.Generator().manual_seed(1)
    w = torch.rand(5, 5, generator=g, dtype=torch.float64)
    w[1, 3] = 0.0
    got = mm_kernel_ntxent(z, ids, w, tau=0.3)
    assert got.item() == pytest.approx(naive(z, ids, w, 0.3), rel=1e-10)
    mask = torch.ones(15, dtype=torch.bool)
    mask[[2, 7, 12]] = False  # sample 2 is negative-only
    got = mm_kernel_ntxent(z, ids, w, tau=0.3, anchor_mask=mask)
    assert got.item() == pytest.approx(naive(z, ids, w, 0.3, mask), rel=1e-10)


def test_the_diagonal_and_same_sample_rows_weigh_one() -> None:
    ids = torch.tensor([0, 1, 0, 1])
    w = torch.tensor([[0.0, 0.25], [0.5, 0.0]])
    assert kernel_positives(ids, w).tolist() == [
        [1.0, 0.25, 1.0, 0.25],
        [0.5, 1.0, 0.5, 1.0],
        [1.0, 0.25, 1.0, 0.25],
        [0.5, 1.0, 0.5, 1.0],
    ]
    assert kernel_positives(ids, w, torch.tensor([3])).tolist() == [[0.5, 1.0, 0.5, 1.0]]


def test_delta_kernel_is_eq_4_1_and_label_kernel_is_supcon() -> None:
    z, ids = rows(n=6)
    labels = torch.tensor([0, 1, 0, -1, 1, 2])
    mask = (labels != 2).repeat(3)
    anchors = torch.tensor([0, 4, 7, 13])
    for kw in ({}, {"anchor_mask": mask}, {"anchor_rows": anchors}):
        by_id = mm_kernel_ntxent(z, ids, delta_kernel(torch.arange(6), torch.arange(6)), 0.2, **kw)
        torch.testing.assert_close(by_id, mm_ntxent(z, ids, 0.2, **kw), rtol=1e-12, atol=0)
        by_label = mm_kernel_ntxent(z, ids, label_kernel(labels, labels), 0.2, **kw)
        expected = mm_supcon(z, ids, labels[ids], 0.2, **kw)
        torch.testing.assert_close(by_label, expected, rtol=1e-12, atol=0)


def test_a_callable_gives_the_same_loss_as_its_matrix() -> None:
    z, ids = rows()
    lonlat = torch.tensor([[5.0, 45.0], [5.01, 45.0], [5.0, 45.02], [6.0, 45.0], [5.0, 45.005]])

    def geo(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return geo_kernel(lonlat[a], lonlat[b], sigma_km=1.5)

    matrix = geo_kernel(lonlat, lonlat, 1.5)
    torch.testing.assert_close(
        mm_kernel_ntxent(z, ids, geo, 0.5), mm_kernel_ntxent(z, ids, matrix, 0.5)
    )
    # rows of only some samples (ids need not be 0..N-1 with a callable)
    sub = ids[ids != 2]
    zs = z[ids != 2]
    torch.testing.assert_close(
        mm_kernel_ntxent(zs, sub, geo, 0.5), mm_kernel_ntxent(zs, sub, matrix, 0.5)
    )


def test_gradient_is_finite_and_matches_autograd_of_the_naive_form() -> None:
    z, ids = rows()
    z.requires_grad_()
    w = geo_kernel(torch.rand(5, 2, dtype=torch.float64), torch.rand(5, 2, dtype=torch.float64), 50)
    loss = mm_kernel_ntxent(z, ids, w, tau=0.1)
    (grad,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert torch.autograd.gradcheck(lambda x: mm_kernel_ntxent(x, ids, w, tau=0.5), (z,))


def test_bad_weights_are_refused() -> None:
    z, ids = rows()
    with pytest.raises(ValueError, match="non-negative"):
        mm_kernel_ntxent(z, ids, -torch.ones(5, 5), 0.1)
    with pytest.raises(ValueError, match="N x N"):
        mm_kernel_ntxent(z, ids, torch.ones(5), 0.1)
    one_group = z[:5], ids[:5]
    with pytest.raises(ValueError, match="no anchor has a positive"):
        mm_kernel_ntxent(*one_group, torch.zeros(5, 5), 0.1)


# -- the kernels -------------------------------------------------------------------------------


def test_haversine_distances() -> None:
    paris, berlin = [2.3522, 48.8566], [13.4050, 52.5200]
    d = haversine_km(torch.tensor([paris]), torch.tensor([berlin, paris]))
    assert d[0, 0].item() == pytest.approx(877.5, abs=1.0) and d[0, 1].item() == 0.0
    # one degree of latitude, and of longitude on the equator, is 2 pi R / 360
    deg = 2 * math.pi * 6371.0088 / 360
    d = haversine_km(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    torch.testing.assert_close(d[0], torch.tensor([deg, deg], dtype=torch.float64))
    # across the antimeridian
    f64 = {"dtype": torch.float64}
    d = haversine_km(torch.tensor([[179.99, 0.0]], **f64), torch.tensor([[-179.99, 0.0]], **f64))
    assert d.item() == pytest.approx(0.02 * deg, rel=1e-6)


def test_geo_kernel_values() -> None:
    lonlat = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    k = geo_kernel(lonlat, lonlat, sigma_km=111.19508)
    assert k.dtype == torch.float32 and k.shape == (2, 2)
    torch.testing.assert_close(k, torch.tensor([[1.0, math.exp(-0.5)], [math.exp(-0.5), 1.0]]))
    with pytest.raises(ValueError, match="sigma_km must be > 0"):
        geo_kernel(lonlat, lonlat, 0.0)
    with pytest.raises(ValueError, match="N x 2"):
        geo_kernel(lonlat[:, 0], lonlat, 1.0)


def test_doy_kernel_is_circular() -> None:
    days = torch.tensor([1.0, 365.0, 183.0, 31.0 + 365.25 * 10])
    diff = circular_days(days, days)
    assert diff[0, 1].item() == pytest.approx(1.25)  # across new year
    assert diff[0, 2].item() == pytest.approx(182.0)  # at most half a year
    assert (diff <= 365.25 / 2).all()
    assert diff[0, 3].item() == pytest.approx(30.0)  # days since an epoch: 10 years later
    k = doy_kernel(days, days, sigma_days=30.0)
    assert k[0, 3].item() == pytest.approx(math.exp(-0.5), rel=1e-6)
    torch.testing.assert_close(k, k.T)
    assert torch.diagonal(k).tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="sigma_days"):
        doy_kernel(days, days, sigma_days=-1.0)


def test_geo_time_kernel_is_the_product() -> None:
    lonlat = torch.tensor([[5.0, 45.0], [5.01, 45.01], [5.2, 45.0]])
    days = torch.tensor([10.0, 40.0, 360.0])
    torch.testing.assert_close(
        geo_time_kernel(lonlat, lonlat, days, days, 2.0, 30.0),
        geo_kernel(lonlat, lonlat, 2.0) * doy_kernel(days, days, 30.0),
    )


def test_delta_and_label_kernels() -> None:
    assert delta_kernel(torch.tensor([0, 1]), torch.tensor([1, 1, 0])).tolist() == [
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
    ]
    labels = torch.tensor([2, -1, 2, -1])
    assert label_kernel(labels, labels).tolist() == [
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
