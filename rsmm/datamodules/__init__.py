"""LightningDataModules of rsmm's datasets."""

from rsmm.datamodules.base import MultiModalDataModule
from rsmm.datamodules.bigearthnet import BigEarthNetDataModule
from rsmm.datamodules.dfc2020 import DFC2020DataModule
from rsmm.datamodules.eurosat import (
    EuroSAT100DataModule,
    EuroSATDataModule,
    EuroSATSpatialDataModule,
)
from rsmm.datamodules.meterml import MeterMLDataModule
from rsmm.datamodules.multilabel import multilabel_subset
from rsmm.datamodules.resisc45 import RESISC45DataModule
from rsmm.datamodules.sen12ms import SEN12MSDataModule
from rsmm.datamodules.splits import stratified_split, stratified_subset
from rsmm.datamodules.stacks import CoRegisteredStackDataModule
from rsmm.datamodules.streaming import ShardDataModule
from rsmm.datamodules.synthetic import SyntheticDataModule
from rsmm.datamodules.torchvision_sets import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    CUB200DataModule,
    STL10DataModule,
)

__all__ = [
    "BigEarthNetDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "CUB200DataModule",
    "CoRegisteredStackDataModule",
    "DFC2020DataModule",
    "EuroSAT100DataModule",
    "EuroSATDataModule",
    "EuroSATSpatialDataModule",
    "MeterMLDataModule",
    "MultiModalDataModule",
    "RESISC45DataModule",
    "SEN12MSDataModule",
    "STL10DataModule",
    "ShardDataModule",
    "SyntheticDataModule",
    "multilabel_subset",
    "stratified_split",
    "stratified_subset",
]
