"""Missing modalities, two gaps: the datamodules' ``complete_only`` option (setting (a)
of the experiment, used by ``rsmm benchmark missing``), and the pre-training k-NN
monitor (``val/knn_acc``) on samples that lack a modality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from rsmm.benchmarks.missing import SETTINGS, _datamodule
from rsmm.datamodules.absence import DroppedModalities, dataset_presence
from rsmm.datamodules.synthetic import SyntheticDataModule
from rsmm.errors import ConfigError
from rsmm.stacks import LabelSpec, build_manifest, spec_from_dirs, write_manifest
from rsmm.tasks import PretrainTask
from rsmm.tasks.pretrain import knn_accuracy, shared_modality_cosine

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"
SIZES = {"train": 40, "val": 16, "test": 16}


def _synthetic(**kw):
    dm = SyntheticDataModule(num_samples=SIZES, size=8, batch_size=8, **kw)
    dm.setup(None)
    return dm


def _complete_rows(presence: dict[str, np.ndarray], wanted) -> list[int]:
    """The old benchmark filter, written out: rows that have every wanted modality."""
    ok = np.ones(len(next(iter(presence.values()))), dtype=bool)
    for m in wanted:
        ok &= presence[m]
    return [int(i) for i in np.flatnonzero(ok)]


# -- complete_only ------------------------------------------------------------------------


def test_complete_only_keeps_the_complete_samples_of_every_split():
    drops = {"s1": 0.3, "s2": 0.4}
    dm = _synthetic(drop_modalities=drops, complete_only=True)
    plain = _synthetic(drop_modalities=drops)
    for key in ("train", "val", "test"):
        ds = dm.datasets[key]
        assert isinstance(ds, Subset) and isinstance(ds.dataset, DroppedModalities)
        wanted = _complete_rows(dataset_presence(plain.datasets[key]), ("s1", "s2"))
        assert ds.indices == wanted and 0 < len(wanted) < SIZES[key]
        sample = ds[0]
        assert "s1" in sample and "s2" in sample
        assert all(v.all() for v in dataset_presence(ds).values())
    # one modality named: the samples that have it, whatever else they lack
    only_s2 = _synthetic(drop_modalities=drops, complete_only=["s2"])
    presence = dataset_presence(plain.datasets["train"])
    assert only_s2.datasets["train"].indices == _complete_rows(presence, ("s2",))
    assert not dataset_presence(only_s2.datasets["train"])["s1"].all()


def test_complete_only_without_absence_and_with_a_label_fraction():
    dm = _synthetic(complete_only=True)
    assert len(dm.datasets["train"]) == SIZES["train"]  # every sample is complete
    dm = _synthetic(drop_modalities={"s2": 0.5}, complete_only=True, label_fraction=0.5)
    inner = dm.datasets["train"].dataset  # the label fraction is drawn from the kept ones
    assert isinstance(inner, Subset) and isinstance(inner.dataset, DroppedModalities)
    assert len(dm.datasets["train"]) < len(inner) < SIZES["train"]
    kept = dataset_presence(dm.datasets["train"])
    assert kept["s2"].all()


def test_complete_only_errors():
    with pytest.raises(ConfigError, match=r"complete_only: \['naip'\] not among"):
        SyntheticDataModule(modalities=("s1", "s2"), complete_only=["naip"])
    with pytest.raises(ConfigError, match="non-empty list"):
        SyntheticDataModule(complete_only=[])
    with pytest.raises(
        ConfigError,
        match=r"complete_only: no sample of the train split of SyntheticDataModule .* has "
        r"s1 \+ s2 after drop_modalities \{'s1': 0.95, 's2': 0.95\}; lower the drop rates",
    ):
        _synthetic(drop_modalities={"s1": 0.95, "s2": 0.95}, complete_only=True)


@pytest.fixture(scope="module")
def scene_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chip manifest of the small S1 / S2 / NAIP test scene (train and val chips)."""
    spec = spec_from_dirs(
        {m: SCENE / m for m in ("s1", "s2", "naip")},
        chip_size="160m",
        stride="80m",
        split=(0.5, 0.5, 0.0),
        labels=LabelSpec(path=str(SCENE / "labels.tif")),
    )
    return write_manifest(build_manifest(spec), tmp_path_factory.mktemp("complete") / "c.parquet")


def test_benchmark_settings_select_the_same_chips_as_its_former_filter(scene_manifest):
    drops = {"s2": 0.5, "naip": 0.7}
    every = _datamodule(scene_manifest, 0, False, drops)
    every.setup("fit")
    counts = {}
    for name in ("(a) complete only", "(c) s1 only", "(c) s2 only", "(c) naip only"):
        modalities, complete_only, _ = SETTINGS[name]
        dm = _datamodule(scene_manifest, 0, complete_only, drops)
        dm.setup("fit")
        wanted = ("s1", "s2", "naip") if complete_only is True else modalities
        for key in ("train", "val"):
            rows = _complete_rows(dataset_presence(every.datasets[key]), wanted)
            assert dm.datasets[key].indices == rows, (name, key)
        counts[name] = len(dm.datasets["train"])
    assert 0 < counts["(a) complete only"] < counts["(c) s2 only"] < counts["(c) s1 only"]
    assert SETTINGS["(b) all chips, presence"][1] is False


# -- the k-NN monitor ---------------------------------------------------------------------


def _brute_force_shared_cosine(blocks: list[torch.Tensor], presence: torch.Tensor):
    n = presence.shape[0]
    out = torch.full((n, n), float("-inf"))
    for i in range(n):
        for j in range(n):
            both = [m for m in range(len(blocks)) if presence[i, m] and presence[j, m]]
            if both:
                a = torch.cat([blocks[m][i] for m in both])
                b = torch.cat([blocks[m][j] for m in both])
                out[i, j] = F.cosine_similarity(a, b, dim=0)
    return out


def test_shared_modality_cosine_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    blocks = [torch.randn(7, 3, generator=g), torch.randn(7, 5, generator=g)]
    presence = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 1]]).bool()
    got = shared_modality_cosine(torch.cat(blocks, 1), presence, (3, 5))
    torch.testing.assert_close(got, _brute_force_shared_cosine(blocks, presence))
    # every modality present: the plain cosine of the whole features
    full = torch.ones(7, 2, dtype=torch.bool)
    f = F.normalize(torch.cat(blocks, 1), dim=1)
    torch.testing.assert_close(shared_modality_cosine(torch.cat(blocks, 1), full, (3, 5)), f @ f.T)


def test_knn_accuracy_with_presence():
    g = torch.Generator().manual_seed(1)
    s1, s2 = torch.randn(30, 4, generator=g), torch.randn(30, 6, generator=g)
    labels = torch.randint(0, 3, (30,), generator=g)
    far = s2 * 100 + 3  # S2 features far larger than S1's: they would dominate
    feats = torch.cat([s1, far], 1)
    full = torch.ones(30, 2, dtype=torch.bool)
    assert knn_accuracy(feats, labels, 5, full, (4, 6)) == knn_accuracy(feats, labels, 5)
    # no sample has s2: exactly the k-NN on the S1 features alone
    no_s2 = torch.tensor([[True, False]]).repeat(30, 1)
    assert knn_accuracy(feats, labels, 5, no_s2, (4, 6)) == knn_accuracy(s1, labels, 5)
    # a sample without any modality is skipped, as an unlabelled one
    nothing = no_s2.clone()
    nothing[4] = False
    unlabelled = labels.clone()
    unlabelled[4] = -1
    assert knn_accuracy(feats, labels, 5, nothing, (4, 6)) == knn_accuracy(s1, unlabelled, 5)
    # two groups sharing no modality: each sample's neighbours come from its own group
    split = torch.zeros(30, 2, dtype=torch.bool)
    split[:15, 0] = True
    split[15:, 1] = True
    groups = knn_accuracy(s1[:15], labels[:15], 5) + knn_accuracy(far[15:], labels[15:], 5)
    assert knn_accuracy(feats, labels, 5, split, (4, 6)) == pytest.approx(groups / 2)
    # a sample that shares no modality with any other is a miss
    alone = no_s2.clone()
    alone[0] = torch.tensor([False, True])
    miss = knn_accuracy(feats[1:], labels[1:], 5, alone[1:], (4, 6)) * 29 / 30
    assert knn_accuracy(feats, labels, 5, alone, (4, 6)) == pytest.approx(miss)


def _task() -> PretrainTask:
    torch.manual_seed(0)
    task = PretrainTask(
        backbone="tiny_cnn",
        in_channels={"s1": 2, "s2": 3},
        projection_dim=8,
        hidden_dim=16,
        knn_k=3,
    )
    return task.eval()


def _batch(views: int, lacks_s2: list[int] | None) -> dict:
    g = torch.Generator().manual_seed(2)
    batch: dict = {
        m: [torch.randn(8, c, 8, 8, generator=g) for _ in range(views)]
        for m, c in (("s1", 2), ("s2", 3))
    }
    batch["label"] = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    if lacks_s2 is not None:
        present = torch.ones(8, dtype=torch.bool)
        present[lacks_s2] = False
        batch["presence"] = {"s1": torch.ones(8, dtype=torch.bool), "s2": present}
        for v in batch["s2"]:  # not zero-filled: whatever absent rows hold is never read
            v[~present] = 1e3
    return batch


def _monitor(task: PretrainTask, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """The features the monitor keeps for ``batch`` and what it logs."""
    logged: dict[str, float] = {}
    task.log = lambda name, value, **kw: logged.__setitem__(name, value)  # type: ignore[method-assign]
    task.all_gather = lambda t, **kw: t  # type: ignore[method-assign]  # one process
    with torch.no_grad():
        task.validation_step(batch, 0)
        feats = task._val_feats[0].clone()
        task.on_validation_epoch_end()
    return feats, logged


@pytest.mark.parametrize("views", [1, 2])
def test_knn_monitor_uses_the_present_modalities_only(views: int) -> None:
    task = _task()
    lacks = [1, 4, 6]
    batch = _batch(views, lacks)
    feats, logged = _monitor(task, batch)
    assert "val/loss" in logged and 0.0 <= logged["val/knn_acc"] <= 1.0
    with torch.no_grad():  # independently: each modality's encoder on its present rows
        s1 = task.encoder.backbones["s1"](batch["s1"][0])
        has = batch["presence"]["s2"]
        s2 = task.encoder.backbones["s2"](batch["s2"][0][has])
    w1 = s1.shape[1]
    torch.testing.assert_close(feats[:, :w1], s1)
    torch.testing.assert_close(feats[has, w1:], s2)
    independent = torch.cat([s1, torch.zeros(8, s2.shape[1]).index_put((has,), s2)], 1)
    both = torch.stack([torch.ones(8, dtype=torch.bool), has], 1)
    widths = (w1, s2.shape[1])
    assert logged["val/knn_acc"] == knn_accuracy(independent, batch["label"], 3, both, widths)
    # the rows without S2 are compared on S1 alone: their k-NN accuracy, with every other
    # sample lacking S2 too, is the one of the S1 features; with one view such a batch
    # has no positive pair, so no validation loss (instead of the objective's error)
    only_s1 = _batch(views, list(range(8)))
    _, logged = _monitor(task, only_s1)
    assert logged["val/knn_acc"] == knn_accuracy(s1, batch["label"], 3)
    assert ("val/loss" in logged) == (views == 2)


@pytest.mark.parametrize("views", [1, 2])
def test_knn_monitor_of_a_fully_present_batch_is_unchanged(views: int) -> None:
    task = _task()
    batch = _batch(views, None)
    feats, logged = _monitor(task, batch)
    acc = logged["val/knn_acc"]
    with torch.no_grad():  # the features before: the concatenated pooled features
        before = torch.cat([task.encoder.backbones[m](batch[m][0]) for m in ("s1", "s2")], 1)
    torch.testing.assert_close(feats, before)
    assert acc == knn_accuracy(before, batch["label"], 3)
    # the same batch flagged as fully present gives the same value
    flagged = _batch(views, [])
    assert _monitor(task, flagged)[1]["val/knn_acc"] == acc
