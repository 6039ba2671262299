"""The ``kernel_ntxent`` pre-training objective: its loss, its errors, DDP and a CLI run."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from rsmm.cli import main
from rsmm.errors import ConfigError
from rsmm.losses import doy_kernel, geo_kernel, mm_kernel_ntxent, mm_ntxent
from rsmm.models.views import EmbeddedViews, SampleInfo
from rsmm.stacks import build_manifest, spec_from_dirs, write_manifest
from rsmm.tasks import PretrainTask
from rsmm.tasks.objectives import Ranks

TESTS = Path(__file__).parent
SCENE = TESTS / "data" / "stacks" / "scene"
CONFIG = TESTS.parent / "configs" / "beyond" / "pretrain_kernel_ntxent_geo.yaml"
LONLAT = torch.tensor([[5.0, 45.0], [5.01, 45.0], [5.0, 45.01], [5.3, 45.0]])
DATE = torch.tensor([10.0, 40.0, 360.0, 200.0])


def task(**loss_kwargs) -> PretrainTask:
    torch.manual_seed(0)
    return PretrainTask(
        in_channels={"s1": 2, "s2": 3},
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        temperature=0.3,
        loss="kernel_ntxent",
        loss_kwargs=loss_kwargs or None,
    ).eval()


def batch(meta: dict | None = None) -> dict:
    g = torch.Generator().manual_seed(0)
    out = {
        "s1": [torch.randn(4, 2, 16, 16, generator=g) for _ in range(2)],
        "s2": [torch.randn(4, 3, 16, 16, generator=g)],
        "label": torch.tensor([0, 1, 0, 1]),
    }
    if meta is not None:
        out["meta"] = {"id": ["a", "b", "c", "d"], **meta}
    return out


@pytest.mark.parametrize(
    ("kernel", "weights"),
    [
        ("geo", geo_kernel(LONLAT, LONLAT, 2.0)),
        ("time", doy_kernel(DATE, DATE, 30.0)),
        ("geo_time", geo_kernel(LONLAT, LONLAT, 2.0) * doy_kernel(DATE, DATE, 30.0)),
    ],
)
def test_objective_is_the_kernel_loss_of_the_embedded_views(kernel, weights) -> None:
    t = task(kernel=kernel)
    b = batch({"lonlat": LONLAT, "date": DATE})
    got, _ = t.shared_step(b)
    e = t.encoder.embed_views(t.batch_views(b, t.modalities))
    expected = mm_kernel_ntxent(e.flat(), e.sample_ids(), weights, 0.3)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # far apart in space and season, the kernel loss is eq. 4.1
    far = {"lonlat": LONLAT * torch.tensor([10.0, 1.0]), "date": DATE}
    got_far, _ = task(kernel=kernel, sigma_km=0.01, sigma_days=0.01).shared_step(batch(far))
    plain = mm_ntxent(e.flat(), e.sample_ids(), 0.3)
    assert got_far.item() == pytest.approx(plain.item(), rel=1e-5)
    assert got.item() != pytest.approx(plain.item(), rel=1e-3)


def test_missing_or_nan_metadata_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"kernel 'geo' needs meta\['lonlat'\].*no numeric"):
        task().shared_step(batch())
    with pytest.raises(ConfigError, match=r"kernel 'time' needs meta\['date'\].*\['lonlat'\]"):
        task(kernel="time").shared_step(batch({"lonlat": LONLAT}))
    nan = LONLAT.clone()
    nan[2] = float("nan")
    with pytest.raises(ConfigError, match=r"no meta\['lonlat'\] \(NaN\)"):
        task().shared_step(batch({"lonlat": nan}))
    one_group = {"s2": torch.randn(4, 3, 16, 16), "meta": {"lonlat": LONLAT}}
    t = PretrainTask(in_channels={"s2": 3}, backbone="tiny_cnn", loss="kernel_ntxent")
    with pytest.raises(ConfigError, match="two views or two modalities"):
        t.shared_step(one_group)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"kernel": "space"}, r"loss_kwargs.kernel: unknown 'space'; choose one of geo, time"),
        ({"sigma_km": 0}, r"loss_kwargs.sigma_km must be a number > 0"),
        ({"sigma_days": -3}, r"loss_kwargs.sigma_days must be a number > 0"),
        ({"sigma": 1}, r"\['sigma'\] are not options of loss 'kernel_ntxent'"),
    ],
)
def test_options_are_checked_when_the_task_is_built(options, error) -> None:
    with pytest.raises(ConfigError, match=error):
        PretrainTask(loss="kernel_ntxent", loss_kwargs=options)


def test_two_ranks_give_the_single_process_loss_and_gradient() -> None:
    """Each of 2 simulated ranks gathers the other's rows and metadata (as fixed-size
    tensors); the mean of the ranks' shares and of their gradients is the loss and
    gradient of one process on the whole batch. ``all_gather`` with gradients passes
    them back to every rank's rows, as Lightning's ``sync_grads=True`` does."""
    t = task(kernel="geo_time", sigma_km=3.0, sigma_days=60.0)
    g = torch.Generator().manual_seed(2)
    groups, b, d = 3, 4, 5  # global batch of 4 samples, 2 per rank
    z = torch.randn(groups, b, d, generator=g, dtype=torch.float64, requires_grad=True)
    info = {"lonlat": LONLAT.double(), "date": DATE.double()}
    layout = (("s1", 0), ("s1", 1), ("s2", 0))
    whole = EmbeddedViews(tuple(z.unbind(0)), layout, samples=SampleInfo(meta=info))
    ref = t.method.loss(whole, Ranks())
    (ref_grad,) = torch.autograd.grad(ref, z)

    def local(rank: int) -> dict[str, torch.Tensor]:
        part = slice(2 * rank, 2 * rank + 2)
        return {"emb": z[:, part], **{k: v[part] for k, v in info.items()}}

    shares, grads = [], []
    for rank in range(2):
        mine = local(rank)
        parts = [local(r) for r in range(2)]

        def all_gather(x: torch.Tensor, grads: bool, parts=parts, mine=mine) -> torch.Tensor:
            key = next(k for k, v in mine.items() if v.shape == x.shape)
            return torch.stack([p[key] if grads else p[key].detach() for p in parts])

        ranks = Ranks(2, rank, all_gather, lambda n: n * 2)  # both ranks: 6 anchors
        views = EmbeddedViews(
            tuple(mine["emb"].unbind(0)), layout, samples=SampleInfo(meta=dict(list(mine.items())[1:]))
        )
        share = t.method.loss(views, ranks)
        shares.append(share)
        grads.append(torch.autograd.grad(share, z)[0])
    torch.testing.assert_close((shares[0] + shares[1]) / 2, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close((grads[0] + grads[1]) / 2, ref_grad, rtol=1e-10, atol=1e-14)


def test_cli_pretrains_with_the_beyond_config_on_a_generated_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = spec_from_dirs({"s2": SCENE / "s2", "s1": SCENE / "s1"}, chip_size="160m")
    write_manifest(build_manifest(spec), tmp_path / "chips.parquet")
    tiny = [
        "--data.init_args.root", "chips.parquet", "--data.init_args.batch_size", "4",
        "--data.init_args.num_workers", "0", "--model.backbone", "tiny_cnn",
        "--model.projection_dim", "8", "--model.loss_kwargs.sigma_km", "0.3",
        "--trainer.max_steps", "2", "--trainer.max_epochs", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["pretrain", "--config", str(CONFIG), *tiny]) == 0
    ckpt = torch.load(
        tmp_path / "runs/pretrain/version_0/checkpoints/last.ckpt", weights_only=True
    )
    assert ckpt["hyper_parameters"]["loss"] == "kernel_ntxent"
    assert ckpt["hyper_parameters"]["loss_kwargs"]["sigma_km"] == 0.3
