"""rsmm's datasets: one key per modality, values as stored."""

from rsmm.datasets.base import MultiModalDataset
from rsmm.datasets.dfc2020 import DFC2020
from rsmm.datasets.eurosat import EuroSAT, EuroSAT100, EuroSATSpatial
from rsmm.datasets.meterml import MeterML
from rsmm.datasets.resisc45 import RESISC45
from rsmm.datasets.sen12ms import SEN12MS
from rsmm.datasets.stacks import CoRegisteredStack
from rsmm.datasets.synthetic import SyntheticMultiModal
from rsmm.errors import DatasetFileError, DatasetNotFoundError

__all__ = [
    "DFC2020",
    "RESISC45",
    "SEN12MS",
    "CoRegisteredStack",
    "DatasetFileError",
    "DatasetNotFoundError",
    "EuroSAT",
    "EuroSAT100",
    "EuroSATSpatial",
    "MeterML",
    "MultiModalDataset",
    "SyntheticMultiModal",
]
