"""Fine-tuning that keeps the ball: a horospherical head on the pre-trained projectors'
outputs (``FinetuneTask(head_input="projector")``) after ``loss: hyp_ntxent``."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from helpers import cpu_trainer

from rsmm.datamodules import SyntheticDataModule
from rsmm.errors import CheckpointError, ConfigError
from rsmm.hyperbolic import ToPoincare
from rsmm.hyperbolic.ball import clip_features
from rsmm.tasks import FinetuneTask, PretrainTask

BALL = {"c": 1.0, "clip_r": 2.3}
SIZES = {"projection_dim": 8, "hidden_dim": 16}


def _data(**kw) -> SyntheticDataModule:
    return SyntheticDataModule(
        modalities=("s1", "s2"), num_samples=24, size=16, batch_size=8, **kw
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    warnings.filterwarnings("ignore", message=".*estimated them.*")
    root = tmp_path_factory.mktemp("hyp")
    torch.manual_seed(0)
    task = PretrainTask(backbone="tiny_cnn", loss="hyp_ntxent", loss_kwargs=BALL, **SIZES)
    tr = cpu_trainer(root, max_steps=2, limit_val_batches=0)
    tr.fit(task, _data(views=2))
    tr.save_checkpoint(root / "pre.ckpt")
    return root / "pre.ckpt"


def _probe(ckpt: Path, **kw) -> FinetuneTask:
    return FinetuneTask(
        backbone="tiny_cnn",
        pretrained=str(ckpt),
        head="horospherical",
        head_kwargs=BALL,
        head_input="projector",
        freeze_backbone=True,
        lr=1e-2,
        **{**SIZES, **kw},
    )


def test_horospherical_probe_on_the_pretrained_ball(checkpoint: Path, tmp_path: Path) -> None:
    pre = torch.load(checkpoint, weights_only=True)["state_dict"]
    task = _probe(checkpoint)
    tr = cpu_trainer(tmp_path, max_steps=3, limit_val_batches=1)
    dm = _data(label_fraction=1.0)
    tr.fit(task, dm)
    result = tr.test(task, dm, verbose=False)[0]
    assert 0.0 <= result["test/OA"] <= 1.0
    # the pre-trained projectors are loaded and stay frozen with the backbones ...
    own = task.encoder.projectors.state_dict()
    assert own and all(torch.equal(v, pre[f"encoder.projectors.{k}"]) for k, v in own.items())
    assert not any(p.requires_grad for p in task.encoder.projectors.parameters())
    assert any(p.requires_grad for p in task.head.parameters())
    # ... and the head reads the pre-training's ball points: for each modality alone, the
    # ToPoincare image of its projector output; for both, expmap0 of the mean tangent vector
    task.eval()
    batch = next(iter(dm.test_dataloader()))
    views = task.batch_views(batch, task.modalities)
    x = {m: v[0] for m, v in views.items()}
    with torch.no_grad():
        feats = {m: task.encoder.backbones[m](x[m]) for m in x}
        z = {m: task.encoder.projectors[m](feats[m]) for m in x}
        expected = torch.stack([clip_features(z[m], 2.3) for m in ("s1", "s2")]).mean(0)
        torch.testing.assert_close(task.head_inputs(x), expected)
        ball = task.head[0](task.head_inputs(x))
        torch.testing.assert_close(ball, ToPoincare(**BALL)(expected))
        assert float(ball.norm(dim=1).max()) < 1.0


def test_projectors_of_other_sizes_are_refused(checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="projection_dim=16"):
        _probe(checkpoint, projection_dim=16, in_channels={"s1": 2, "s2": 13}, num_classes=3)


def test_unknown_head_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="head_input: unknown 'ball'"):
        FinetuneTask(head_input="ball")
