"""Bad checkpoints for ``rsmm export`` and bad export folders for ``rsmm.export.load_encoder``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from bad_inputs.core import Api, Cli, Shared, case, malicious_pickle
from rsmm.errors import ExportError
from rsmm.export import META_FILE, load_encoder


def export(ckpt: Path, out: Path, *more: str) -> list[str]:
    return ["export", str(ckpt), str(out), *more]


# --- rsmm export ----------------------------------------------------------------------


@case("export-missing-checkpoint")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(export(tmp / "last.ckpt", tmp / "enc"), ("last.ckpt",), (tmp / "enc",))


@case("export-checkpoint-is-a-folder")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "run.ckpt").mkdir()
    return Cli(export(tmp / "run.ckpt", tmp / "enc"), ("run.ckpt",), (tmp / "enc",))


@case("export-zero-byte-checkpoint")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "last.ckpt").write_bytes(b"")
    return Cli(export(tmp / "last.ckpt", tmp / "enc"), ("last.ckpt",), (tmp / "enc",))


@case("export-truncated-checkpoint")
def _(tmp: Path, shared: Shared) -> Cli:
    data = shared.pretrain_ckpt.read_bytes()
    (tmp / "last.ckpt").write_bytes(data[: len(data) // 2])
    return Cli(export(tmp / "last.ckpt", tmp / "enc"), ("last.ckpt",), (tmp / "enc",))


@case("export-text-checkpoint")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "last.ckpt").write_text("version https://git-lfs.github.com/spec/v1\n")
    return Cli(export(tmp / "last.ckpt", tmp / "enc"), ("last.ckpt",), (tmp / "enc",))


@case("export-malicious-pickle-torch-zip")
def _(tmp: Path, shared: Shared) -> Cli:
    marker = tmp.parent / f"{tmp.name}-pwned"  # outside tmp: the snapshot cannot see it
    ckpt = malicious_pickle(tmp / "last.ckpt", marker)
    return Cli(export(ckpt, tmp / "enc"), ("last.ckpt",), (tmp / "enc", marker))


@case("export-malicious-pickle-plain")
def _(tmp: Path, shared: Shared) -> Cli:
    marker = tmp.parent / f"{tmp.name}-pwned"
    ckpt = malicious_pickle(tmp / "last.ckpt", marker, torch_zip=False)
    return Cli(export(ckpt, tmp / "enc"), ("last.ckpt",), (tmp / "enc", marker))


@case("export-not-an-rsmm-checkpoint")
def _(tmp: Path, shared: Shared) -> Cli:
    torch.save({"model": {"w": torch.zeros(2)}}, tmp / "resnet.pth")
    return Cli(export(tmp / "resnet.pth", tmp / "enc"), ("resnet.pth",), (tmp / "enc",))


@case("export-checkpoint-without-in-channels")
def _(tmp: Path, shared: Shared) -> Cli:
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, tmp / "last.ckpt")
    return Cli(export(tmp / "last.ckpt", tmp / "enc"), ("last.ckpt",), (tmp / "enc",))


@case("export-unknown-modality")
def _(tmp: Path, shared: Shared) -> Cli:
    argv = export(shared.pretrain_ckpt, tmp / "enc", "--modalities", "s1")
    return Cli(argv, ("s1",), (tmp / "enc",))


@case("export-out-is-a-file")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "enc").write_text("a file")
    return Cli(export(shared.pretrain_ckpt, tmp / "enc", "--overwrite"), (str(tmp / "enc"),))


@case("export-out-exists-without-overwrite")
def _(tmp: Path, shared: Shared) -> Cli:
    shutil.copytree(shared.export_dir, tmp / "enc")
    return Cli(export(shared.pretrain_ckpt, tmp / "enc"), ("--overwrite",))


@case("export-overwrite-a-foreign-folder")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "thesis").mkdir()
    (tmp / "thesis" / "main.tex").write_text("years of work")
    return Cli(export(shared.pretrain_ckpt, tmp / "thesis", "--overwrite"), ("thesis",))


@case("export-unknown-format")
def _(tmp: Path, shared: Shared) -> Cli:
    argv = export(shared.pretrain_ckpt, tmp / "enc", "--format", "onnx")
    return Cli(argv, ("--format",), (tmp / "enc",))


@case("export-missing-out-dir")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["export", str(shared.pretrain_ckpt)], ("out_dir",))


# --- rsmm.export.load_encoder ---------------------------------------------------------


def copy_export(tmp: Path, shared: Shared) -> Path:
    return Path(shutil.copytree(shared.export_dir, tmp / "enc"))


def edit_meta(out: Path, edit) -> Path:
    meta = json.loads((out / META_FILE).read_text())
    edit(meta)
    (out / META_FILE).write_text(json.dumps(meta))
    return out / META_FILE


def load(out: Path, modality: str = "s2", **kw) -> Api:
    return Api(lambda: load_encoder(out, modality, **kw), ExportError, (str(out),))


@case("load-missing-folder")
def _(tmp: Path, shared: Shared) -> Api:
    return load(tmp / "enc")


@case("load-folder-without-metadata")
def _(tmp: Path, shared: Shared) -> Api:
    (tmp / "enc").mkdir()
    return Api(lambda: load_encoder(tmp / "enc", "s2"), ExportError, (META_FILE,))


@case("load-metadata-not-json")
def _(tmp: Path, shared: Shared) -> Api:
    out = copy_export(tmp, shared)
    (out / META_FILE).write_text("{'modalities': None,")
    return Api(lambda: load_encoder(out, "s2"), ExportError, (str(out / META_FILE),))


@case("load-metadata-missing-field")
def _(tmp: Path, shared: Shared) -> Api:
    meta = edit_meta(copy_export(tmp, shared), lambda m: m["modalities"]["s2"].pop("architecture"))
    return Api(lambda: load_encoder(tmp / "enc", "s2"), ExportError, (str(meta), "architecture"))


@case("load-metadata-wrong-type")
def _(tmp: Path, shared: Shared) -> Api:
    meta = edit_meta(
        copy_export(tmp, shared), lambda m: m["modalities"]["s2"].update(in_chans="five")
    )
    return Api(lambda: load_encoder(tmp / "enc", "s2"), ExportError, (str(meta), "in_chans"))


@case("load-metadata-modalities-a-list")
def _(tmp: Path, shared: Shared) -> Api:
    meta = edit_meta(copy_export(tmp, shared), lambda m: m.update(modalities=["s2", "naip"]))
    return Api(lambda: load_encoder(tmp / "enc", "s2"), ExportError, (str(meta), "modalities"))


@case("load-unknown-modality")
def _(tmp: Path, shared: Shared) -> Api:
    out = copy_export(tmp, shared)
    return Api(lambda: load_encoder(out, "s1"), ExportError, (str(out), "s1"))


@case("load-unknown-architecture")
def _(tmp: Path, shared: Shared) -> Api:
    meta = edit_meta(
        copy_export(tmp, shared), lambda m: m["modalities"]["s2"].update(architecture="resnet9000")
    )
    return Api(lambda: load_encoder(tmp / "enc", "s2"), ExportError, (str(meta), "resnet9000"))


@case("load-safetensors-missing")
def _(tmp: Path, shared: Shared) -> Api:
    out = copy_export(tmp, shared)
    (out / "s2.safetensors").unlink()
    return Api(lambda: load_encoder(out, "s2"), ExportError, ("s2.safetensors",))


@case("load-safetensors-garbage")
def _(tmp: Path, shared: Shared) -> Api:
    out = copy_export(tmp, shared)
    (out / "s2.safetensors").write_bytes(b"\x00" * 64)
    return Api(lambda: load_encoder(out, "s2"), ExportError, ("s2.safetensors",))


@case("load-safetensors-wrong-shapes")
def _(tmp: Path, shared: Shared) -> Api:
    out = copy_export(tmp, shared)
    (out / "s2.safetensors").unlink()
    save_file({"conv.weight": torch.zeros(3, 3)}, str(out / "s2.safetensors"))
    return Api(lambda: load_encoder(out, "s2"), ExportError, ("s2.safetensors",))


@case("load-safetensors-of-another-modality")
def _(tmp: Path, shared: Shared) -> Api:
    out = copy_export(tmp, shared)
    shutil.copy(out / "naip.safetensors", out / "s2.safetensors")  # 4 bands, not 5
    return Api(lambda: load_encoder(out, "s2"), ExportError, ("s2.safetensors",))


@case("load-wrong-band-list")
def _(tmp: Path, shared: Shared) -> Api:
    out = copy_export(tmp, shared)
    return Api(lambda: load_encoder(out, "s2", bands=["B04", "B03", "B02"]), ExportError, ("B04",))
