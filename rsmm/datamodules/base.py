"""The base LightningDataModule of rsmm.

Datasets return samples as stored; this datamodule batches them and, once the batch
is on the device, runs the band-aware augmentation pipeline
(:class:`rsmm.augment.BandAugment`) in :meth:`on_after_batch_transfer`. After that
hook a batch is::

    {modality: [view_1, ..., view_V] (each B x C x H x W, normalised), "label": ..., "meta": ...}

with ``V = views`` while training and ``V = 1`` otherwise. Per-band statistics come
from the dataset manifest (by band name), or are estimated on the training split when
the manifest has none.

Subclasses set :attr:`dataset_class` and the names of the official splits, and
override :meth:`_build_splits` when a split must be carved out (DFC2020).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Subset
from torchdata.stateful_dataloader import StatefulDataLoader

from rsmm.datamodules.absence import (
    DroppedModalities,
    check_drop_rates,
    complete_samples,
    may_lack_modalities,
    modality_shapes,
    required_modalities,
)
from rsmm.datamodules.collate import PRESENCE_KEY, SampleCollate
from rsmm.datamodules.splits import stratified_subset
from rsmm.datasets.base import MultiModalDataset
from rsmm.errors import ConfigError
from rsmm.manifests import compute_band_stats

Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def base_dataset(ds: Dataset) -> MultiModalDataset:
    """The :class:`MultiModalDataset` underneath (possibly nested) ``Subset`` wrappers."""
    while isinstance(ds, Subset):
        ds = ds.dataset
    if not isinstance(ds, MultiModalDataset):
        raise TypeError(f"expected an rsmm dataset, got {type(ds).__name__}")
    return ds


def subset_targets(ds: Dataset) -> np.ndarray:
    """``targets()`` of a dataset or of a (nested) ``Subset`` of one."""
    if isinstance(ds, Subset):
        return subset_targets(ds.dataset)[np.asarray(ds.indices)]
    return base_dataset(ds).targets()


# Third-party deprecations that every training run would print and no user can act on:
# torchdata 0.11 calls torch.set_vital (deprecated in torch 2.14) in each __iter__, and
# Lightning 2.6 flattens a stateful loader's state with torch's deprecated LeafSpec.
warnings.filterwarnings("ignore", message="'set_vital' is deprecated")
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


class ResumableDataLoader(StatefulDataLoader):
    """A :class:`~torchdata.stateful_dataloader.StatefulDataLoader` that leaves torch's
    global random generator alone while iterating.

    Its shuffling sampler holds its own generator (seeded once, from torch's global
    generator, when the loader is built), whose state is part of the loader's
    ``state_dict``. The base seed of the worker processes, which a plain DataLoader draws
    from the global generator each time an epoch starts, comes from a generator of the
    loader seeded with ``seed``; with persistent workers it is drawn once and is also part
    of the ``state_dict``. So the global generator, which the augmentation and the model
    draw from, advances the same way in a resumed run as in an uninterrupted one.

    Args:
        dataset: the dataset.
        seed: seed of the generator of the workers' base seeds.
        **kwargs: passed to ``StatefulDataLoader``, except ``generator``, which (when
            given) replaces the generator of the base seeds.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, **kwargs: Any) -> None:
        generator = kwargs.pop("generator", None)
        super().__init__(dataset, **kwargs)
        # set after construction: given to the constructor it would also drive the
        # sampler, whose saved state would then miss the base-seed draws
        if generator is None:
            generator = torch.Generator().manual_seed(int(seed))
        self.generator = generator


class MultiModalDataModule(LightningDataModule):
    """Base of rsmm's datamodules."""

    dataset_class: ClassVar[type[MultiModalDataset]]
    #: Official split names passed to ``dataset_class(split=...)``; ``None`` = absent.
    train_split: ClassVar[str | None] = "train"
    val_split: ClassVar[str | None] = "val"
    test_split: ClassVar[str | None] = "test"
    #: Samples drawn to estimate band statistics when the manifest has none.
    stats_samples: ClassVar[int] = 512

    def __init__(
        self,
        root: str,
        modalities: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        label_fraction: float = 1.0,
        seed: int = 0,
        augment: str = "eval",
        views: int = 1,
        shared_geometry: bool = True,
        pin_memory: bool = False,
        drop_modalities: Mapping[str, float] | None = None,
        complete_only: bool | Sequence[str] = False,
        **dataset_kwargs: Any,
    ) -> None:
        """Configure the datamodule.

        Args:
            root: dataset root directory.
            modalities: modality keys to load (default: the dataset's default).
            bands: optional ``{modality: band names}`` subsets.
            batch_size: samples per training batch.
            eval_batch_size: samples per validation/test batch (default ``batch_size``).
            num_workers: DataLoader worker processes.
            label_fraction: fraction of the labelled training split to use, drawn
                stratified and seeded (every class keeps a sample); 1.0 = all.
            seed: seed of the label-fraction subset (and of carved splits).
            augment: augmentation preset used while training (see
                :mod:`rsmm.augment`); validation and testing always use ``"eval"``.
            views: augmented views per modality while training (2 for SimCLR-style
                pre-training, 1 for fine-tuning).
            shared_geometry: one crop/flip/rotation per sample for all its modalities.
            pin_memory: pin host memory in the loaders (for GPU training).
            drop_modalities: ``{modality: rate}`` simulates absence for experiments:
                each split's samples lose the named modality at that rate (seeded by
                ``seed`` and the split name, the same in every run; see
                :class:`~rsmm.datamodules.absence.DroppedModalities`).
            complete_only: keep only the samples that have every loaded modality
                (``True``) or each of the named ones (a list, e.g. ``[s1]`` to train on
                S1 alone with the samples that have it), once the ``drop_modalities``
                absence is drawn (and with the absence a stack's manifest records):
                setting (a) of the missing-modality experiment, a pipeline that cannot
                use incomplete samples. Every split is filtered, validation and test
                too, as a stack without ``min_modalities`` drops incomplete chips from
                every split: the monitored metrics then measure the model on the
                inputs it was built for. To test such a model on incomplete samples
                too, use a second datamodule without the option. The ``label_fraction``
                is drawn from the kept samples.
            **dataset_kwargs: passed to the dataset class (e.g. ``s2_bands``).
        """
        super().__init__()
        # `modalities` is left out: Lightning refuses datamodule hparams that differ from
        # the task's, and fine-tuning on a subset of the loaded modalities is legitimate;
        # so is `num_classes` (a dataset option of DFC2020 and BigEarthNet), which the
        # fine-tuning task leaves unset until it reads it from the data
        self.save_hyperparameters(ignore=["modalities", "num_classes"])
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if views < 1:
            raise ConfigError(f"views must be >= 1, got {views}")
        if not 0 < label_fraction <= 1:
            raise ConfigError(f"label_fraction must be in (0, 1], got {label_fraction}")
        self.root = root
        self.modalities = None if modalities is None else tuple(modalities)
        self.bands = bands
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.label_fraction = label_fraction
        self.seed = seed
        self.augment_preset = augment
        self.views = views
        self.shared_geometry = shared_geometry
        self.pin_memory = pin_memory
        self.drop_modalities = dict(drop_modalities or {})
        for m, rate in self.drop_modalities.items():  # modalities are checked in setup
            check_drop_rates({m: rate}, [m])
        if not isinstance(complete_only, bool):  # names are checked here when known
            complete_only = required_modalities(complete_only, self.modalities or complete_only)
        self.complete_only = complete_only
        self.dataset_kwargs = dataset_kwargs
        self.datasets: dict[str, Dataset] = {}
        self._stats: Stats | None = None
        self._augments: dict[bool, Any] = {}

    # -- datasets ----------------------------------------------------------------------

    def make_dataset(self, split: str, **kwargs: Any) -> MultiModalDataset:
        """Instantiate :attr:`dataset_class` for one official split."""
        kw = dict(self.dataset_kwargs)
        kw.update(kwargs)
        if self.modalities is not None:
            kw["modalities"] = self.modalities
        if self.bands is not None:
            kw["bands"] = self.bands
        return self.dataset_class(self.root, split=split, **kw)

    def _build_splits(self, stage: str | None) -> dict[str, Dataset]:
        """``{"train"|"val"|"test": dataset}`` before the label fraction is applied."""
        out: dict[str, Dataset] = {}
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
            None: ("train", "val", "test"),
        }[stage]
        names = {"train": self.train_split, "val": self.val_split, "test": self.test_split}
        for key in wanted:
            if names[key] is not None:
                out[key] = self.make_dataset(names[key])
        return out

    def _carved_splits(
        self,
        stage: str | None,
        holdout: Callable[[MultiModalDataset], tuple[np.ndarray, np.ndarray] | None],
    ) -> dict[str, Dataset]:
        """Splits when validation is carved out of the training release.

        ``holdout(release)`` returns ``(train indices, val indices)``, or ``None`` for no
        validation split; the test split is the official :attr:`test_split`.
        """
        out: dict[str, Dataset] = {}
        if stage in ("fit", "validate", None):
            release = self.make_dataset(self.train_split)
            parts = holdout(release)
            if parts is None:
                if stage != "validate":
                    out["train"] = release
            else:
                kept, held = parts
                if stage != "validate":
                    out["train"] = Subset(release, kept.tolist())
                out["val"] = Subset(release, held.tolist())
        if stage in ("test", "predict", None) and self.test_split is not None:
            out["test"] = self.make_dataset(self.test_split)
        return out

    def setup(self, stage: str | None = None) -> None:
        """Build the split datasets, draw the simulated absence, keep the complete
        samples (``complete_only``) and draw the ``label_fraction`` subset of train."""
        for key, ds in self._build_splits(stage).items():
            if self.drop_modalities:
                ds = DroppedModalities(ds, self.drop_modalities, self.seed, key)
            required = required_modalities(self.complete_only, base_dataset(ds).modalities)
            if required:
                ds = complete_samples(ds, required)
                if len(ds) == 0:
                    drawn = f" after drop_modalities {self.drop_modalities}"
                    raise ConfigError(
                        f"complete_only: no sample of the {key} split of "
                        f"{type(self).__name__} (root {self.root}) has "
                        f"{' + '.join(required)}{drawn if self.drop_modalities else ''}; "
                        "lower the drop rates or turn complete_only off"
                    )
            if key == "train" and self.label_fraction < 1:
                idx = self.label_subset(subset_targets(ds))
                ds = Subset(ds, idx.tolist())
            if len(ds) == 0:
                raise ConfigError(
                    f"the {key} split of {type(self).__name__} (root {self.root}) is empty"
                )
            self.datasets[key] = ds

    def label_subset(self, targets: np.ndarray) -> np.ndarray:
        """Indices of the ``label_fraction`` subset of the training targets (seeded,
        stratified, nested: :func:`~rsmm.datamodules.splits.stratified_subset`)."""
        return stratified_subset(targets, self.label_fraction, self.seed)

    @property
    def reference_dataset(self) -> MultiModalDataset:
        """A dataset of this datamodule (for class names, bands, sensors)."""
        if not self.datasets:
            self.setup("fit" if self.train_split else "test")
        return base_dataset(next(iter(self.datasets.values())))

    @property
    def classes(self) -> list[str]:
        return self.reference_dataset.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def negative_class_ids(self) -> tuple[int, ...]:
        """Ids of the dataset's ``negative_classes`` (samples that only serve as
        negatives in contrastive objectives)."""
        ref = self.reference_dataset
        return tuple(ref.classes.index(c) for c in ref.negative_classes if c in ref.classes)

    @property
    def sensors(self) -> dict[str, str]:
        return self.reference_dataset.sensors

    @property
    def band_names(self) -> dict[str, tuple[str, ...]]:
        return dict(self.reference_dataset.bands)

    @property
    def units(self) -> dict[str, str]:
        return self.reference_dataset.units

    @property
    def stats(self) -> Stats:
        """``{modality: (mean, std)}`` per selected band, used for normalisation.

        From the manifest where it has numbers; otherwise estimated on up to
        :attr:`stats_samples` training samples (seeded), with a warning.
        """
        if self._stats is None:
            ref = self.reference_dataset
            stats: Stats = {}
            missing = []
            for m in ref.modalities:
                try:
                    stats[m] = ref.manifest.modality(m).mean_std(ref.bands[m])
                except ValueError:
                    missing.append(m)
            if missing:
                source = self.datasets.get("train") or next(iter(self.datasets.values()))
                rng = np.random.default_rng(self.seed)
                n = min(len(source), self.stats_samples)
                picks = rng.choice(len(source), size=n, replace=False)
                est = compute_band_stats(
                    (source[int(i)] for i in picks), {m: ref.bands[m] for m in missing}
                )
                warnings.warn(
                    f"no published band statistics for {missing} in the "
                    f"{ref.manifest.name} manifest; estimated them on {n} samples",
                    stacklevel=2,
                )
                for m in missing:
                    mean = torch.tensor([est[m][b][0] for b in ref.bands[m]])
                    std = torch.tensor([max(est[m][b][1], 1e-6) for b in ref.bands[m]])
                    stats[m] = (mean, std)
            self._stats = stats
        return self._stats

    def has_test_split(self) -> bool:
        """Whether there is a test split to evaluate on after fine-tuning."""
        return self.test_split is not None

    # -- loaders -------------------------------------------------------------------------

    def _loader(self, key: str, shuffle: bool) -> DataLoader:
        """The loader of split ``key``: shuffled (and resumable mid-epoch) for training.

        Training loaders are a :class:`ResumableDataLoader`: Lightning saves its
        position in every checkpoint and restores it on a resume, so a resumed run sees
        the rest of the interrupted epoch's permutation and then the same permutations
        as an uninterrupted run (see :mod:`rsmm.checkpoints.resume`).
        """
        if key not in self.datasets:
            raise RuntimeError(
                f"{type(self).__name__} has no {key} split (call setup first, or the dataset "
                "has none)"
            )
        options: dict[str, Any] = {
            "batch_size": self.batch_size if shuffle else self.eval_batch_size,
            "shuffle": shuffle,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.num_workers > 0,
            "drop_last": shuffle and len(self.datasets[key]) > self.batch_size,
        }
        options["collate_fn"] = self.collate_fn(key)
        if shuffle:
            return ResumableDataLoader(self.datasets[key], seed=self.seed, **options)
        return DataLoader(self.datasets[key], **options)

    def collate_fn(self, key: str) -> SampleCollate:
        """The loaders' ``collate_fn`` for split ``key``: batches carry ``"presence"``
        when the split's samples may lack a modality (absent entries zero-filled, see
        :mod:`rsmm.datamodules.collate`), and are ``default_collate``'s otherwise."""
        ds = self.datasets[key]
        modalities = base_dataset(ds).modalities
        if not may_lack_modalities(ds):
            return SampleCollate(modalities)
        return SampleCollate(modalities, modality_shapes(ds, key), presence=True)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # -- device-side augmentation ------------------------------------------------------

    def augmentation(self, train: bool) -> Any:
        """The :class:`~rsmm.augment.BandAugment` used for training or evaluation."""
        if train not in self._augments:
            from rsmm.augment import BandAugment

            self._augments[train] = BandAugment(
                sensors=self.sensors,
                stats=self.stats,
                bands=self.band_names,
                units=self.units,
                preset=self.augment_preset if train else "eval",
                views=self.views if train else 1,
                shared_geometry=self.shared_geometry,
            )
        return self._augments[train]

    def apply_augment(self, batch: dict[str, Any], train: bool) -> dict[str, Any]:
        """Run the device-side pipeline on a batch dict (also usable outside Lightning)."""
        aug = self.augmentation(train)
        images = {m: batch[m] for m in self.sensors if m in batch}
        presence = batch.get(PRESENCE_KEY)
        views = aug(images, presence=presence) if presence is not None else aug(images)
        out = {k: v for k, v in batch.items() if k not in images}
        out.update(views)
        return out

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        train = bool(self.trainer is not None and self.trainer.training)
        return self.apply_augment(batch, train)
