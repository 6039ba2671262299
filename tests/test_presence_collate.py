"""collate_samples: absent modalities are zero-filled and flagged in batch["presence"]."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import default_collate

from rsmm.datamodules.collate import SampleCollate, collate_samples


def _sample(i: int, mods: tuple[str, ...], multilabel: bool = False) -> dict:
    s: dict = {}
    if "s1" in mods:
        s["s1"] = torch.full((2, 4, 4), float(i))
    if "s2" in mods:
        s["s2"] = torch.full((3, 2, 2), 10.0 + i)
    s["label"] = (
        torch.tensor([1.0, 0.0, float(i % 2)]) if multilabel else torch.tensor(i, dtype=torch.int64)
    )
    s["meta"] = {
        "id": f"chip{i}",
        "nodata": {m: i for m in mods},
        "lonlat": torch.tensor([float(i), -float(i)]),
    }
    return s


def test_absent_modality_is_zero_filled_and_flagged():
    samples = [_sample(0, ("s1", "s2")), _sample(1, ("s1",)), _sample(2, ("s2",))]
    batch = collate_samples(samples, ("s1", "s2"))
    assert batch["s1"].shape == (3, 2, 4, 4) and batch["s1"].dtype == torch.float32
    assert batch["s2"].shape == (3, 3, 2, 2)
    assert batch["presence"]["s1"].tolist() == [True, True, False]
    assert batch["presence"]["s2"].tolist() == [True, False, True]
    assert batch["presence"]["s1"].dtype == torch.bool
    assert torch.equal(batch["s1"][2], torch.zeros(2, 4, 4))
    assert torch.equal(batch["s2"][1], torch.zeros(3, 2, 2))
    assert torch.equal(batch["s2"][2], torch.full((3, 2, 2), 12.0))
    assert batch["label"].tolist() == [0, 1, 2] and batch["label"].dtype == torch.int64
    # meta: the nodata count of an absent modality is 0, strings and tensors collate
    assert batch["meta"]["id"] == ["chip0", "chip1", "chip2"]
    assert batch["meta"]["nodata"]["s2"].tolist() == [0, 0, 2]
    assert batch["meta"]["nodata"]["s1"].tolist() == [0, 1, 0]
    assert batch["meta"]["lonlat"].shape == (3, 2)


def test_full_batch_matches_default_collate_and_has_no_presence_when_not_asked():
    samples = [_sample(i, ("s1", "s2"), multilabel=True) for i in range(3)]
    batch = collate_samples(samples, ("s1", "s2"), presence=False)
    ref = default_collate(samples)
    assert "presence" not in batch
    assert set(batch) == set(ref)
    for k in ("s1", "s2", "label"):
        assert torch.equal(batch[k], ref[k])
    assert batch["label"].dtype == torch.float32 and batch["label"].shape == (3, 3)
    assert batch["meta"]["id"] == ref["meta"]["id"]
    # presence=True on a full batch: all True
    flagged = collate_samples(samples)
    assert {m: v.tolist() for m, v in flagged["presence"].items()} == {
        "s1": [True] * 3,
        "s2": [True] * 3,
    }


def test_modality_absent_from_the_whole_batch_uses_the_given_shape():
    samples = [_sample(i, ("s1",)) for i in range(2)]
    with pytest.raises(ValueError, match="'s2'"):
        collate_samples(samples, ("s1", "s2"))
    batch = collate_samples(samples, ("s1", "s2"), shapes={"s2": (3, 2, 2)})
    assert batch["s2"].shape == (2, 3, 2, 2) and not batch["presence"]["s2"].any()
    assert batch["s2"].abs().sum() == 0


def test_missing_key_without_presence_is_an_error():
    samples = [_sample(0, ("s1", "s2")), _sample(1, ("s1",))]
    with pytest.raises(ValueError, match="may_lack_modalities"):
        collate_samples(samples, ("s1", "s2"), presence=False)


def test_sample_collate_is_picklable_and_equivalent():
    fn = SampleCollate(("s1", "s2"), {"s2": (3, 2, 2)}, presence=True)
    fn = pickle.loads(pickle.dumps(fn))
    samples = [_sample(0, ("s1",)), _sample(1, ("s1", "s2"))]
    a, b = fn(samples), collate_samples(samples, ("s1", "s2"))
    assert torch.equal(a["s2"], b["s2"])
    assert a["presence"]["s2"].tolist() == [False, True]
