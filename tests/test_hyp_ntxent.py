"""The hyperbolic multimodal NT-Xent (eq. 4.1 with s = -d_c): values, limits, numerics."""

from __future__ import annotations

import math

import geoopt
import pytest
import torch
import torch.nn.functional as F
from helpers import cpu_trainer

from rsmm.datamodules import SyntheticDataModule
from rsmm.errors import ConfigError
from rsmm.hyperbolic import ToPoincare
from rsmm.losses import hyp_ntxent, mm_ntxent, per_anchor_contrastive, poincare_similarity
from rsmm.tasks import PretrainTask


def _points(k: int = 12, d: int = 5, seed: int = 0, radius: float | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(k, d, generator=g, dtype=torch.float64), dim=1)
    r = 0.9 * torch.rand(k, 1, generator=g, dtype=torch.float64) if radius is None else radius
    return x * r


def _naive(z, ids, tau, dist, mask=None) -> float:
    """Eq. 4.1 as a double loop over anchors and keys, with the distance ``dist``."""
    k = len(z)
    mask = [True] * k if mask is None else mask.tolist()
    losses = []
    for r in range(k):
        if not mask[r]:
            continue
        den = sum(math.exp(-dist(z[r], z[j]) / tau) for j in range(k) if j != r)
        pos = [p for p in range(k) if p != r and ids[p] == ids[r] and mask[p]]
        if pos:
            terms = [math.log(math.exp(-dist(z[r], z[p]) / tau) / den) for p in pos]
            losses.append(-sum(terms) / len(pos))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("c", [1.0, 0.3])
def test_equals_a_naive_loop_with_geoopt_distances(c: float) -> None:
    z = _points() / c**0.5
    ids = torch.arange(4).repeat(3)  # 4 samples x (2 modalities + a second view)
    mask = torch.tensor([True] * 10 + [False] * 2)
    ball = geoopt.PoincareBall(c=c)

    def dist(x, y):
        return float(ball.dist(x, y))

    for m in (None, mask):
        got = hyp_ntxent(z, ids, tau=0.2, c=c, anchor_mask=m)
        assert got.dtype == torch.float64
        assert float(got) == pytest.approx(_naive(z, ids, 0.2, dist, m), rel=1e-10)


def test_the_flat_limit_is_the_euclidean_distance_loss() -> None:
    """geoopt's d_c(x, y) = (2/sqrt c) artanh(sqrt c ||(-x) (+)_c y||) -> 2 ||x - y||."""
    z = _points()
    ids = torch.arange(6).repeat(2)
    ball = geoopt.PoincareBall(c=1e-8)
    assert float(ball.dist(z[0], z[1])) == pytest.approx(2 * float((z[0] - z[1]).norm()), 1e-7)
    euclid = _naive(z, ids, 0.5, lambda x, y: 2 * float((x - y).norm()))
    assert float(hyp_ntxent(z, ids, tau=0.5, c=1e-8)) == pytest.approx(euclid, rel=1e-6)
    # and the curved loss is not the flat one: the check can fail
    assert float(hyp_ntxent(z, ids, tau=0.5, c=1.0)) != pytest.approx(euclid, rel=1e-2)


def test_per_anchor_similarity_defaults_to_the_dot_product() -> None:
    z = F.normalize(_points(), dim=1)
    ids = torch.arange(4).repeat(3)
    pos = ids[:, None] == ids[None, :]
    dot, _ = per_anchor_contrastive(z, pos, 0.1, similarity=lambda a, b: a @ b.T)
    default, _ = per_anchor_contrastive(z, pos, 0.1)
    torch.testing.assert_close(dot, default)
    assert float(default.mean()) == pytest.approx(float(mm_ntxent(z, ids, 0.1)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("radius", [1 - 1e-7, 1.0])
def test_finite_values_and_gradients_at_the_boundary(dtype: torch.dtype, radius: float) -> None:
    z = _points(radius=radius).to(dtype)
    z[1] = z[0]  # identical rows: a zero distance in the denominator
    z = z.requires_grad_()
    loss = hyp_ntxent(z, torch.arange(4).repeat(3), tau=0.1)
    loss.backward()
    # finite; not necessarily informative: distances between boundary points saturate
    # geoopt's artanh clamp (why ToPoincare's clip_r keeps features away from the boundary)
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_points_strictly_inside_are_not_moved() -> None:
    """Only points past radius (1 - 1e-7) / sqrt(c) are pulled in."""
    x, y = _points(2), _points(2, seed=1)
    sim = poincare_similarity(1.0)(x, y)
    torch.testing.assert_close(sim, -geoopt.PoincareBall(1.0).dist(x[:, None], y[None]))


def test_bf16_autocast_and_clipped_projector_outputs() -> None:
    g = torch.Generator().manual_seed(0)
    feats = 10 * torch.randn(12, 8, generator=g)  # clipped to norm 2.3 before expmap0
    ids = torch.arange(4).repeat(3)
    ref = hyp_ntxent(ToPoincare(c=1.0, clip_r=2.3)(feats), ids, tau=0.1)
    x = feats.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = hyp_ntxent(ToPoincare(c=1.0, clip_r=2.3)(x), ids, tau=0.1)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)


def test_bad_arguments() -> None:
    z = _points()
    with pytest.raises(ValueError, match="curvature"):
        hyp_ntxent(z, torch.arange(12), c=0.0)
    with pytest.raises(ValueError, match="no anchor has a positive"):
        hyp_ntxent(z, torch.arange(12))


# -- the pre-training objective ----------------------------------------------------------------


def _task(**kw) -> PretrainTask:
    return PretrainTask(
        in_channels={"s1": 2, "s2": 3},
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        temperature=0.2,
        loss="hyp_ntxent",
        **kw,
    )


def test_objective_scores_the_projector_outputs_in_the_ball() -> None:
    torch.manual_seed(0)
    task = _task(loss_kwargs={"c": 0.5, "clip_r": 1.5})
    g = torch.Generator().manual_seed(0)
    batch = {
        "s1": [torch.randn(4, 2, 16, 16, generator=g) for _ in range(2)],
        "s2": [torch.randn(4, 3, 16, 16, generator=g)],
    }
    task.eval()
    value, _ = task.shared_step(batch)
    e = task.encoder.embed_views(task.batch_views(batch, task.modalities))
    z = ToPoincare(c=0.5, clip_r=1.5)(torch.cat(e.embeddings))
    assert float(value) == pytest.approx(float(hyp_ntxent(z, e.sample_ids(), 0.2, c=0.5)), 1e-6)
    # not the Euclidean objective on the same rows
    assert float(value) != pytest.approx(float(mm_ntxent(e.flat(), e.sample_ids(), 0.2)), 1e-3)


@pytest.mark.parametrize(
    ("options", "error"),
    [({"c": 0.0}, r"loss_kwargs\.c must be a number > 0"),
     ({"clip_r": -1}, r"loss_kwargs\.clip_r must be a number > 0"),
     ({"radius": 1}, r"\['radius'\] are not options of loss 'hyp_ntxent'.*c, clip_r")],
)  # fmt: skip
def test_objective_options_are_checked(options: dict, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        PretrainTask(loss="hyp_ntxent", loss_kwargs=options)
    _task(loss_kwargs={"clip_r": None})  # no clipping is allowed


def test_objective_trains_in_a_trainer(tmp_path) -> None:
    dm = SyntheticDataModule(
        modalities=("s1", "s2"), num_samples=16, size=16, batch_size=8, views=2
    )
    task = PretrainTask(
        backbone="tiny_cnn", projection_dim=8, hidden_dim=16, loss="hyp_ntxent",
        loss_kwargs={"c": 1.0, "clip_r": 2.3},
    )  # fmt: skip
    tr = cpu_trainer(tmp_path, max_steps=2, limit_val_batches=0)
    tr.fit(task, dm)
    assert torch.isfinite(tr.callback_metrics["train/loss"])
    assert all(torch.isfinite(p).all() for p in task.parameters())
    assert task.method.to_ball.clip_r == 2.3
