"""Integer shard records converted while collated: the training loaders' batches of
``--dtypes source`` shards (uint16 S2, uint8 NAIP with its filled nodata pixels beside
it, absent NAIP) equal, bit for bit, those of float32 shards and of the stack
datamodule; indexing still gives float32 samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from rsmm.datamodules import CoRegisteredStackDataModule
from rsmm.datamodules.collate import PRESENCE_KEY, RowWriter, SampleCollate, collate_samples
from rsmm.datamodules.streaming import ShardDataModule
from rsmm.datasets import CoRegisteredStack
from rsmm.datasets.shard_records import StoredValues, decode_values, encode_values
from rsmm.datasets.shards import write_shards
from rsmm.stacks import build_manifest, spec_from_dirs, write_manifest

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"
BANDS = {"s2": ["B08", "B04", "B11"], "naip": ["NIR", "R"]}


def bits(x: torch.Tensor) -> torch.Tensor:
    """The bits of a float32 tensor (-0.0 is not 0.0, NaN equals itself)."""
    return x.contiguous().view(torch.int32) if x.dtype == torch.float32 else x


def odd_tensor() -> torch.Tensor:
    """A 4 x 8 x 8 tensor of whole numbers with values no integer dtype holds."""
    x = torch.arange(256, dtype=torch.float32).reshape(4, 8, 8) % 200
    for i, v in {3: 2.5, 70: -0.0, 100: -1.0, 150: 65536.0, 200: float("nan"), 255: 1e9}.items():
        x.view(-1)[i] = v
    return x


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.int16])
@pytest.mark.parametrize("bands", [None, [2, 0], [1, 1, 3], [3]])
def test_stored_values_write_the_float32_tensor_bit_for_bit(dtype, bands) -> None:
    x = odd_tensor()
    stored, at, values = encode_values(x, dtype)
    assert stored.dtype == dtype and at.numel() >= 5
    entry = StoredValues(stored, at, values, bands)
    want = x if bands is None else x[bands]
    assert isinstance(entry, RowWriter) and entry.dtype == torch.float32
    assert tuple(entry.shape) == tuple(want.shape)
    assert torch.equal(bits(entry.decode()), bits(want))
    batch = torch.full((3, *want.shape), 7.0)
    entry.copy_into(batch[1])  # a row of a batch: written in place, the others untouched
    assert torch.equal(bits(batch[1]), bits(want))
    assert (batch[0] == 7).all() and (batch[2] == 7).all()
    assert torch.equal(bits(decode_values(stored, at, values)), bits(x))


def test_collate_converts_row_writers_into_the_batch_default_collate_makes() -> None:
    x, y = odd_tensor(), odd_tensor() + 1
    label = torch.tensor(0)
    entries = [StoredValues(*encode_values(v, torch.uint16)) for v in (x, y)]
    samples = [
        {"s2": entries[0], "s1": x[:2], "label": label, "meta": {"id": "a"}},
        {"s1": y[:2], "label": label, "meta": {"id": "b"}},  # no s2
        {"s2": entries[1], "s1": x[:2], "label": label, "meta": {"id": "c"}},
        {"s2": y.clone(), "s1": y[:2], "label": label, "meta": {"id": "d"}},  # a tensor
    ]
    floats = [
        {**s, "s2": s["s2"].decode()} if "s2" in s and not torch.is_tensor(s["s2"]) else s
        for s in samples
    ]
    got, want = collate_samples(samples), collate_samples(floats)  # modalities found
    assert list(got) == list(want) == ["s2", "s1", "label", "meta", PRESENCE_KEY]
    for m in ("s2", "s1"):
        assert got[m].dtype == torch.float32 and torch.equal(bits(got[m]), bits(want[m]))
    assert not got["s2"][1].any() and got["presence"]["s2"].tolist() == [True, False, True, True]
    assert torch.equal(bits(got["s2"][2]), bits(y))
    with pytest.raises(ValueError, match="lack modality 's2'"):
        collate_samples(samples, ("s2", "s1"), presence=False)
    with pytest.raises(ValueError, match="shapes"):
        collate_samples(
            [{**samples[0], "s2": StoredValues(*encode_values(x[:2], torch.uint8))}, samples[2]]
        )


class Entries(torch.utils.data.Dataset):
    """Samples whose S2 is a row writer (what the shard loaders' workers collate)."""

    def __init__(self) -> None:
        self.x = odd_tensor()

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        entry = StoredValues(*encode_values(self.x + i, torch.uint16))
        return {"s2": entry, "label": torch.tensor(i), "meta": {"id": str(i)}}


def test_a_worker_collates_row_writers_into_shared_memory() -> None:
    loader = DataLoader(Entries(), batch_size=2, num_workers=1, collate_fn=SampleCollate(("s2",)))
    batches = list(loader)
    assert len(batches) == 2 and all(b["s2"].is_shared() for b in batches)
    for i, b in enumerate(batches):
        for j in range(2):
            assert torch.equal(bits(b["s2"][j]), bits(odd_tensor() + 2 * i + j))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """S2 + S1 + optional NAIP chips (train and val) and their shards in both layouts."""
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1", "naip": SCENE / "naip"},
        chip_size="160m",
        stride="160m",
        optional=["naip"],
        split=(0.5, 0.5, 0),
        seed=3,
    )
    tmp = tmp_path_factory.mktemp("collate")
    manifest = write_manifest(build_manifest(spec), tmp / "chips.parquet")
    roots = {}
    for layout in ("source", "float32"):
        roots[layout] = tmp / layout
        for split in ("train", "val"):
            ds = CoRegisteredStack(manifest, split=split, min_modalities=2)
            write_shards(ds, roots[layout] / split, "200kB", dtypes=layout)
    return manifest, roots


def assert_same_batch(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a["meta"]["id"] == b["meta"]["id"]
    for k in a:
        if k == "meta":
            continue
        if k == PRESENCE_KEY:
            assert a[k].keys() == b[k].keys()
            assert all(torch.equal(a[k][m], b[k][m]) for m in a[k])
        else:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert torch.equal(bits(a[k]), bits(b[k])), k


@pytest.mark.parametrize("bands", [None, BANDS])
def test_batches_of_integer_records_equal_float32_and_stack_batches(
    shards: tuple[Path, dict[str, Path]], bands: dict | None
) -> None:
    manifest, roots = shards
    kw = {"batch_size": 4, "eval_batch_size": 4, "bands": bands}
    ref = CoRegisteredStackDataModule(str(manifest), min_modalities=2, **kw)
    source, floats = (ShardDataModule(str(roots[k]), **kw) for k in ("source", "float32"))
    for dm in (ref, source, floats):
        dm.setup("fit")
    val = source.datasets["val"]
    assert val.stored_dtypes == {"s2": "uint16", "s1": "float32", "naip": "uint8"}
    # the stream of the loaders holds the integer records, with NAIP's filled pixels
    raw = val.streaming(convert=False)
    naip = [raw[i]["naip"] for i in range(len(val)) if "naip" in raw[i]]
    assert naip and len(naip) < len(val)  # NAIP covers some chips of the batches
    assert all(isinstance(e, StoredValues) and e.stored.dtype == torch.uint8 for e in naip)
    assert any(e.indexes.numel() for e in naip)  # nodata pixels, filled, kept exactly
    assert all(torch.is_tensor(val[i]["s2"]) for i in range(len(val)))  # indexing: float32
    got, f32, want = (list(dm.val_dataloader()) for dm in (source, floats, ref))
    assert len(got) == len(f32) == len(want) > 1
    assert any(not b["presence"]["naip"].all() for b in got)
    for a, b, c in zip(got, f32, want):
        assert_same_batch(a, b)
        assert_same_batch(a, c)
    # training batches (shuffled, whole batches): every row is the float32 sample
    samples = {
        s["meta"]["id"]: s
        for s in map(floats.datasets["train"].__getitem__, range(len(floats.datasets["train"])))
    }
    for batch in source.train_dataloader():
        for i, chip in enumerate(batch["meta"]["id"]):
            for m in ("s2", "s1", "naip"):
                if m in samples[chip]:
                    assert batch["presence"][m][i]
                    assert torch.equal(bits(batch[m][i]), bits(samples[chip][m]))
                else:
                    assert not batch["presence"][m][i] and not batch[m][i].any()
