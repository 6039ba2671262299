"""rsmm's datasets: one key per modality, values as stored.

What rsmm knows about a dataset is declared once, on its class:

* ``manifest_name``: its packaged manifest (bands, units, statistics, class names) and
  its name on the command line (:data:`DATASETS`, ``rsmm manifest stats <name>``);
* ``gsd``: the pixel size of each modality's arrays, recorded in checkpoints and
  exports (:meth:`MultiModalDataset.training_gsd`; a user stack takes it from its chip
  index, the synthetic data from its ``naip_scale``);
* ``classes``: the manifest's ``classes`` (index = label id); DFC2020 narrows them to
  its ``num_classes`` scheme (:mod:`rsmm.datasets.landcover`), a user stack reads them
  from its chip index.
"""

from rsmm.datasets.base import MultiModalDataset
from rsmm.datasets.bigearthnet import BigEarthNet
from rsmm.datasets.cub200 import CUB200
from rsmm.datasets.dfc2020 import DFC2020
from rsmm.datasets.eurosat import EuroSAT, EuroSAT100, EuroSATSpatial
from rsmm.datasets.meterml import MeterML
from rsmm.datasets.resisc45 import RESISC45
from rsmm.datasets.sen12ms import SEN12MS
from rsmm.datasets.stacks import CoRegisteredStack
from rsmm.datasets.synthetic import SyntheticMultiModal
from rsmm.datasets.torchvision_sets import CIFAR10, CIFAR100, STL10
from rsmm.errors import DatasetFileError, DatasetNotFoundError, UnknownNameError

#: The public benchmark datasets by their command-line name (their manifest's name).
DATASETS: dict[str, type[MultiModalDataset]] = {
    cls.manifest_name: cls for cls in (MeterML, DFC2020, SEN12MS, EuroSAT, RESISC45, BigEarthNet)
}


def dataset_class(name: str) -> type[MultiModalDataset]:
    """The dataset class of a command-line name (``"meterml"``) or a class name
    (``"MeterML"``, as checkpoints record it).

    Raises:
        UnknownNameError: naming the known datasets.
    """
    if name in DATASETS:
        return DATASETS[name]
    cls = globals().get(name)
    if isinstance(cls, type) and issubclass(cls, MultiModalDataset):
        return cls
    raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")


__all__ = [
    "CIFAR10",
    "CIFAR100",
    "CUB200",
    "DATASETS",
    "DFC2020",
    "RESISC45",
    "SEN12MS",
    "STL10",
    "BigEarthNet",
    "CoRegisteredStack",
    "DatasetFileError",
    "DatasetNotFoundError",
    "EuroSAT",
    "EuroSAT100",
    "EuroSATSpatial",
    "MeterML",
    "MultiModalDataset",
    "SyntheticMultiModal",
    "dataset_class",
]
