"""What rsmm knows about each dataset is declared once, on its class: the command-line
name (its manifest's), the pixel size of each modality, where its classes come from."""

from __future__ import annotations

import pytest

from rsmm.datasets import (
    DATASETS,
    DFC2020,
    RESISC45,
    SEN12MS,
    BigEarthNet,
    EuroSAT,
    EuroSAT100,
    MeterML,
    MultiModalDataset,
    SyntheticMultiModal,
    dataset_class,
)
from rsmm.datasets.landcover import DFC_CLASSES
from rsmm.errors import UnknownNameError
from rsmm.manifests import load_manifest


def test_the_command_line_names_are_the_manifest_names() -> None:
    assert DATASETS == {
        "meterml": MeterML,
        "dfc2020": DFC2020,
        "sen12ms": SEN12MS,
        "eurosat": EuroSAT,
        "resisc45": RESISC45,
        "bigearthnet": BigEarthNet,
    }
    for name, cls in DATASETS.items():
        assert load_manifest(cls.manifest_name).name == name


@pytest.mark.parametrize("cls", [*DATASETS.values(), SyntheticMultiModal])
def test_every_dataset_declares_the_gsd_of_each_of_its_modalities(
    cls: type[MultiModalDataset],
) -> None:
    assert set(cls.gsd) == set(load_manifest(cls.manifest_name).modalities)
    assert all(v is None or v > 0 for v in cls.gsd.values())


def test_gsd_for_without_a_dataset() -> None:
    assert MeterML.gsd_for(["naip", "s2"]) == {"naip": 1.0, "s2": 10.0}
    assert RESISC45.gsd_for(["rgb"]) == {"rgb": None}  # 0.2-30 m images: not one size
    assert EuroSAT100.gsd_for(["s2"]) == {"s2": 10.0}  # variants inherit it
    assert SyntheticMultiModal.gsd_for(["s1", "naip"], {"naip_scale": 4}) == {
        "s1": 10.0,
        "naip": 2.5,
    }
    assert SyntheticMultiModal.gsd_for(["naip"]) == {"naip": None}


def test_dataset_class_by_command_line_or_class_name() -> None:
    assert dataset_class("meterml") is MeterML
    assert dataset_class("MeterML") is MeterML
    assert dataset_class("SyntheticMultiModal") is SyntheticMultiModal
    with pytest.raises(UnknownNameError, match=r"'landsat'.*dfc2020, eurosat, meterml"):
        dataset_class("landsat")
    with pytest.raises(UnknownNameError):
        dataset_class("UnknownNameError")  # a name in the package that is not a dataset


def test_the_land_cover_manifests_list_the_scheme_dfc2020_narrows() -> None:
    for name in ("dfc2020", "sen12ms"):
        assert load_manifest(name).classes == DFC_CLASSES
