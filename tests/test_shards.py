"""Streaming shards: bit-exact round trip (absent modalities too; uint16 S2, uint8 NAIP,
float32 S1 records; shards of the float32 format 1), the datamodule's batches equal the
stack datamodule's, and a mid-epoch resume sees the rest of the epoch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning import Callback, Trainer
from torch.utils.data import Subset

from rsmm.cli.manifest import main as manifest_main
from rsmm.cli.train import trainer_callbacks
from rsmm.datamodules import CoRegisteredStackDataModule
from rsmm.datamodules.streaming import ShardDataModule
from rsmm.datasets import CoRegisteredStack
from rsmm.datasets.shard_records import decode_values, encode_values
from rsmm.datasets.shards import SHARDS_INFO, MissingShardsError, ShardDataset, write_shards
from rsmm.errors import ConfigError, DatasetFileError
from rsmm.stacks import build_manifest, spec_from_dirs, write_manifest
from rsmm.stacks.spec import LabelSpec
from rsmm.tasks import PretrainTask

SCENE = Path(__file__).parent / "data" / "stacks" / "scene"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A chip manifest of the generated scene and its shards (every split)."""
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1"},
        chip_size="160m",
        stride="80m",
        block_size="320m",
        split=(0.6, 0.2, 0.2),
        seed=1,
        labels=LabelSpec(str(SCENE / "labels.gpkg"), "landcover", "points"),
    )
    tmp = tmp_path_factory.mktemp("shards")
    manifest = write_manifest(build_manifest(spec), tmp / "chips.parquet")
    # small chunks: several per split, so shuffling and resuming cross chunks
    args = ["shard", str(manifest), "--out", str(tmp / "shards"), "--chunk-bytes", "20kB"]
    args += ["--dtypes", "source"]
    assert manifest_main(args) == 0
    return manifest, tmp / "shards"


def assert_same_sample(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if k == "meta":
            assert a[k].keys() == b[k].keys()
            assert a[k]["id"] == b[k]["id"] and a[k]["nodata"] == b[k]["nodata"]
            for key in ("lonlat", "date"):
                if key in a[k]:
                    assert a[k][key].dtype == b[k][key].dtype
                    assert torch.equal(a[k][key], b[k][key])
        else:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert torch.equal(bits(a[k]), bits(b[k])), k


def bits(x: torch.Tensor) -> torch.Tensor:
    """The bits of a float32 tensor (-0.0 is not 0.0, NaN equals itself)."""
    return x.contiguous().view(torch.int32) if x.dtype == torch.float32 else x


def records(root: Path) -> list[dict]:
    """The raw records of a split folder (what LitData stored, not decoded)."""
    from litdata import StreamingDataset

    stream = StreamingDataset(str(root), batch_decode=0)
    return [stream[i] for i in range(len(stream))]


def chunk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("*.bin"))


def test_every_split_round_trips_bit_exactly(stack: tuple[Path, Path]) -> None:
    manifest, shards = stack
    for split in ("train", "val", "test"):
        source, ds = CoRegisteredStack(manifest, split=split), ShardDataset(shards, split)
        assert len(ds) == len(source) > 0
        assert ds.classes == source.classes and ds.bands == source.bands
        assert ds.units == source.units and ds.training_gsd() == source.training_gsd()
        for m, (mean, std) in source.band_stats().items():
            assert torch.equal(ds.band_stats()[m][0], mean)
            assert torch.equal(ds.band_stats()[m][1], std)
        assert (ds.targets() == source.targets()).all()
        assert ds.stored_dtypes == {"s2": "uint16", "s1": "float32"}  # the files' dtypes
        for i in range(len(ds)):
            assert_same_sample(source[i], ds[i])
    raw = records(shards / "val")[0]
    assert raw["s2"].dtype == torch.uint16 and raw["s1"].dtype == torch.float32


def test_modality_and_band_subsets_are_sliced_from_the_shards(stack: tuple[Path, Path]) -> None:
    manifest, shards = stack
    kw = {"modalities": ["s2"], "bands": {"s2": ["B08", "B04"]}}
    source, ds = CoRegisteredStack(manifest, split="val", **kw), ShardDataset(shards, "val", **kw)
    assert_same_sample(source[1], ds[1])
    assert ds[1]["s2"].shape[0] == 2


class Holes(CoRegisteredStack):
    """The stack with S2 absent from every third chip, the first one included."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.may_lack_modalities = True  # CoRegisteredStack sets it from its coverage

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        if index % 3 == 0:
            del sample["s2"]
            del sample["meta"]["nodata"]["s2"]
        return sample

    def presence(self) -> dict:
        n = len(self)
        return {"s1": np.ones(n, dtype=bool), "s2": np.arange(n) % 3 != 0}


def test_a_modality_absent_from_the_first_sample_round_trips(
    stack: tuple[Path, Path], tmp_path: Path
) -> None:
    """LitData fixes keys and formats from the first sample: the C x 0 x 0 placeholder
    keeps the key and the rank for the samples that have it."""
    manifest, _ = stack
    source = Holes(manifest, split="train")
    ds = ShardDataset(write_shards(source, tmp_path / "holes", "20kB", dtypes="source"))
    assert ds.may_lack_modalities and ds.stored_dtypes["s2"] == "uint16"
    for i in range(len(ds)):
        assert_same_sample(source[i], ds[i])
    assert "s2" not in ds[0] and ds[1]["s2"].shape == (13, 16, 16)
    placeholder = records(tmp_path / "holes")[0]["s2"]  # the uint16 one, zero-size
    assert placeholder.dtype == torch.uint16 and placeholder.shape == (13, 0, 0)
    # the batch contract: zero-filled absent rows and a presence vector per modality
    dm = ShardDataModule(str(tmp_path), batch_size=4)
    dm.datasets = {"val": ds}  # the folder is a split folder: evaluate it in order
    batch = next(iter(dm._loader("val", shuffle=False)))
    assert batch["presence"]["s2"].tolist() == [False, True, True, False]
    assert batch["presence"]["s1"].all()
    assert not batch["s2"][0].any() and torch.equal(batch["s2"][1], source[1]["s2"])


@pytest.fixture(scope="module")
def naip(tmp_path_factory: pytest.TempPathFactory) -> tuple[CoRegisteredStack, Path]:
    """S2 + S1 + optional NAIP chips (uint16, float32 and uint8 files; NAIP covers some
    chips, with nodata pixels in some) and their shards."""
    spec = spec_from_dirs(
        {"s2": SCENE / "s2", "s1": SCENE / "s1", "naip": SCENE / "naip"},
        chip_size="160m",
        stride="160m",
        optional=["naip"],
        split=(1, 0, 0),
    )
    source = CoRegisteredStack(build_manifest(spec), min_modalities=2)
    out = tmp_path_factory.mktemp("naip") / "train"
    return source, write_shards(source, out, chunk_bytes="200kB", dtypes="source")


def test_uint8_naip_and_uint16_s2_records_round_trip_bit_exactly(
    naip: tuple[CoRegisteredStack, Path], tmp_path: Path
) -> None:
    """Records hold the files' dtypes, with the filled nodata pixels beside them; the
    samples are the stack's float32 ones bit for bit, in a quarter (NAIP) or half (S2)
    of the float32 bytes."""
    source, root = naip
    ds = ShardDataset(root)
    assert ds.stored_dtypes == {"s2": "uint16", "s1": "float32", "naip": "uint8"}
    assert ds.may_lack_modalities and len(ds) == len(source)
    for i in range(len(ds)):
        assert_same_sample(source[i], ds[i])
    raw = records(root)
    present = [r for r in raw if r["naip"].numel()]
    absent = [r for r in raw if not r["naip"].numel()]
    assert present and absent  # NAIP covers some chips: the others hold a placeholder
    assert {(r["naip"].dtype, r["naip"].shape) for r in absent} == {(torch.uint8, (4, 0, 0))}
    assert all(r["s2"].dtype == torch.uint16 and not r["s2.at"].numel() for r in raw)
    # the NAIP nodata pixels (filled with their band's mean) are stored as exceptions
    filled = [r for r in present if r["naip"].dtype == torch.uint8 and r["naip.at"].numel()]
    assert filled and all(r["naip.at"].dtype == torch.int32 for r in filled)
    nodata = [s["meta"]["nodata"].get("naip", 0) for s in map(source.__getitem__, range(len(ds)))]
    assert sum(r["naip.at"].numel() for r in raw) <= sum(nodata)
    # the float32 layout of the same samples: a quarter of NAIP's bytes, half of S2's
    floats = write_shards(
        source, tmp_path / "f32", "200kB", dtypes=dict.fromkeys(ds.stored, torch.float32)
    )
    f32 = ShardDataset(floats)
    assert f32.stored_dtypes == {"s2": "float32", "s1": "float32", "naip": "float32"}
    assert_same_sample(f32[len(ds) - 1], ds[len(ds) - 1])
    values = {m: sum(r[m].numel() for r in raw) for m in ds.stored}
    want = 2 * values["s2"] + 4 * values["s1"] + values["naip"]
    assert chunk_bytes(root) < 0.45 * chunk_bytes(floats)
    assert chunk_bytes(root) - want < 0.1 * want  # headers, ids, labels and exceptions


def test_values_a_dtype_cannot_hold_are_kept_bit_for_bit() -> None:
    x = torch.arange(256, dtype=torch.float32).reshape(4, 8, 8)
    odd = {3: 2.5, 70: -0.0, 100: -1.0, 150: 65536.0, 200: float("nan")}
    for i, v in odd.items():
        x.view(-1)[i] = v
    stored, at, values = encode_values(x, torch.uint16)
    assert stored.dtype == torch.uint16 and at.tolist() == sorted(odd)
    assert torch.equal(bits(decode_values(stored, at, values)), bits(x))
    # a bilinear chip: exceptions everywhere would outweigh float32, which is kept
    y = torch.rand(2, 4, 4)
    stored, at, _ = encode_values(y, torch.uint8)
    assert stored is y and at.numel() == 0
    with pytest.raises(TypeError, match="float32"):
        encode_values(x.double(), torch.uint16)


FORKED_WRITE = """
import sys, torch
from litdata import optimize
from rsmm.datasets.shards import _Encoder
torch.set_num_threads(2)
torch.rand(10**6).round().sum()  # the parent's OpenMP pool runs
class Chips:
    def __getitem__(self, i):
        x = torch.rand(12, 120, 120)  # ops on it are parallel (more than 32768 values)
        assert torch.isfinite(x).all()
        return {"s2": x, "label": torch.tensor(0), "meta": {"id": str(i), "lonlat": torch.zeros(2)}}
encode = _Encoder(Chips(), {"s2": 12}, {"s2": torch.uint16})
optimize(fn=encode, inputs=[0, 1], output_dir=sys.argv[1], chunk_bytes="1MB", num_workers=1,
         start_method="fork", verbose=False)
"""


def test_writing_workers_forked_after_torch_ran_parallel_ops_do_not_hang(tmp_path: Path) -> None:
    """LitData forks its workers; torch's OpenMP pool, started in the parent, hangs a
    worker's first parallel op unless the worker runs torch on one thread."""
    subprocess.run(
        [sys.executable, "-c", FORKED_WRITE, str(tmp_path / "out")], check=True, timeout=120
    )


def test_float32_shards_of_format_1_read_as_before(
    stack: tuple[Path, Path], tmp_path: Path
) -> None:
    """Shards written before dtypes were recorded: float32 records, format 1, no
    ``dtypes`` in rsmm-shards.json."""
    manifest, _ = stack
    source = CoRegisteredStack(manifest, split="val")
    root = write_shards(
        source, tmp_path / "old", "20kB", dtypes=dict.fromkeys(source.modalities, torch.float32)
    )
    info = json.loads((root / SHARDS_INFO).read_text())
    del info["dtypes"]
    (root / SHARDS_INFO).write_text(json.dumps({**info, "format": 1}))
    ds = ShardDataset(root)
    assert ds.stored_dtypes == {"s2": "float32", "s1": "float32"}
    keys = {"id", "label", "s2", "s1", "nodata", "lonlat"} | set(source[0]["meta"]) & {"date"}
    assert set(records(root)[0]) == keys  # no exception keys
    for i in range(len(ds)):
        assert_same_sample(source[i], ds[i])
    (root / SHARDS_INFO).write_text(json.dumps({**info, "format": 3}))
    with pytest.raises(DatasetFileError, match="shard format 3 is none of 1, 2"):
        ShardDataset(root)


def test_batches_equal_the_stack_datamodule_batches(stack: tuple[Path, Path]) -> None:
    manifest, shards = stack
    kw = {"batch_size": 5, "eval_batch_size": 5}
    ref, dm = CoRegisteredStackDataModule(str(manifest), **kw), ShardDataModule(str(shards), **kw)
    ref.setup("fit")
    dm.setup("fit")
    assert dm.stats.keys() == ref.stats.keys()
    for m in ref.stats:
        assert torch.equal(dm.stats[m][0], ref.stats[m][0])
    got, want = list(dm.val_dataloader()), list(ref.val_dataloader())
    assert len(got) == len(want) > 1
    for a, b in zip(got, want):
        assert a.keys() == b.keys() and a["meta"]["id"] == b["meta"]["id"]
        for k in ("s1", "s2", "label"):
            assert torch.equal(a[k], b[k])
        assert torch.equal(a["meta"]["lonlat"], b["meta"]["lonlat"])
    # the device-side pipeline is the same: identical normalised eval views
    views = dm.apply_augment(got[0], train=False)
    assert torch.equal(views["s2"][0], ref.apply_augment(want[0], train=False)["s2"][0])


def ids(batches: list[dict]) -> list[str]:
    return [i for b in batches for i in b["meta"]["id"]]


def test_training_loader_resumes_mid_epoch(stack: tuple[Path, Path]) -> None:
    """The loader's state_dict (what Lightning checkpoints) resumes the shuffled epoch
    where it stopped: the samples seen before plus after equal an uninterrupted epoch."""
    _, shards = stack

    def loader(state: dict | None = None) -> object:
        dm = ShardDataModule(str(shards), batch_size=3, seed=7)
        dm.setup("fit")
        out = dm.train_dataloader()
        if state is not None:
            out.load_state_dict(state)
        return out

    full = ids(list(loader()))
    train = ShardDataset(shards, "train")
    # drop_last, as the stack datamodule's training loader: the whole batches, of
    # distinct samples (the split's count need not be a multiple of the batch size)
    assert len(full) == len(set(full)) == len(train) // 3 * 3
    assert set(full) <= {train[i]["meta"]["id"] for i in range(len(train))}
    first = loader()
    it, seen = iter(first), []
    for _ in range(2):
        seen.append(next(it))
    state = first.state_dict()
    rest = list(loader(state))
    assert ids(seen) + ids(rest) == full
    assert full != sorted(full)  # shuffled


def test_label_fraction_streams_the_stratified_subset(stack: tuple[Path, Path]) -> None:
    manifest, shards = stack
    kw = {"batch_size": 4, "label_fraction": 0.5, "seed": 2}
    ref, dm = CoRegisteredStackDataModule(str(manifest), **kw), ShardDataModule(str(shards), **kw)
    ref.setup("fit")
    dm.setup("fit")
    want = {ref.datasets["train"][i]["meta"]["id"] for i in range(len(ref.datasets["train"]))}
    assert set(ids(list(dm.train_dataloader()))) <= want
    assert len(dm.datasets["train"]) == len(want)


def test_missing_shards_and_a_used_output_folder_are_user_errors(
    stack: tuple[Path, Path], tmp_path: Path
) -> None:
    manifest, shards = stack
    with pytest.raises(MissingShardsError, match=r"rsmm-shards\.json not found"):
        ShardDataset(tmp_path, "train")
    with pytest.raises(ConfigError, match="not an empty folder"):
        manifest_main(["shard", str(manifest), "--out", str(shards), "--split", "val"])
    # a pre-training set of train shards only: no validation, no test
    assert manifest_main(["shard", str(manifest), "--out", str(tmp_path), "--split", "train"]) == 0
    dm = ShardDataModule(str(tmp_path), batch_size=4)
    dm.setup("fit")
    assert dm.val_dataloader() == [] and not dm.has_test_split()


class SeenIds(Callback):
    """Records the ids of the training samples; saves a checkpoint after step ``save_at``
    (as rsmm's step checkpoints do) to ``path``."""

    def __init__(self, save_at: int = 0, path: Path | None = None) -> None:
        self.ids: list[str] = []
        self.save_at, self.path = save_at, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ids.extend(batch["meta"]["id"])
        if self.path is not None and trainer.global_step == self.save_at:
            trainer.save_checkpoint(self.path)


def test_lightning_resumes_the_streaming_epoch_from_a_checkpoint(
    stack: tuple[Path, Path], tmp_path: Path
) -> None:
    """The loader's position goes into Lightning's checkpoint: a run resumed from the
    checkpoint of its step 2 sees the rest of the same shuffled epoch."""
    _, shards = stack

    def fit(save: Path | None = None, ckpt: Path | None = None) -> list[str]:
        torch.manual_seed(0)
        dm = ShardDataModule(str(shards), batch_size=3, seed=5, views=2, augment="eval")
        task = PretrainTask(backbone="tiny_cnn", projection_dim=8, hidden_dim=16)
        seen = SeenIds(2, save)
        trainer = Trainer(
            accelerator="cpu",
            max_epochs=1,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[seen, *trainer_callbacks(0)[1:]],
        )
        trainer.fit(task, dm, ckpt_path=ckpt, weights_only=True)
        return seen.ids

    full = fit(save=tmp_path / "step2.ckpt")
    rest = fit(ckpt=tmp_path / "step2.ckpt")
    assert len(full) == len(ShardDataset(shards, "train")) // 3 * 3 > 6  # whole batches
    assert rest == full[6:]


@pytest.fixture(scope="module")
def coarse(stack: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The train chips again, several to a chunk (the stack's shards hold one a chunk)."""
    manifest, _ = stack
    out = tmp_path_factory.mktemp("coarse")
    write_shards(CoRegisteredStack(manifest, split="train"), out / "train", chunk_bytes="100kB")
    return out


@pytest.mark.parametrize(
    ("layout", "subset", "batch_size", "num_workers"),
    [
        ("fine", None, 3, 0),  # every sample: a count that is no multiple of the batch
        ("fine", slice(0, None, 2), 4, 0),  # a label-fraction-like subset (indices)
        ("coarse", None, 2, 0),
        ("coarse", slice(7, None), 5, 0),
        ("coarse", None, 4, 2),  # two loader workers deal the batches
    ],
)
def test_resuming_after_any_batch_of_any_epoch_gives_the_rest_of_it(
    stack: tuple[Path, Path],
    coarse: Path,
    layout: str,
    subset: slice | None,
    batch_size: int,
    num_workers: int,
) -> None:
    """Whatever the counts of samples, chunks, batch and workers: an epoch is the whole
    batches of distinct samples, reshuffled each epoch, and a loader restored from the
    state after any batch of the first or the second epoch yields the rest of it."""
    root = stack[1] if layout == "fine" else coarse
    train = ShardDataset(root, "train")
    indices = list(range(len(train)))[subset] if subset is not None else None
    chosen = [train[i]["meta"]["id"] for i in indices or range(len(train))]

    def loader(state: dict | None = None) -> object:
        dm = ShardDataModule(str(root), batch_size=batch_size, seed=3, num_workers=num_workers)
        dm.setup("fit")
        if indices is not None:
            dm.datasets["train"] = Subset(dm.datasets["train"], indices)
        out = dm.train_dataloader()
        if state is not None:
            out.load_state_dict(state)
        return out

    uninterrupted = loader()
    epochs = [ids(list(uninterrupted)) for _ in range(2)]
    num_batches = len(chosen) // batch_size
    for epoch in epochs:
        assert len(epoch) == len(set(epoch)) == num_batches * batch_size
        assert set(epoch) <= set(chosen)
    assert epochs[0] != epochs[1]
    for done, epoch in enumerate(epochs):
        for k in sorted({1, num_batches - 1}):
            first = loader()
            for _ in range(done):
                list(first)
            it, seen = iter(first), []
            for _ in range(k):
                seen.append(next(it))
            state = first.state_dict()
            del it
            assert ids(seen) + ids(list(loader(state))) == epoch, (done, k)


def test_a_training_split_smaller_than_one_batch_is_a_user_error(stack: tuple[Path, Path]) -> None:
    """drop_last keeps whole batches: fewer samples than one batch would be an empty epoch."""
    _, shards = stack
    train = len(ShardDataset(shards, "train"))
    dm = ShardDataModule(str(shards), batch_size=train + 1)
    dm.setup("fit")
    with pytest.raises(ConfigError, match=rf"train shards .* hold {train} samples.*batch_size"):
        dm.train_dataloader()
    ok = ShardDataModule(str(shards), batch_size=train)
    ok.setup("fit")
    assert sum(b["s2"].shape[0] for b in ok.train_dataloader()) == train  # one whole batch


def test_float32_records_by_default_and_an_unknown_layout_is_refused(
    stack: tuple[Path, Path], tmp_path: Path
) -> None:
    """``rsmm manifest shard`` without ``--dtypes`` writes rsmm's float32 samples (no
    conversion on read); the source layout is smaller and reads the same samples."""
    from rsmm.datasets.shards import shard_manifest

    manifest, small = stack
    assert shard_manifest(manifest, tmp_path / "f32", split="val") == {
        "val": len(CoRegisteredStack(manifest, split="val"))
    }
    ds = ShardDataset(tmp_path / "f32", "val")
    assert ds.stored_dtypes == {"s2": "float32", "s1": "float32"}
    assert records(tmp_path / "f32" / "val")[0]["s2"].dtype == torch.float32
    other = ShardDataset(small, "val")
    for i in range(len(ds)):
        assert_same_sample(other[i], ds[i])
    assert chunk_bytes(small / "val") < 0.8 * chunk_bytes(tmp_path / "f32" / "val")
    with pytest.raises(ConfigError, match="--dtypes: 'int8'"):
        write_shards(CoRegisteredStack(manifest, split="val"), tmp_path / "x", dtypes="int8")
    assert not (tmp_path / "x").exists()


def test_complete_only_streams_the_complete_samples_and_drops_are_refused(
    stack: tuple[Path, Path], tmp_path: Path
) -> None:
    """The shards record which samples lack a modality: ``complete_only`` (with a label
    fraction on top) streams only complete samples; simulated drops are refused."""
    manifest, _ = stack
    source = Holes(manifest, split="train")
    write_shards(source, tmp_path / "train", "20kB")
    dm = ShardDataModule(str(tmp_path), batch_size=2, complete_only=True, label_fraction=0.8)
    dm.setup("fit")
    seen = [i for b in dm._loader("train", shuffle=False) for i in b["meta"]["id"]]
    complete = {source[i]["meta"]["id"] for i in range(len(source)) if i % 3 != 0}
    assert seen and set(seen) <= complete and len(set(seen)) == len(seen)
    assert len(seen) == len(dm.datasets["train"])
    info = json.loads((tmp_path / "train" / SHARDS_INFO).read_text())
    del info["presence"]  # shards of an older rsmm
    (tmp_path / "train" / SHARDS_INFO).write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="do not record which samples"):
        ShardDataModule(str(tmp_path), batch_size=2, complete_only=True).setup("fit")
    with pytest.raises(ConfigError, match="drop_modalities"):
        ShardDataModule(str(tmp_path), batch_size=2, drop_modalities={"s2": 0.5})
