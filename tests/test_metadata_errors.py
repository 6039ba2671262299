"""Malformed files a user hands rsmm: an export's ``rsmm-encoders.json`` and weights, a
checkpoint that is not one (truncated, empty, foreign, a malicious pickle), and the JSON
and YAML metadata files rsmm reads. Each is a typed :class:`~rsmm.errors.RsmmError` whose
one-line message names the file and, for metadata, the field (never a bare ``KeyError``
or ``TypeError``), and torch's advice to load with ``weights_only=False`` is never
repeated."""

from __future__ import annotations

import builtins
import importlib
import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from rsmm.checkpoints import load_checkpoint, read_record
from rsmm.cli import main
from rsmm.errors import CheckpointError, ConfigError, ExportError, GridError
from rsmm.export import META_FILE, export_encoders, load_encoder
from rsmm.tasks import PretrainTask


def one_line(err: BaseException, *names: str | Path) -> str:
    """The error's message, checked to be one line naming each of ``names``."""
    text = str(err)
    assert "\n" not in text, text
    for name in names:
        assert str(name) in text, (name, text)
    assert "weights_only=False" not in text and "`weights_only` set to `False`" not in text
    return text


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real export of a tiny two-encoder pre-training checkpoint."""
    root = tmp_path_factory.mktemp("export")
    task = PretrainTask(
        in_channels={"s1": 2, "s2": 3},
        backbone="tiny_cnn",
        data_info={"bands": {"s1": ["VV", "VH"], "s2": ["B02", "B03", "B04"]}},
    )
    ckpt = root / "pre.ckpt"
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, ckpt)
    return export_encoders(ckpt, root / "enc")


@pytest.fixture
def copy(export: Path, tmp_path: Path) -> Path:
    """A copy of the export to damage."""
    out = tmp_path / "enc"
    out.mkdir()
    for f in export.iterdir():
        if f.is_file():
            (out / f.name).write_bytes(f.read_bytes())
    return out


def edit_meta(out: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    meta = json.loads((out / META_FILE).read_text())
    change(meta)
    (out / META_FILE).write_text(json.dumps(meta))
    return out / META_FILE


def test_the_undamaged_export_loads(export: Path) -> None:
    net = load_encoder(export, "s1", ["VV", "VH"])
    assert net(torch.zeros(1, 2, 8, 8)).shape[0] == 1


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda m: m["modalities"]["s1"].pop("architecture"),
            "modalities.s1.architecture",
            "missing",
        ),
        (lambda m: m["modalities"]["s1"].pop("file"), "modalities.s1.file", "missing"),
        (lambda m: m["modalities"]["s1"].pop("in_chans"), "modalities.s1.in_chans", "missing"),
        (
            lambda m: m["modalities"]["s1"].update(in_chans="2"),
            "modalities.s1.in_chans",
            "expected an integer, got str '2'",
        ),
        (
            lambda m: m["modalities"]["s1"].update(in_chans=True),
            "modalities.s1.in_chans",
            "expected an integer",
        ),
        (
            lambda m: m["modalities"]["s1"].update(architecture=7),
            "modalities.s1.architecture",
            "expected a string, got int 7",
        ),
        (
            lambda m: m["modalities"]["s1"].update(bands="VV,VH"),
            "modalities.s1.bands",
            "expected a list or null",
        ),
        (
            lambda m: m["modalities"]["s1"].update(backbone_kwargs=[1]),
            "modalities.s1.backbone_kwargs",
            "expected a mapping or null",
        ),
        (
            lambda m: m["modalities"]["s1"].update(file="../pre.ckpt"),
            "modalities.s1.file",
            "expected a file name in the export",
        ),
        (lambda m: m["modalities"].update(s1=[]), "modalities.s1", "expected a mapping, got list"),
        (lambda m: m.update(modalities=["s1"]), "modalities", "expected a mapping, got list"),
        (lambda m: m.pop("modalities"), "modalities", "missing"),
        (
            lambda m: m["modalities"]["s1"].update(architecture="no_such_net"),
            "modalities.s1.architecture",
            "unknown backbone 'no_such_net'",
        ),
        (
            lambda m: m["modalities"]["s1"].update(
                architecture="resnet18", backbone_kwargs={"no_such_arg": 1}
            ),
            "modalities.s1.backbone_kwargs",
            "no_such_arg",
        ),
    ],
)
def test_a_malformed_field_names_the_file_and_the_field(
    copy: Path, change: Callable[[dict[str, Any]], Any], field: str, message: str
) -> None:
    meta = edit_meta(copy, change)
    with pytest.raises(ExportError) as info:
        load_encoder(copy, "s1")
    text = one_line(info.value, meta, f"{field}:", message)
    assert text.index(str(meta)) < text.index(field)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ("", "invalid JSON"),
        ("[1, 2]", "expected a mapping, got list"),
        ('"text"', "expected a mapping, got str"),
    ],
)
def test_metadata_that_is_not_a_json_object(copy: Path, content: str, message: str) -> None:
    (copy / META_FILE).write_text(content)
    with pytest.raises(ExportError) as info:
        load_encoder(copy, "s1")
    one_line(info.value, copy / META_FILE, message)


def test_a_syntax_error_gives_line_and_column(copy: Path) -> None:
    (copy / META_FILE).write_text('{\n  "modalities": {,\n}')
    with pytest.raises(ExportError, match=re.escape(f"{copy / META_FILE}:2:")):
        load_encoder(copy, "s1")


def test_an_unknown_modality_names_the_ones_there(copy: Path) -> None:
    with pytest.raises(ExportError) as info:
        load_encoder(copy, "naip")
    one_line(info.value, copy, "no encoder for ['naip']", "['s1', 's2']")


def test_a_missing_or_corrupt_weights_file(copy: Path) -> None:
    (copy / "s1.safetensors").unlink()
    with pytest.raises(ExportError) as info:
        load_encoder(copy, "s1")
    one_line(info.value, copy / META_FILE, "modalities.s1.file", copy / "s1.safetensors")
    (copy / "s1.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ExportError) as info:
        load_encoder(copy, "s1")
    one_line(info.value, copy / "s1.safetensors", "not a safetensors file")


def test_weights_of_other_shapes_or_names(copy: Path) -> None:
    weights = copy / "s1.safetensors"
    good = load_encoder(copy, "s1").state_dict()
    first = next(k for k, v in good.items() if v.ndim == 4)
    save_file({**good, first: torch.zeros(4, 5, 3, 3)}, str(weights))
    with pytest.raises(ExportError) as info:
        load_encoder(copy, "s1")
    one_line(info.value, weights, "'tiny_cnn'", "1 shape mismatches", first)
    save_file({("x" + k): v for k, v in good.items()}, str(weights))
    with pytest.raises(ExportError) as info:
        load_encoder(copy, "s1")
    one_line(info.value, weights, "missing tensors", "unexpected tensors")


# -- checkpoints ---------------------------------------------------------------------------


class _Opens:
    """A pickle that, if unpickled, creates a file: the weights-only reader must refuse it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (self.path, "w"))


def _checkpoint_bytes(tmp_path: Path) -> bytes:
    torch.save({"hyper_parameters": {"in_channels": {"s1": 2}}, "state_dict": {}}, tmp_path / "g")
    return (tmp_path / "g").read_bytes()


def test_a_malicious_pickle_is_refused_without_torchs_advice(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps({"state_dict": _Opens(marker)}))
    zipped = tmp_path / "zipped.ckpt"
    torch.save({"hyper_parameters": {}, "state_dict": {}, "x": _Opens(marker)}, zipped)
    with pytest.raises(CheckpointError) as info:  # refused as a pickle of an object
        read_record(zipped)
    text = one_line(info.value, f"cannot read checkpoint {zipped}", "the Python object ")
    assert re.search(r"the Python object _?io\.open\b", text), text  # _io.open on 3.12
    assert "rsmm loads only weights-only files" in text and "not one, or is corrupt" in text
    assert "weights_only" not in text and "trusted source" not in text
    with pytest.raises(CheckpointError) as info:  # not even read as a torch file
        read_record(raw)
    text = one_line(info.value, f"cannot read checkpoint {raw}", "not a torch file")
    assert "weights_only" not in text and "trusted source" not in text
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: b"", "the file ends early"),
        (lambda tmp: b"not a checkpoint", "corrupt, truncated or not a torch file"),
        (
            lambda tmp: b"\x00" * 131072,
            "corrupt, truncated or not a torch file",
        ),  # a full disk's leftover
        (lambda tmp: _checkpoint_bytes(tmp)[:200], "corrupt, truncated or not a torch file"),
        (lambda tmp: _checkpoint_bytes(tmp)[:-30], "corrupt, truncated or not a torch file"),
    ],
)
def test_an_unreadable_checkpoint_is_one_line(
    tmp_path: Path, make: Callable[[Path], bytes], message: str
) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(make(tmp_path))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = one_line(info.value, f"cannot read checkpoint {path}", message)
    assert "miniz" not in text and "file an issue" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "it holds list [1, 2], not a Lightning checkpoint"),
        ({"state_dict": {}}, "no 'hyper_parameters'"),
        ({"hyper_parameters": 5, "state_dict": {}}, "'hyper_parameters' is int 5, not a mapping"),
        ({"hyper_parameters": {"in_channels": {"s1": 2}}}, "no 'state_dict'"),
        ({"hyper_parameters": {}, "state_dict": {}}, "no in_channels"),
        ({"hyper_parameters": {"in_channels": 3}, "state_dict": {}}, "in_channels must map"),
    ],
)
def test_a_torch_file_that_is_not_an_rsmm_checkpoint(
    tmp_path: Path, content: Any, message: str
) -> None:
    path = tmp_path / "other.ckpt"
    torch.save(content, path)
    with pytest.raises(ExportError) as info:
        read_record(path)
    one_line(info.value, f"{path} is not an rsmm task checkpoint", message)


def test_the_export_command_refuses_a_malicious_checkpoint_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RSMM_DEBUG", raising=False)
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": _Opens(marker)}))
    assert main(["export", str(evil), str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("rsmm: error: cannot read checkpoint") and str(evil) in line
    assert "weights_only" not in line and not marker.exists()
    assert not (tmp_path / "out").exists()


# -- JSON and YAML metadata ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("name"), "name: missing"),
        (lambda m: m["modalities"]["s2"].pop("sensor"), "modalities.s2.sensor: missing"),
        (
            lambda m: m["modalities"]["s2"].update(bands="B02"),
            "modalities.s2.bands: expected a list, got str 'B02'",
        ),
        (lambda m: m["modalities"].update(s2=3), "modalities.s2: expected a mapping, got int 3"),
        (
            lambda m: m["modalities"]["s2"].update(stats={"B02": 5}),
            "modalities.s2.stats: expected {band: [mean, std]}",
        ),
        (
            lambda m: m["modalities"]["s2"].update(offset="x"),
            "modalities.s2.offset: expected a number",
        ),
    ],
)
def test_a_dataset_manifest_names_the_file_and_field(
    tmp_path: Path, change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    from rsmm.manifests import load_manifest

    data = load_manifest("eurosat").to_dict()
    change(data)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    one_line(info.value, f"{path}: {message}")


def test_a_dataset_manifest_that_is_not_json(tmp_path: Path) -> None:
    from rsmm.manifests import load_manifest

    path = tmp_path / "mine.json"
    path.write_text('{"name": "x",\n "modalities": }')
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    one_line(info.value, f"{path}:2:16: invalid JSON (dataset manifest)")


@pytest.mark.parametrize(
    ("reader", "error", "prefix"),
    [
        ("rsmm.stacks.spec:load_spec", ConfigError, "invalid stack spec "),
        ("rsmm.grid:load_grid", GridError, ""),
        ("rsmm.augment.presets:load_preset", ConfigError, "invalid augmentation preset "),
        ("rsmm.hyperbolic:LabelTree.from_yaml", ConfigError, "invalid hierarchy "),
    ],
)
def test_a_yaml_syntax_error_names_file_line_and_column(
    tmp_path: Path, reader: str, error: type[Exception], prefix: str
) -> None:
    module, _, name = reader.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    path = tmp_path / "mine.yaml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(error) as info:
        target(path)
    text = one_line(info.value, f"{prefix}{path}:3:")
    assert "<unicode string>" not in text and "flow sequence" in text


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (b"{not json", "corrupt 'rsmm' metadata (invalid JSON"),
        (b"[1]", "expected a mapping, got list"),
        (b'{"format_version": 1}', "modalities: missing"),
        (b'{"format_version": 1, "modalities": {"s2": {}}}', "modalities.s2.root: missing"),
    ],
)
def test_a_chip_manifest_with_corrupt_metadata(tmp_path: Path, meta: bytes, message: str) -> None:
    import geopandas as gpd
    import pyarrow.parquet as pq
    from shapely.geometry import box

    from rsmm.stacks import read_manifest

    path = tmp_path / "chips.parquet"
    gpd.GeoDataFrame({"label": [0], "files_s2": ["[]"]}, geometry=[box(0, 0, 1, 1)]).to_parquet(
        path
    )
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"rsmm": meta}), path)
    with pytest.raises(ConfigError) as info:
        read_manifest(path)
    one_line(info.value, path, message)


def test_a_weights_file_that_is_a_malicious_pickle(tmp_path: Path) -> None:
    from rsmm.errors import WeightsError
    from rsmm.models.backbones import read_state_dict

    marker, path = tmp_path / "executed", tmp_path / "weights.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Opens(marker)}, path)
    with pytest.raises(WeightsError) as info:
        read_state_dict(path)
    text = one_line(info.value, f"cannot read weights from {path}", "io.open")
    assert "weights_only" not in text and text.count("cannot read") == 1
    assert not marker.exists()
