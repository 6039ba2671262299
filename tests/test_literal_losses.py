"""The literal thesis forms of the losses, each against a direct computation of its
equation (naive loops, POT plans, closed forms)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import pytest
import torch
from torch import nn

from rsmm.errors import ConfigError
from rsmm.hyperbolic import LabelTree, gw_assignment, hierarchical_prototypes
from rsmm.losses.ot import (
    DenseContrastiveLoss,
    coot_loss,
    cross_view_infonce,
    dense_contrastive_loss,
    feature_loss,
    gca_rince,
    infonce_alignment,
)
from rsmm.tasks import FinetuneTask, PretrainTask


def _views(seed: int, n: int = 6, d: int = 4, noise: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    zA = torch.randn(n, d, generator=g, dtype=torch.float64)
    return zA, zA + noise * torch.randn(n, d, generator=g, dtype=torch.float64)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _pot_sinkhorn(C: np.ndarray, eps: float, n_iters: int) -> np.ndarray:
    n, m = C.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ot.sinkhorn(
            np.full(n, 1 / n),
            np.full(m, 1 / m),
            C,
            eps,
            method="sinkhorn_log",
            numItermax=n_iters,
            stopThr=0,
        )


# -- L_Feature, eq. 3.7 ----------------------------------------------------------------------


def test_feature_loss_literal_is_eq_3_7() -> None:
    zA, zB = _views(0, n=7, d=3)
    a, b = _unit(zA.numpy()), _unit(zB.numpy())
    n, d = a.shape
    C = np.empty((d, d))
    for i in range(d):  # C_ij = 1 - sum_b a_bi b_bj, raw inner products of unit rows
        for j in range(d):
            C[i, j] = 1.0 - sum(a[s, i] * b[s, j] for s in range(n))
    Q = _pot_sinkhorn(C, 0.1, 40)
    expected = -np.mean([math.log(d * Q[k, k]) for k in range(d)])
    got = feature_loss(zA, zB, eps=0.1, n_iters=40, standardise=False)
    assert got.item() == pytest.approx(expected, rel=1e-8)
    # rsmm's default (correlations) is another number
    assert feature_loss(zA, zB, eps=0.1, n_iters=40).item() != pytest.approx(expected, rel=1e-3)


# -- L_COOT, eq. 3.10 ------------------------------------------------------------------------


def _naive_coot_twins(z: np.ndarray, eps: float, n_bcd: int, n_iters: int):
    """COOT of z with itself, self-pairs forbidden, every cost entry a plain sum."""
    n, d = z.shape
    Q = np.full((d, d), 1 / d**2)
    for _ in range(n_bcd):
        Cs = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                Cs[i, j] = sum(
                    (z[i, k] - z[j, m]) ** 2 * Q[k, m] for k in range(d) for m in range(d)
                )
            Cs[i, i] = 1e6  # forbidden: exp(-1e6 / eps) = 0
        P = _pot_sinkhorn(Cs, eps, n_iters)
        Cf = np.empty((d, d))
        for k in range(d):
            for m in range(d):
                Cf[k, m] = sum(
                    (z[i, k] - z[j, m]) ** 2 * P[i, j] for i in range(n) for j in range(n)
                )
        Q = _pot_sinkhorn(Cf, eps, n_iters)
    return P, Q


def test_coot_loss_literal_is_eq_3_10() -> None:
    zA, zB = _views(1, n=3, d=3, noise=0.3)
    z = _unit(np.concatenate([zA.numpy(), zB.numpy()]))
    P, Q = _naive_coot_twins(z, eps=0.5, n_bcd=2, n_iters=3000)
    n2, d = z.shape
    twin = [(i + n2 // 2) % n2 for i in range(n2)]
    expected = -sum(math.log(n2 * P[i, twin[i]]) for i in range(n2))
    expected -= sum(math.log(d * Q[k, k]) for k in range(d))
    got = coot_loss(zA, zB, eps=0.5, n_iters=3000, n_bcd=2, twins=True, reduction="sum")
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # the sum is the mean times the number of rows, term by term (balance 2N : d)
    s_only = coot_loss(zA, zB, 0.5, 3000, 2, 1.0, 0.0, twins=True, reduction="sum")
    m_only = coot_loss(zA, zB, 0.5, 3000, 2, 1.0, 0.0, twins=True, reduction="mean")
    assert s_only.item() == pytest.approx(n2 * m_only.item(), rel=1e-9)
    with pytest.raises(ValueError, match="reduction"):
        coot_loss(zA, zB, reduction="median")


# -- dense contrastive, eq. 3.19, 3.20, 3.24 --------------------------------------------------


def test_cross_view_infonce_is_eq_3_20() -> None:
    zA, zB = _views(2, n=5, d=3)
    a, b, tau = _unit(zA.numpy()), _unit(zB.numpy()), 0.3
    expected = 0.0
    for i in range(len(a)):
        num = math.exp(a[i] @ b[i] / tau)
        den = sum(math.exp(a[i] @ b[n] / tau) for n in range(len(b)))
        expected -= math.log(num / den) / len(a)
    assert cross_view_infonce(zA, zB, tau).item() == pytest.approx(expected, rel=1e-9)
    assert infonce_alignment(zA, zB, tau, cross_view=True).item() == pytest.approx(expected)
    # SimCLR's two-way form is another number
    assert infonce_alignment(zA, zB, tau).item() != pytest.approx(expected, rel=1e-3)


def test_dense_negatives_images_is_eq_3_19() -> None:
    g = torch.Generator().manual_seed(3)
    f1 = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)  # B x P x D
    f2 = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    tau = 0.4
    q, k = f1 / f1.norm(dim=-1, keepdim=True), f2 / f2.norm(dim=-1, keepdim=True)
    sim = torch.einsum("bpd,bqd->bpq", q, k)
    T = torch.nn.functional.one_hot(sim.argmax(-1), 4).double()  # argmax matching
    g_img = k.mean(1) / k.mean(1).norm(dim=-1, keepdim=True)  # image-level representations
    expected, count = 0.0, 0
    for b in range(3):
        for i in range(4):
            negs = sum(math.exp(float(q[b, i] @ g_img[n]) / tau) for n in range(3))
            for j in range(4):
                pos = math.exp(float(q[b, i] @ k[b, j]) / tau)
                expected -= float(T[b, i, j]) * math.log(pos / (pos + negs))
            count += 1
    expected /= count
    got = dense_contrastive_loss(f1, f2, tau=tau, negatives="images", symmetric=False)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # given image-level keys replace the mean patches
    keys = torch.randn(3, 5, generator=g, dtype=torch.float64)
    other = dense_contrastive_loss(
        f1, f2, tau=tau, negatives="images", symmetric=False, image_keys=(keys, keys)
    )
    assert other.item() != pytest.approx(expected, rel=1e-3)


def test_dense_literal_module_is_eq_3_20_plus_eq_3_19() -> None:
    g = torch.Generator().manual_seed(4)
    zA, zB = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    f1, f2 = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    got = DenseContrastiveLoss("argmax", tau=0.4, literal=True)(zA, zB, f1, f2)
    glob = cross_view_infonce(zA, zB, 0.4)
    dense = dense_contrastive_loss(f1, f2, tau=0.4, negatives="images", symmetric=False)
    assert got.item() == pytest.approx((0.5 * glob + 0.5 * dense).item(), rel=1e-6)


def test_pretrain_sets_the_literal_dense_form_from_the_config() -> None:
    task = PretrainTask(
        in_channels={"s2": 3},
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        loss="infonce_alignment",
        loss_kwargs={"cross_view": True},
        dense="argmax",
        dense_dim=8,
        dense_kwargs={"negatives": "images", "symmetric": False},
    )
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(4, 3, 16, 16, generator=g) for _ in range(2)]
    loss, _ = task.shared_step({"s2": views})
    assert torch.isfinite(loss)
    with pytest.raises(ConfigError, match="image_keys"):
        PretrainTask(loss="ntxent", dense="argmax", dense_kwargs={"image_keys": None})


# -- GCA-RINCE's lam ---------------------------------------------------------------------------


def test_gca_rince_lam_acts_only_on_the_negatives_mass() -> None:
    zA, zB = _views(5, n=4, d=3)
    tau, n_iters, q, lam = 0.3, 6, 0.5, 0.2
    z = _unit(np.concatenate([zA.numpy(), zB.numpy()]))
    n2 = len(z)
    C = 1.0 - z @ z.T
    np.fill_diagonal(C, 1e6)
    R = n2 * _pot_sinkhorn(C, tau, n_iters)
    pos = np.array([R[i, (i + n2 // 2) % n2] for i in range(n2)])
    expected = np.mean(-(pos**q) / q + (lam * (R.sum(1) - pos)) ** q / q)
    got = gca_rince(zA, zB, tau, n_iters, q, lam, total="negatives")
    assert got.item() == pytest.approx(expected, rel=1e-8)

    def grad(total: str, lam: float) -> torch.Tensor:
        a = zA.clone().requires_grad_()
        gca_rince(a, zB, tau, n_iters, q, lam, total=total).backward()
        return a.grad

    # printed form: lam shifts the loss by a constant (the row sums are 1), no gradient
    assert torch.allclose(grad("all", 0.01), grad("all", 0.5), atol=1e-12)
    assert not torch.allclose(grad("negatives", 0.01), grad("negatives", 0.5), atol=1e-6)
    with pytest.raises(ConfigError, match=r"loss_kwargs\.total"):
        PretrainTask(loss="gca_rince", loss_kwargs={"total": "some"})


# -- GW prototype assignment, eq. 5.6-5.7, and the padded tree ---------------------------------


def test_gw_assignment_literal_is_one_gw_solve_and_a_row_argmax() -> None:
    tree = LabelTree.from_dict({"r": {"a": ["a1", "a2"], "b": {"b1": ["x", "y"]}, "c": None}})
    D = tree.distance_matrix().double().numpy()
    g = torch.Generator().manual_seed(0)
    protos = torch.nn.functional.normalize(torch.randn(5, 3, generator=g, dtype=torch.float64))
    C2 = np.clip(1.0 - protos.numpy() @ protos.numpy().T, 0.0, None)
    np.fill_diagonal(C2, 0.0)
    marg = np.full(5, 0.2)
    plan = ot.gromov.gromov_wasserstein(D, C2, marg, marg, loss_fun="square_loss")
    expected = plan.argmax(axis=1)
    got = gw_assignment(D, protos, normalise=False, n_init=1, rounding="argmax")
    assert got.tolist() == expected.tolist()
    with pytest.raises(ConfigError, match="rounding"):
        gw_assignment(D, protos, rounding="nearest")
    # the thesis' whole procedure through hierarchical_prototypes
    out = hierarchical_prototypes(
        tree, 3, prototypes=protos.float(), normalise=False, n_init=1, rounding="argmax", pad=True
    )
    D_pad = tree.padded().distance_matrix().double().numpy()
    plan = ot.gromov.gromov_wasserstein(D_pad, C2, marg, marg, loss_fun="square_loss")
    assert torch.equal(out, protos.float()[torch.as_tensor(plan.argmax(axis=1))])


def test_padded_tree_metric_is_twice_the_height_above_the_common_ancestor() -> None:
    spec = {"r": {"a": ["a1", "a2"], "b": {"b1": ["x", "y"], "b2": ["z"]}, "c": None}}
    plain = LabelTree.from_dict(spec)
    padded = LabelTree.from_dict(spec, pad=True)
    leaves = ["a1", "a2", "x", "y", "z", "c"]
    assert padded.all_leaves == leaves == plain.all_leaves
    assert {padded.depth(leaf) for leaf in leaves} == {3}
    # closed form on the original tree: H = 3; lca depths: a1,a2 -> a (1, padded to 2);
    # x,y -> b1 (2); x,z -> b (1); any leaf with c, or across a and b -> r (0)
    lca_depth = {
        ("a1", "a2"): 2, ("x", "y"): 2, ("x", "z"): 1, ("y", "z"): 1,
    }  # fmt: skip
    D = padded.distance_matrix(leaves)
    for i, u in enumerate(leaves):
        for j, v in enumerate(leaves):
            depth = 3 if u == v else lca_depth.get((u, v), lca_depth.get((v, u), 0))
            assert D[i, j].item() == 2 * (3 - depth), (u, v)
    assert plain.distance_matrix(leaves)[0, 5].item() == 3  # a1 - a - r - c unpadded


# -- the linear probe ----------------------------------------------------------------------


def test_linear_probe_norm_false_is_a_plain_linear_layer() -> None:
    kw = {"in_channels": {"s2": 3}, "backbone": "tiny_cnn", "num_classes": 4}
    plain = FinetuneTask(freeze_backbone=True, linear_probe_norm=False, **kw)
    assert isinstance(plain.head, nn.Linear)
    x = torch.randn(5, 3, 16, 16)
    feats = plain.encoder.fused({"s2": x}, ("s2",))
    assert torch.allclose(plain({"s2": x}), feats @ plain.head.weight.T + plain.head.bias)
    default = FinetuneTask(freeze_backbone=True, **kw)
    assert isinstance(default.head[0], nn.BatchNorm1d)
