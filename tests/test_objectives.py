"""The registry of pre-training objectives and the embedded views they all read."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from rsmm.datamodules import MeterMLDataModule
from rsmm.errors import ConfigError
from rsmm.losses import mm_ntxent, mm_supcon
from rsmm.models import MultiModalEncoder
from rsmm.models.views import EmbeddedViews, SampleInfo, negative_samples
from rsmm.tasks import FinetuneTask, PretrainTask
from rsmm.tasks.objectives import OBJECTIVES, Objective, Ranks, objective_names
from rsmm.tasks.objectives.contrastive import ContrastiveObjective

METERML = Path(__file__).parent / "data" / "meterml"


def tiny_task(loss: str, **kw) -> PretrainTask:
    kw.setdefault("loss_kwargs", {"moco": {"queue_size": 16}}.get(loss))
    return PretrainTask(
        in_channels={"s1": 2, "s2": 3},
        backbone="tiny_cnn",
        projection_dim=8,
        hidden_dim=16,
        loss=loss,
        **kw,
    )


def batch(b: int = 6, meta: bool = False) -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    out = {
        "s1": [torch.randn(b, 2, 16, 16, generator=g) for _ in range(2)],
        "s2": [torch.randn(b, 3, 16, 16, generator=g)],
        "label": torch.tensor([0, 1, 2, 1, 0, 2][:b]),
    }
    if meta:  # chip centres 0-4 km apart and dates (kernel_ntxent reads them)
        out["meta"] = {
            "lonlat": torch.tensor([[5.0 + 0.01 * i, 45.0] for i in range(b)]),
            "date": torch.arange(b, dtype=torch.float32) * 20,
        }
    return out


# -- the registry ----------------------------------------------------------------------------


def test_registry_lists_every_objective_once() -> None:
    assert list(OBJECTIVES) == [
        "ntxent", "supcon", "kernel_ntxent",
        "ot_sample", "ot_feature", "coot", "ssw_ssl", "sw_ssl", "align_uniform",
        "infonce_alignment", "gca_ince", "gca_rince", "gca_uot",
        "moco", "byol", "barlow_twins", "vicreg", "mmcr", "hyp_ntxent",
    ]  # fmt: skip
    assert all(cls.name == name for name, cls in OBJECTIVES.items())
    assert objective_names(ContrastiveObjective) == (
        "ntxent", "supcon", "kernel_ntxent", "hyp_ntxent"
    )
    temperature = [n for n, c in OBJECTIVES.items() if c.uses_temperature]
    assert temperature == [
        "ntxent", "supcon", "kernel_ntxent", "infonce_alignment", "gca_ince", "gca_rince",
        "gca_uot", "moco", "hyp_ntxent",
    ]  # fmt: skip


def test_unknown_objective_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="loss: unknown 'simsiam'; choose one of") as err:
        PretrainTask(loss="simsiam")
    assert all(name in str(err.value) for name in OBJECTIVES)


@pytest.mark.parametrize("loss", list(OBJECTIVES))
def test_unknown_option_names_it_and_lists_the_valid_ones(loss: str) -> None:
    cls = OBJECTIVES[loss]
    with pytest.raises(ConfigError, match=r"loss_kwargs: .*\['nope'\]") as err:
        PretrainTask(loss=loss, loss_kwargs={"nope": 1})
    message = str(err.value)
    if cls.defaults:
        assert all(option in message for option in cls.defaults)
    else:
        assert f"loss {loss!r} takes no options" in message
    # checked before anything is built: no in_channels, no encoder
    PretrainTask(loss=loss, loss_kwargs=dict(cls.defaults) or None)


@pytest.mark.parametrize("loss", list(OBJECTIVES))
def test_every_objective_runs_one_step(loss: str) -> None:
    torch.manual_seed(0)
    task = tiny_task(loss)
    task.method.before_step(task.encoder, step=0, total_steps=4)
    value, feats = task.shared_step(batch(meta=True))
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert all(p.grad is not None for p in task.encoder.backbones.parameters())
    assert feats["s2"].shape == (6, 16) and feats["s1"].shape == (12, 16)


@pytest.mark.parametrize("loss", (*objective_names(ContrastiveObjective), "ot_sample"))
def test_objectives_that_pair_groups_refuse_a_single_group(loss: str) -> None:
    task = PretrainTask(in_channels={"s2": 3}, backbone="tiny_cnn", projection_dim=8, loss=loss)
    one = {"s2": torch.randn(4, 3, 16, 16), "label": torch.arange(4)}
    with pytest.raises(ConfigError, match=r"no anchor has a positive|two views or two modalities"):
        task.shared_step(one)


def test_an_objective_is_one_class_and_one_registry_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class MeanCosine(Objective):
        """Minus the mean cosine of the two first groups (a toy)."""

        name = "mean_cosine"
        defaults: ClassVar[dict[str, float]] = {"scale": 1.0}

        def loss(self, views: EmbeddedViews, ranks: Ranks) -> torch.Tensor:
            a, b = views.unit()[:2]
            return -self.options["scale"] * (a * b).sum(1).mean()

    monkeypatch.setitem(OBJECTIVES, "mean_cosine", MeanCosine)
    task = tiny_task("mean_cosine", loss_kwargs={"scale": 2.0})
    value, _ = task.shared_step(batch())
    e = task.encoder.embed_views(task.batch_views(batch(), task.modalities))
    a, b = e.unit()[:2]
    assert value.item() == pytest.approx((-2.0 * (a * b).sum(1).mean()).item(), rel=1e-6)
    with pytest.raises(ConfigError, match=r"\['size'\] are not options of loss 'mean_cosine'"):
        tiny_task("mean_cosine", loss_kwargs={"size": 2.0})


def test_dense_settings_are_checked_when_configured() -> None:
    with pytest.raises(ConfigError, match=r"dense_kwargs: \['epsilon'\] .*eps, n_iters, rho"):
        PretrainTask(dense="sinkhorn", dense_kwargs={"epsilon": 0.1})
    with pytest.raises(ConfigError, match="dense_weight must be in"):
        PretrainTask(dense="sinkhorn", dense_weight=1.5)
    with pytest.raises(ConfigError, match="dense matching is not combined with loss 'vicreg'"):
        PretrainTask(loss="vicreg", dense="argmax")


# -- the embedded views ----------------------------------------------------------------------


def old_flattening(enc: MultiModalEncoder, views: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and group ids as ``embed_views`` built them before EmbeddedViews."""
    zs, groups, g = [], [], 0
    for m, vs in views.items():
        f = enc.backbones[m](torch.cat(vs))
        zs.append(F.normalize(enc.projectors[m](f).float(), dim=1))
        groups.append(torch.arange(g, g + len(vs)).repeat_interleave(vs[0].shape[0]))
        g += len(vs)
    return torch.cat(zs), torch.cat(groups)


def test_embedded_views_rows_follow_the_old_order() -> None:
    torch.manual_seed(0)
    enc = MultiModalEncoder({"s1": 2, "s2": 3}, backbone="tiny_cnn", projection_dim=8).eval()
    views = {k: v for k, v in batch(5).items() if k != "label"}
    e = enc.embed_views(views)
    z, groups = old_flattening(enc, views)
    torch.testing.assert_close(e.flat(), z)
    assert torch.equal(e.groups(), groups)
    assert e.layout == (("s1", 0), ("s1", 1), ("s2", 0))
    assert e.sample_ids().tolist() == list(range(5)) * 3
    assert torch.equal(e.stacked(), z.reshape(3, 5, 8))
    assert e.pairs() == [(0, 1), (0, 2), (1, 2)]
    assert e.dense is None and e.samples.labels is None and e.samples.negative is None


def test_embedded_views_never_read_values_back() -> None:
    """On the meta device every read of a value fails: the row structure and the
    gathering come from shapes alone (no device sync)."""
    enc = MultiModalEncoder({"s1": 2, "s2": 3}, backbone="tiny_cnn", projection_dim=8).to("meta")
    b = 4
    views = {
        "s1": [torch.empty(b, 2, 16, 16, device="meta")] * 2,
        "s2": [torch.empty(b, 3, 16, 16, device="meta")],
    }
    samples = SampleInfo(
        labels=torch.empty(b, dtype=torch.long, device="meta"),
        negative=torch.empty(b, dtype=torch.bool, device="meta"),
        presence={m: torch.empty(b, dtype=torch.bool, device="meta") for m in views},
        meta={"lonlat": torch.empty(b, 2, device="meta")},
    )
    e = enc.embed_views(views, samples=samples)
    assert e.flat().shape == (12, 8)
    for rows in (e.sample_ids(), e.groups(), e.row_labels(), e.anchor_mask(), e.present_rows()):
        assert rows.shape == (12,)
    g = e.gathered(lambda t, grads: torch.stack([t, t, t]), rank=1)
    assert (g.batch_size, g.world_size, g.rank) == (12, 3, 1)
    assert g.local_rows().shape == (12,) and g.flat().shape == (36, 8)
    assert g.samples.meta["lonlat"].shape == (12, 2)
    with pytest.raises(Exception, match="meta"):
        int(e.groups().max())  # what the old code did


def test_gathered_rows_and_local_rows() -> None:
    """Two ranks of 2 samples: each group holds rank 0's rows, then rank 1's."""
    z = [torch.randn(2, 4) for _ in range(4)]  # rank 0: groups 0, 1; rank 1: groups 0, 1
    mine = EmbeddedViews((z[2], z[3]), (("s1", 0), ("s2", 0)))

    def all_gather(t: torch.Tensor, grads: bool) -> torch.Tensor:
        return torch.stack([torch.stack([z[0], z[1]]), t])  # W x G x B x d

    g = mine.gathered(all_gather, rank=1)
    torch.testing.assert_close(g.embeddings[0], torch.cat([z[0], z[2]]))
    torch.testing.assert_close(g.embeddings[1], torch.cat([z[1], z[3]]))
    assert g.local_rows().tolist() == [2, 3, 6, 7]
    torch.testing.assert_close(g.flat()[g.local_rows()], mine.flat())
    assert g.sample_ids().tolist() == [0, 1, 2, 3, 0, 1, 2, 3]


# -- the negative-only rule ------------------------------------------------------------------


def test_negative_samples_of_single_and_multi_hot_labels() -> None:
    labels = torch.tensor([0, 6, 3, 6, 2])
    assert negative_samples(labels, (6,)).tolist() == [False, True, False, True, False]
    assert negative_samples(labels, (6, 2)).tolist() == [False, True, False, True, True]
    assert negative_samples(labels, ()) is None and negative_samples(None, (6,)) is None
    hot = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    assert negative_samples(hot, (6,)).tolist() == [False, True, False]


@pytest.mark.parametrize("loss", ["ntxent", "supcon"])
def test_contrastive_objectives_read_the_negative_samples(loss: str) -> None:
    task = tiny_task(loss, temperature=0.3)
    task.eval()
    task.negative_classes = (2,)
    got, _ = task.shared_step(batch())
    e = task.encoder.embed_views(task.batch_views(batch(), task.modalities))
    labels = batch()["label"].repeat(3)
    mask = labels != 2
    if loss == "ntxent":
        expected = mm_ntxent(e.flat(), e.sample_ids(), 0.3, anchor_mask=mask)
    else:
        expected = mm_supcon(e.flat(), e.sample_ids(), labels, 0.3, anchor_mask=mask)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    task.negative_classes = ()
    assert task.shared_step(batch())[0].item() != pytest.approx(got.item())


def test_finetune_supcon_reads_the_negative_samples() -> None:
    torch.manual_seed(0)
    ft = FinetuneTask(
        in_channels={"s1": 2, "s2": 3},
        backbone="tiny_cnn",
        num_classes=3,
        alpha=0.5,
        projection_dim=8,
        hidden_dim=16,
        temperature=0.3,
    )
    ft.eval()
    ft.negative_classes = (1,)
    b = batch()
    loss, logits = ft._loss(b)
    e = ft.encoder.embed_views(ft.batch_views(b, ft.modalities))
    labels = b["label"].repeat(3)
    sup = mm_supcon(e.flat(), e.sample_ids(), labels, 0.3, anchor_mask=labels != 1)
    cls = F.cross_entropy(logits.float(), b["label"])
    assert loss.item() == pytest.approx((0.5 * sup + 0.5 * cls).item(), rel=1e-5)


def test_negative_classes_come_from_the_dataset(tmp_path: Path) -> None:
    warnings.filterwarnings("ignore", message=".*estimated them.*")
    dm = MeterMLDataModule(str(METERML), modalities=["s1"], batch_size=4)
    dm.setup("fit")
    assert dm.negative_class_ids == (6,) == (dm.negative_class,)

    class FakeTrainer:
        datamodule = dm

    task = PretrainTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16)
    task._trainer = FakeTrainer()  # setup() reads the datamodule through the trainer
    task.setup("fit")
    assert task.negative_classes == (6,)
    # the former option still works; where it conflicts it wins, with a warning
    same = PretrainTask(backbone="tiny_cnn", projection_dim=8, negative_class=6)
    same._trainer = FakeTrainer()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        same.setup("fit")
    assert same.negative_classes == (6,)
    other = PretrainTask(backbone="tiny_cnn", projection_dim=8, negative_class=3)
    other._trainer = FakeTrainer()
    with pytest.warns(FutureWarning, match="negative_class=3 differs"):
        other.setup("fit")
    assert other.negative_classes == (3,)
    # an objective without the rule says so
    vicreg = PretrainTask(backbone="tiny_cnn", projection_dim=8, loss="vicreg")
    vicreg._trainer = FakeTrainer()
    with pytest.warns(UserWarning, match="'vicreg' does not apply the negative-only rule"):
        vicreg.setup("fit")


def test_single_rank_sees_no_other_rank() -> None:
    t = torch.randn(3, 2)
    ranks = Ranks()
    assert not ranks.distributed and ranks.gather(t, True) is t and ranks.sum(t) is t
    e = EmbeddedViews((t,), (("s1", 0),))
    assert ranks.global_views(e) is e and e.local_rows() is None


def test_losses_package_exports_the_losses() -> None:
    import rsmm.losses
    from rsmm.losses import contrastive, ssl

    assert mm_ntxent is contrastive.mm_ntxent and mm_supcon is contrastive.mm_supcon
    assert rsmm.losses.mmcr_loss is ssl.mmcr_loss
    assert all(hasattr(rsmm.losses, name) for name in rsmm.losses.__all__)
    assert all(hasattr(rsmm.losses.ot, name) for name in rsmm.losses.ot.__all__)
