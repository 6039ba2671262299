"""Datamodule streaming shards (:mod:`rsmm.datasets.shards`) with LitData.

The training loader is a ``litdata.StreamingDataLoader`` over a
``litdata.StreamingDataset``: chunks are shuffled and dealt to the ranks (every rank
gets the same number of samples, ``drop_last``: uneven counts hang DDP) and to the
loader workers, read from a local folder or streamed from an object store with a local
chunk cache. An epoch is whole batches: the ``len % batch_size`` samples left over
(others each epoch) are dropped, as by the stack datamodule's training loader. Its
position is part of Lightning's checkpoints (the loader's ``state_dict``), so a run
resumes mid-epoch with the samples it had not seen. Batches
are those of :class:`~rsmm.datamodules.stacks.CoRegisteredStackDataModule` on the same
chips, augmented on the device the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset, Subset

from rsmm.datamodules.base import MultiModalDataModule
from rsmm.datamodules.collate import SampleCollate
from rsmm.datasets.base import MultiModalDataset
from rsmm.datasets.shards import MissingShardsError, ShardDataset
from rsmm.errors import ConfigError

# Lightning warns that an IterableDataset's __len__ may be wrong with several workers;
# LitData deals the samples to the workers itself, so it is right
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")


def collate_function(dataset: ShardDataset) -> SampleCollate:
    """The collate function of a shard dataset's loaders (rsmm's batch contract, see
    :mod:`rsmm.datamodules.collate`): batches carry ``"presence"`` when the dataset may
    lack modalities, a modality no sample of a batch has taking the shape the shards
    recorded (with the dataset's number of bands)."""
    modalities = tuple(dataset.modalities)
    if not dataset.may_lack_modalities:
        return SampleCollate(modalities)
    shapes = dataset.info.get("shapes", {})
    shapes = {m: (len(dataset.bands[m]), *shapes[m][1:]) for m in modalities}
    return SampleCollate(modalities, shapes, presence=True)


class ShardDataModule(MultiModalDataModule):
    """Train / val / test samples streamed from shards written by ``rsmm manifest shard``.

    Args:
        root: the folder (or ``s3://`` / ``gs://`` URI) of the split folders
            (``train``, ``val``, ``test``); a missing val or test folder is left out.
        modalities: modalities to load (default: all of the shards).
        bands: optional ``{modality: band names}`` subsets.
        cache_dir: local chunk cache for remote shards (default LitData's).
        storage_options: object-store credentials and options, as LitData takes them
            (e.g. ``{"key": ..., "secret": ..., "endpoint_url": ...}`` for S3).
        **kwargs: see :class:`~rsmm.datamodules.base.MultiModalDataModule`.
    """

    dataset_class = ShardDataset

    def __init__(
        self,
        root: str,
        modalities: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        cache_dir: str | None = None,
        storage_options: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root=root,
            modalities=modalities,
            bands=bands,
            cache_dir=cache_dir,
            storage_options=storage_options,
            **kwargs,
        )
        if self.drop_modalities:  # a stream reads records, not the wrapped samples
            raise ConfigError(
                f"drop_modalities {self.drop_modalities}: ShardDataModule streams the "
                "shards' samples as written and cannot drop modalities from them; simulate "
                "absence in the datamodule the shards were written from, or train on that"
            )

    def make_dataset(self, split: str, **kwargs: Any) -> MultiModalDataset | None:
        """The split's shards; ``None`` for a val or test split with none written."""
        try:
            return super().make_dataset(split, **kwargs)
        except MissingShardsError:
            if split == self.train_split:
                raise
            return None

    def _build_splits(self, stage: str | None) -> dict[str, Dataset]:
        splits = {k: v for k, v in super()._build_splits(stage).items() if v is not None}
        for ds in splits.values():
            if self.complete_only and not ds.presence_known:
                raise ConfigError(
                    f"complete_only: the shards at {ds.root} may lack modalities but do not "
                    "record which samples do (written by an older rsmm); write them again "
                    "with rsmm manifest shard"
                )
        return splits

    def has_test_split(self) -> bool:
        if "test" not in self.datasets:
            self.setup("test")
        return "test" in self.datasets

    def val_dataloader(self) -> DataLoader | list:
        """The val shards; an empty list (no validation) when none were written."""
        if self.datasets and "val" not in self.datasets:
            return []
        return super().val_dataloader()

    def _loader(self, key: str, shuffle: bool) -> DataLoader:
        """A ``StreamingDataLoader``: shuffled by chunk, equal counts per rank and
        resumable for training; in order for evaluation."""
        from litdata import StreamingDataLoader

        if key not in self.datasets:
            raise RuntimeError(f"{type(self).__name__} has no {key} split (call setup first)")
        ds, indices = self.datasets[key], None
        while isinstance(ds, Subset):  # complete_only, then the label fraction
            indices = [ds.indices[i] for i in indices] if indices is not None else ds.indices
            ds = ds.dataset
        indices = None if indices is None else [int(i) for i in indices]
        assert isinstance(ds, ShardDataset)
        count = len(indices) if indices is not None else len(ds)
        if shuffle and count < self.batch_size:  # drop_last would give an empty epoch
            raise ConfigError(
                f"the {key} shards of {self.root} hold {count} samples, fewer than one batch "
                f"(--data.init_args.batch_size {self.batch_size}): every training epoch would "
                "be empty; lower the batch size"
            )
        stream = ds.streaming(  # integer records are converted while collated
            shuffle=shuffle, drop_last=shuffle, seed=self.seed, indices=indices, convert=False
        )
        return StreamingDataLoader(
            stream,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=collate_function(ds),
        )
