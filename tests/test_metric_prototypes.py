"""Metric-Guided Prototypes (Garnot & Landrieu 2021; ``head: mgp``): the logits, the
scale-free distortion regulariser and its optimal scale against direct computations, the
head inside FinetuneTask, and the Table 5.1 / 5.2 rows it runs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_thesis_grids import dry_run_cells
from test_torchvision_sets import FAST

from rsmm.errors import ConfigError
from rsmm.hyperbolic import (
    LabelTree,
    MetricGuidedPrototypes,
    build_head,
    distortion_loss,
    optimal_scale,
    prototype_distances,
)
from rsmm.manifests import load_manifest

REPO = Path(__file__).resolve().parents[1]
#: a four-class tree: {a, b} and {c, d}; path lengths 2 within, 4 across
TREE = LabelTree.from_dict({"root": {"ab": ["a", "b"], "cd": ["c", "d"]}})
COST = TREE.distance_matrix(["a", "b", "c", "d"])


def _naive_distortion(p: torch.Tensor, cost: torch.Tensor, scale: float) -> float:
    k = p.shape[0]
    total = 0.0
    for i in range(k):
        for j in range(k):
            if i != j:
                d = math.sqrt(
                    sum((float(p[i, t]) - float(p[j, t])) ** 2 for t in range(p.shape[1]))
                )
                total += ((scale * d - float(cost[i, j])) / float(cost[i, j])) ** 2
    return total / (k * (k - 1))


def test_cost_matrix_is_the_tree_path_length() -> None:
    assert COST.tolist() == [[0, 2, 4, 4], [2, 0, 4, 4], [4, 4, 0, 2], [4, 4, 2, 0]]


def test_distortion_matches_a_double_loop_with_and_without_the_scale() -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.randn(4, 3, generator=g, dtype=torch.float64)
    s = float(optimal_scale(prototype_distances(p), COST))
    assert float(distortion_loss(p, COST)) == pytest.approx(
        _naive_distortion(p, COST, s), rel=1e-10
    )
    assert float(distortion_loss(p, COST, scale_free=False)) == pytest.approx(
        _naive_distortion(p, COST, 1.0), rel=1e-10
    )
    # scale-free: invariant to a global rescaling of the prototypes
    assert float(distortion_loss(7.5 * p, COST)) == pytest.approx(float(distortion_loss(p, COST)))


def test_optimal_scale_is_the_closed_form_and_beats_every_other_scale() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.randn(4, 2, generator=g, dtype=torch.float64)
    d = prototype_distances(p)
    off = ~torch.eye(4, dtype=torch.bool)
    r = d[off] / COST[off].double()
    s = float(optimal_scale(d, COST))
    assert s == pytest.approx(float(r.sum() / (r * r).sum()), rel=1e-12)
    grid = torch.linspace(0.01, 5 * s, 20001, dtype=torch.float64)
    losses = [_naive_distortion(p, COST, float(t)) for t in grid[::500]]
    brute = ((grid[:, None] * r[None] - 1) ** 2).mean(1)
    assert float(grid[brute.argmin()]) == pytest.approx(s, rel=1e-3)
    assert _naive_distortion(p, COST, s) <= min(losses) + 1e-12


def test_a_tree_realisable_layout_has_zero_distortion_at_any_scale() -> None:
    # a, b 1 apart on the x axis, c, d 1 apart on the z axis, every cross pair 2 apart: D / 2
    h = math.sqrt(3.5)
    q = torch.tensor([[-0.5, 0, 0], [0.5, 0, 0], [0, h, -0.5], [0, h, 0.5]], dtype=torch.float64)
    assert torch.allclose(prototype_distances(q), COST.double() / 2)
    assert float(optimal_scale(prototype_distances(q), COST)) == pytest.approx(2.0)
    assert float(distortion_loss(q, COST)) == pytest.approx(0.0, abs=1e-20)
    assert float(distortion_loss(q, COST, scale_free=False)) == pytest.approx(0.25)


def test_logits_are_minus_the_squared_distances() -> None:
    torch.manual_seed(0)
    head = MetricGuidedPrototypes(2, 4, COST)
    x = torch.randn(4, 2)
    direct = torch.stack(
        [torch.stack([-((xi - pk) ** 2).sum() for pk in head.prototypes]) for xi in x]
    )
    torch.testing.assert_close(head(x), direct)
    assert head(x).argmax(1).tolist() == torch.cdist(x, head.prototypes).argmin(1).tolist()
    assert "cost" not in head.state_dict()  # rebuilt from the task's hierarchy
    assert isinstance(build_head("mgp", 2, 4, cost=COST), MetricGuidedPrototypes)


def test_distortion_gradients_are_finite_and_descent_lowers_it() -> None:
    torch.manual_seed(0)
    head = MetricGuidedPrototypes(3, 4, COST)
    with torch.no_grad():
        head.prototypes[1] = head.prototypes[0]  # coinciding prototypes
    head.distortion().backward()
    assert torch.isfinite(head.prototypes.grad).all()
    head = MetricGuidedPrototypes(3, 4, COST)  # from a random start, the tree is realisable
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    start = float(head.distortion().detach())
    for _ in range(100):
        opt.zero_grad()
        head.distortion().backward()
        opt.step()
    assert float(head.distortion().detach()) < 0.05 * start


def _task(**kw):
    from rsmm.tasks import FinetuneTask

    classes = load_manifest("cifar10").classes
    args = {
        "in_channels": {"rgb": 3},
        "num_classes": 10,
        "backbone": "tiny_cnn",
        "head": "mgp",
        "head_dim": 3,
        "hierarchy": "cifar10",
        "data_info": {"classes": classes},
    }
    return FinetuneTask(**{**args, **kw})


def test_finetune_adds_the_weighted_distortion_to_the_training_loss() -> None:
    torch.manual_seed(0)
    task = _task(head_kwargs={"distortion_weight": 0.5})
    mgp = task.head[-1]
    assert isinstance(mgp, MetricGuidedPrototypes) and mgp.distortion_weight == 0.5
    tree = LabelTree.from_yaml("cifar10", classes=load_manifest("cifar10").classes)
    torch.testing.assert_close(mgp.cost, tree.distance_matrix())
    batch = {"rgb": torch.randn(4, 3, 8, 8), "label": torch.tensor([0, 1, 8, 9])}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")
        loss = task.training_step(batch, 0)
    logits = task(batch)
    expected = F.cross_entropy(logits, batch["label"]) + 0.5 * mgp.distortion()
    torch.testing.assert_close(loss, expected)


def test_mgp_needs_a_hierarchy_and_takes_only_its_options() -> None:
    with pytest.raises(ConfigError, match="needs `hierarchy`"):
        _task(hierarchy=None)
    with pytest.raises(ConfigError, match=r"\['c'\] are not options of head 'mgp'"):
        _task(head_kwargs={"c": 1.0})


def test_finetune_mgp_config_runs_on_the_fake_cifar10(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rsmm.cli import main

    monkeypatch.chdir(tmp_path)
    args = [
        "finetune",
        "--config",
        str(REPO / "configs/hyperbolic/finetune_cifar10_mgp.yaml"),
        "--data.init_args.root",
        str(REPO / "tests/data/cifar10"),
        "--data.init_args.batch_size",
        "4",
        "--model.head_dim",
        "2",
        *FAST,
    ]
    assert main(args) == 0
    ckpt = torch.load(tmp_path / "runs/finetune/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["head"] == "mgp"
    assert ckpt["state_dict"]["head.1.prototypes"].shape == (10, 2)


@pytest.mark.parametrize(
    ("spec", "row", "cells"),
    [
        ("grid_table_5_1.yaml", "Metric Guided Prototypes", 12),
        ("grid_table_5_2.yaml", "Metric-Guided (Garnot & Landrieu 2021)", 2),
    ],
)
def test_grids_run_the_mgp_row(spec: str, row: str, cells: int, tmp_path: Path) -> None:
    found, lines = dry_run_cells(REPO / "configs/hyperbolic" / spec, tmp_path)
    assert sum(1 for r, _ in found if r == row) == cells
    assert not any(line.endswith("(published, not run by rsmm)") for line in lines)
    runs = [line for line in lines if line.startswith("cd ") and "_mgp.yaml" in line]
    assert len(runs) == 3 * cells  # every cell, three seeds


def test_logits_are_float32_under_bfloat16_autocast() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3), MetricGuidedPrototypes(3, 4, COST))
    x = torch.randn(4, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(x), rtol=0.05, atol=0.05)


def test_cross_entropy_and_distortion_learn_separable_blobs() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 5, generator=g) * 3
    y = torch.arange(4).repeat(4)
    x = centres[y] + 0.3 * torch.randn(16, 5, generator=g)
    torch.manual_seed(0)
    head = MetricGuidedPrototypes(3, 4, COST)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3), head)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        (F.cross_entropy(model(x), y) + head.regularisation()).backward()
        opt.step()
    assert (model(x).argmax(1) == y).all()
    assert float(head.distortion().detach()) < 0.05
