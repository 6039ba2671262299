"""Baseline SSL objectives and their state: each loss against a naive formula and against
lightly's implementation, the MoCo queue and the EMA target update as specified."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightly.loss import (
    BarlowTwinsLoss,
    MMCRLoss,
    NegativeCosineSimilarity,
    NTXentLoss,
    VICRegLoss,
)
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from rsmm.losses.ssl import (
    cross_group_byol,
    cross_group_moco,
    mean_over_pairs,
    mmcr_loss,
    moco_infonce,
)
from rsmm.tasks import PretrainTask
from rsmm.tasks.momentum import KeyQueue, MomentumTarget, momentum_at
from rsmm.tasks.objectives import objective_names
from rsmm.tasks.objectives.ssl import SSLMethod


def project_groups(encoder, views) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Projector outputs of every (modality, view) group and the backbone features."""
    embedded = encoder.embed_views(views)
    return list(embedded.embeddings), dict(embedded.features)


def unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, dtype=torch.float64), dim=-1)


def lightly_moco(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> torch.Tensor:
    """lightly's NTXentLoss with a memory bank holding ``queue`` (MoCo's form)."""
    crit = NTXentLoss(temperature=t, memory_bank_size=tuple(queue.shape))
    crit.memory_bank.bank = queue.clone()
    return crit(q, k)


# -- pure losses ---------------------------------------------------------------------------


def test_moco_infonce_equals_naive_loop_and_lightly() -> None:
    q, k, queue, t = unit(5, 6), unit(5, 6), unit(9, 6), 0.2
    naive = 0.0
    for i in range(5):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ queue[j]) / t) for j in range(9))
        naive += -math.log(pos / (pos + neg)) / 5
    assert moco_infonce(q, k, queue, t).item() == pytest.approx(naive, rel=1e-10)
    assert moco_infonce(q, k, queue, t).item() == pytest.approx(
        lightly_moco(q, k, queue, t).item(), rel=1e-10
    )
    with pytest.raises(ValueError, match="temperature"):
        moco_infonce(q, k, queue, 0.0)


def test_cross_group_moco_pairs() -> None:
    q, k, queue = [unit(4, 3) for _ in range(3)], [unit(4, 3) for _ in range(3)], unit(7, 3)
    # one modality, two views: symmetric MoCo v2 = mean of lightly's two directions
    two = cross_group_moco(q[:2], k[:2], queue, 0.3)
    ref = (lightly_moco(q[0], k[1], queue, 0.3) + lightly_moco(q[1], k[0], queue, 0.3)) / 2
    assert two.item() == pytest.approx(ref.item(), rel=1e-10)
    # three groups: the six ordered pairs
    pairs = [(a, b) for a in range(3) for b in range(3) if a != b]
    ref3 = sum(moco_infonce(q[a], k[b], queue, 0.3) for a, b in pairs) / 6
    assert cross_group_moco(q, k, queue, 0.3).item() == pytest.approx(ref3.item(), rel=1e-10)
    with pytest.raises(ValueError, match="two views or two modalities"):
        cross_group_moco(q[:1], k[:1], queue)
    # explicit pairs: MoCo v2's one direction
    one = cross_group_moco(q[:1], k[1:2], queue, 0.3, pairs=[(0, 0)])
    assert one.item() == pytest.approx(lightly_moco(q[0], k[1], queue, 0.3).item(), rel=1e-10)


def test_moco_keys_get_no_gradient() -> None:
    q = unit(4, 3).requires_grad_()
    k = unit(4, 3).requires_grad_()
    moco_infonce(q, k, unit(5, 3)).backward()
    assert q.grad is not None and k.grad is None


def test_cross_group_byol_equals_lightly_and_naive() -> None:
    p = [torch.randn(6, 5, dtype=torch.float64) for _ in range(3)]
    z = [torch.randn(6, 5, dtype=torch.float64) for _ in range(3)]
    crit = NegativeCosineSimilarity()
    ref = 0.5 * (crit(p[0], z[1]) + crit(p[1], z[0]))
    assert cross_group_byol(p[:2], z[:2]).item() == pytest.approx(ref.item(), rel=1e-10)
    naive = 0.0
    for a in range(3):
        for b in range(3):
            if a != b:
                for i in range(6):
                    cos = float(p[a][i] @ z[b][i]) / float(p[a][i].norm() * z[b][i].norm())
                    naive -= cos / (6 * 6)
    assert cross_group_byol(p, z).item() == pytest.approx(naive, rel=1e-10)


def naive_barlow(a: torch.Tensor, b: torch.Tensor, lam: float) -> float:
    """Zbontar et al. eq. 1 by loops (columns standardised with the biased std)."""
    a, b = a.numpy(), b.numpy()
    n, d = a.shape
    za = (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5)
    zb = (b - b.mean(0)) / np.sqrt(b.var(0) + 1e-5)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(za[k, i] * zb[k, j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c**2
    return loss


def naive_vicreg(a: torch.Tensor, b: torch.Tensor, lam: float, mu: float, nu: float) -> float:
    """VICReg by loops, normalised as the authors' code (and lightly): invariance as a
    mean over samples and dimensions, variance term averaged over the two branches
    (unbiased variance, eps = 1e-4)."""
    a, b = a.numpy(), b.numpy()
    d = a.shape[1]
    inv = ((a - b) ** 2).mean()

    def var(x: np.ndarray) -> float:
        return float(
            np.mean([max(0.0, 1 - math.sqrt(x[:, j].var(ddof=1) + 1e-4)) for j in range(d)])
        )

    def cov(x: np.ndarray) -> float:
        c = np.cov(x, rowvar=False)
        return sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d

    return lam * inv + mu * (var(a) + var(b)) / 2 + nu * (cov(a) + cov(b))


def test_barlow_twins_and_vicreg_over_group_pairs() -> None:
    g = [torch.randn(7, 4, dtype=torch.float64) for _ in range(3)]
    bt = BarlowTwinsLoss(lambda_param=0.0051)
    vic = VICRegLoss()
    assert bt(g[0], g[1]).item() == pytest.approx(naive_barlow(g[0], g[1], 0.0051), rel=1e-8)
    assert vic(g[0], g[1]).item() == pytest.approx(naive_vicreg(g[0], g[1], 25, 25, 1), rel=1e-8)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = sum(naive_barlow(g[a], g[b], 0.0051) for a, b in pairs) / 3
    assert mean_over_pairs(bt, g).item() == pytest.approx(expected, rel=1e-8)
    with pytest.raises(ValueError, match="two views or two modalities"):
        mean_over_pairs(bt, g[:1])


def test_mmcr_equals_lightly_and_svd() -> None:
    z = unit(8, 2, 5)
    for lmda in (0.0, 5e-3, 0.5):
        ref = MMCRLoss(lmda=lmda)(z[:, :1], z[:, 1:])
        assert mmcr_loss(z, lmda).item() == pytest.approx(ref.item(), rel=1e-10)
    z3 = unit(6, 3, 4).numpy()
    centroid = z3.mean(1)
    expected = -np.linalg.svd(centroid, compute_uv=False).sum() + 0.1 * np.mean(
        [np.linalg.svd(z3[i], compute_uv=False).sum() for i in range(6)]
    )
    assert mmcr_loss(torch.from_numpy(z3), 0.1).item() == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="N x k x d"):
        mmcr_loss(torch.from_numpy(z3[0]))


# -- queue and EMA target ------------------------------------------------------------------


def test_key_queue_is_a_fifo_ring() -> None:
    size, dim = 7, 3
    q = KeyQueue(size, dim)
    ring = [row.clone() for row in q.queue]
    ptr = 0
    for n in (3, 2, 4, 9, 1, 7):
        keys = torch.randn(n, dim)
        q.enqueue(keys)
        for row in keys:  # one key at a time, the naive way
            ring[ptr] = row
            ptr = (ptr + 1) % size
        assert torch.equal(q.queue, torch.stack(ring))
        assert int(q.queue_ptr) == ptr
    assert {"queue", "queue_ptr"} <= set(dict(q.named_buffers()))
    assert torch.allclose(KeyQueue(5, 4).queue.norm(dim=1), torch.ones(5))
    with pytest.raises(ValueError, match="queue_size"):
        KeyQueue(0, 3)
    with pytest.raises(ValueError, match="n x 3"):
        q.enqueue(torch.randn(2, 4))


def test_momentum_target_update_is_an_ema() -> None:
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    target = MomentumTarget(online)
    assert all(not p.requires_grad for p in target.parameters())
    for p, t in zip(online.parameters(), target.net.parameters()):
        assert torch.equal(p, t) and p.data_ptr() != t.data_ptr()
    old = [t.clone() for t in target.net.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    assert target.update_once(online, 0.9, step=0)
    for p, t, o in zip(online.parameters(), target.net.parameters(), old):
        assert torch.allclose(t, 0.9 * o + 0.1 * p, atol=1e-7)
    snapshot = [t.clone() for t in target.net.parameters()]
    assert not target.update_once(online, 0.9, step=0)  # once per optimiser step
    assert all(torch.equal(a, b) for a, b in zip(snapshot, target.net.parameters()))
    with pytest.raises(ValueError, match="momentum"):
        target.update(online, 1.5)


def test_momentum_schedule_is_lightlys_cosine() -> None:
    total, start, end = 11, 0.99, 1.0
    for step in range(total):
        expected = end - (end - start) * (math.cos(math.pi * step / (total - 1)) + 1) / 2
        assert momentum_at(step, total, start, end) == pytest.approx(expected, abs=1e-12)
        assert momentum_at(step, total, start, end) == cosine_schedule(step, total, start, end)
    assert momentum_at(0, total, start, end) == start
    assert momentum_at(25, total, start, end) == end


# -- the task ------------------------------------------------------------------------------


def make_task(loss: str, two_modalities: bool = False, **kw) -> PretrainTask:
    return PretrainTask(
        in_channels={"s2": 3, "s1": 2} if two_modalities else {"s2": 3},
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        loss=loss,
        **kw,
    )


def s2_views() -> dict[str, list[torch.Tensor]]:
    return {"s2": [torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)]}


@pytest.mark.parametrize(
    ("loss", "reference"),
    [
        ("barlow_twins", BarlowTwinsLoss(lambda_param=0.0051)),
        ("vicreg", VICRegLoss()),
        ("mmcr", None),
    ],
)
def test_single_modality_two_views_is_lightlys_loss(loss: str, reference: nn.Module) -> None:
    task = make_task(loss)
    views = s2_views()
    got, feats = task.shared_step(views)
    z, _ = project_groups(task.encoder, views)
    if loss == "mmcr":
        a, b = (F.normalize(g, dim=1)[:, None] for g in z)
        expected = MMCRLoss(lmda=5e-3)(a, b)
    else:
        expected = reference(z[0], z[1])
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert feats["s2"].shape[0] == 12


def test_moco_task_step_matches_lightly_and_enqueues_target_keys() -> None:
    task = make_task("moco", temperature=0.2, loss_kwargs={"queue_size": 30})
    views = s2_views()
    queue = task.method.keys.queue.clone()
    task.method.before_step(task.encoder, step=0, total_steps=10)
    got, _ = task.shared_step(views)
    q = [F.normalize(g, dim=1) for g in project_groups(task.encoder, views)[0]]
    k = [F.normalize(g, dim=1) for g in project_groups(task.method.target.net, views)[0]]
    expected = (lightly_moco(q[0], k[1], queue, 0.2) + lightly_moco(q[1], k[0], queue, 0.2)) / 2
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # the keys of both groups, in group order, then untouched old entries
    assert torch.allclose(task.method.keys.queue[:12], torch.cat(k), atol=1e-6)
    assert torch.equal(task.method.keys.queue[12:], queue[12:])
    assert int(task.method.keys.queue_ptr) == 12
    task.eval()  # validation does not enqueue
    task.shared_step(views)
    assert int(task.method.keys.queue_ptr) == 12


def test_one_directional_moco_is_moco_v2() -> None:
    task = make_task("moco", temperature=0.2, loss_kwargs={"queue_size": 30, "symmetric": False})
    views = s2_views()
    queue = task.method.keys.queue.clone()
    got, feats = task.shared_step(views)
    # view-1 queries, view-2 keys; each view is its own batch (BatchNorm statistics too)
    q = F.normalize(project_groups(task.encoder, {"s2": views["s2"][:1]})[0][0], dim=1)
    k = F.normalize(project_groups(task.method.target.net, {"s2": views["s2"][1:]})[0][0], dim=1)
    assert got.item() == pytest.approx(lightly_moco(q, k, queue, 0.2).item(), rel=1e-5)
    assert feats["s2"].shape[0] == 6  # the online branch encodes the query view only
    # one key per sample enters the queue: the view-2 keys
    assert int(task.method.keys.queue_ptr) == 6
    assert torch.allclose(task.method.keys.queue[:6], k, atol=1e-6)
    with pytest.raises(ValueError, match="symmetric=false needs two views per modality"):
        task.shared_step({"s2": views["s2"][:1]})


def test_one_directional_multimodal_moco_pairs_every_query_with_every_key() -> None:
    task = make_task(
        "moco",
        two_modalities=True,
        temperature=0.2,
        loss_kwargs={"queue_size": 40, "symmetric": False},
    )
    views = {
        "s2": [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)],
        "s1": [torch.randn(4, 2, 16, 16), torch.randn(4, 2, 16, 16)],
    }
    queue = task.method.keys.queue.clone()
    got, _ = task.shared_step(views)
    first = {m: vs[:1] for m, vs in views.items()}
    last = {m: vs[1:] for m, vs in views.items()}
    queries = [F.normalize(g, dim=1) for g in project_groups(task.encoder, first)[0]]
    keys = [F.normalize(g, dim=1) for g in project_groups(task.method.target.net, last)[0]]
    expected = sum(moco_infonce(a, b, queue, 0.2) for a in queries for b in keys) / 4
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert int(task.method.keys.queue_ptr) == 8
    # validation batches have one view per modality: cross-modal pairs, nothing queued
    task.eval()
    one_view = {m: vs[:1] for m, vs in views.items()}
    val, _ = task.shared_step(one_view)
    assert torch.isfinite(val) and int(task.method.keys.queue_ptr) == 8
    task.validation_step({"s2": one_view["s2"][0], "s1": one_view["s1"][0]}, 0)


def test_byol_task_step_matches_lightly() -> None:
    task = make_task("byol", loss_kwargs={"predictor_hidden_dim": 10})
    assert task.method.predictors["s2"].net[0].out_features == 10
    views = s2_views()
    got, _ = task.shared_step(views)
    z = project_groups(task.encoder, views)[0]
    p = [task.method.predictors["s2"](g) for g in z]
    t = project_groups(task.method.target.net, views)[0]
    crit = NegativeCosineSimilarity()
    expected = 0.5 * (crit(p[0], t[1]) + crit(p[1], t[0]))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_momentum_methods_keep_targets_out_of_the_gradient() -> None:
    for loss in ("moco", "byol"):
        task = make_task(loss, two_modalities=True)
        views = {"s2": [torch.randn(4, 3, 16, 16)], "s1": [torch.randn(4, 2, 16, 16)]}
        task.shared_step(views)[0].backward()
        target = list(task.method.target.parameters())
        assert target and all(p.grad is None and not p.requires_grad for p in target)
        assert all(p.grad is not None for p in task.encoder.parameters())
        trainable = {id(p) for g in task.param_groups() for p in g["params"]}
        assert not trainable & {id(p) for p in target}
        keys = task.state_dict().keys()
        assert any(k.startswith("method.target.net.backbones.s1.") for k in keys)
    assert {"method.keys.queue", "method.keys.queue_ptr"} <= set(make_task("moco").state_dict())


def test_method_options_are_checked() -> None:
    assert objective_names(SSLMethod) == ("moco", "byol", "barlow_twins", "vicreg", "mmcr")
    with pytest.raises(
        ValueError, match=r"loss_kwargs: \['queue'\] are not options of loss 'moco'"
    ):
        PretrainTask(loss="moco", loss_kwargs={"queue": 10})
    with pytest.raises(ValueError, match="dense matching"):
        PretrainTask(loss="byol", dense="argmax")
    # values are checked when the task is configured (before any run folder exists),
    # even without in_channels (the encoder is built later from the datamodule)
    bad = [
        ("byol", {"momentum": 1.2}, r"loss_kwargs.momentum must be a number in \[0, 1\]"),
        ("moco", {"momentum_end": -0.1}, "loss_kwargs.momentum_end"),
        ("moco", {"queue_size": 0}, "loss_kwargs.queue_size must be an integer >= 1"),
        ("moco", {"queue_size": 2.5}, "loss_kwargs.queue_size"),
        ("moco", {"queue_size": True}, "loss_kwargs.queue_size"),
        ("moco", {"symmetric": "yes"}, "loss_kwargs.symmetric must be true or false"),
        ("byol", {"predictor_hidden_dim": 0}, "loss_kwargs.predictor_hidden_dim"),
        ("barlow_twins", {"lambda_param": -1}, "loss_kwargs.lambda_param must be a number >= 0"),
        ("vicreg", {"eps": 0}, "loss_kwargs.eps must be a number > 0"),
        ("mmcr", {"lmda": -1}, "loss_kwargs.lmda"),
    ]
    for loss, options, message in bad:
        with pytest.raises(ValueError, match=message):
            PretrainTask(loss=loss, loss_kwargs=options)
    with pytest.raises(ValueError, match="projection_dim > 0"):
        PretrainTask(in_channels={"s2": 3}, backbone="tiny_cnn", projection_dim=0, loss="vicreg")
