"""Every YAML config in configs/ parses, instantiates its task and datamodule, and builds
its networks, which give a finite loss on a tiny random batch of the right bands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from rsmm.cli import build_cli
from rsmm.manifests import load_manifest
from rsmm.sensors import get_sensor
from rsmm.tasks.finetune import PretrainedEncoders, check_pretrained

ROOT = Path(__file__).resolve().parents[1] / "configs"
# configs/ holds rsmm command configs named <command>_*.yaml and grid specs named
# grid*.yaml (read by rsmm.grid, checked in tests/test_grid.py)
CONFIGS = sorted(p for p in ROOT.rglob("*.yaml") if not p.name.startswith("grid"))
PREFIXES = {"pretrain": "pretrain", "finetune": "finetune", "linear_probe": "linear-probe"}
#: classes of a user's stack, unknown without its chip manifest
STACK_CLASSES = 4
SIZE, BATCH = 32, 2


def command_of(path: Path) -> str:
    """The rsmm command of a config, from its file-name prefix."""
    for prefix, command in PREFIXES.items():
        if path.stem.startswith(prefix):
            return command
    raise ValueError(f"{path}: config names start with one of {sorted(PREFIXES)} or 'grid'")


def data_bands(dm: Any) -> tuple[dict[str, list[str]], list[str]]:
    """``({modality: band names}, class names)`` a datamodule will load, from its dataset's
    packaged manifest (a user stack's bands default to all of the sensor's)."""
    name = getattr(dm.dataset_class, "manifest_name", None)
    chosen = dict(dm.bands or {})
    if name is None:  # CoRegisteredStack: its manifest is the user's chips.parquet
        mods = list(dm.modalities)
        bands = {m: list(chosen.get(m) or get_sensor(m).band_names) for m in mods}
        return bands, [f"class{i}" for i in range(STACK_CLASSES)]
    manifest = load_manifest(name)
    if dm.dataset_kwargs.get("s2_bands"):  # Meter-ML: resolution names -> the file's bands
        chosen["s2"] = s2_bands(manifest, dm.dataset_kwargs["s2_bands"])
    mods = list(dm.modalities or manifest.modalities)
    bands = {m: list(chosen.get(m) or manifest.modality(m).bands) for m in mods}
    classes = list(manifest.classes)[: dm.dataset_kwargs.get("num_classes") or None]
    return bands, classes


def s2_bands(manifest: Any, spec: list[str]) -> list[str]:
    """Meter-ML's ``s2_bands`` (band names, or resolutions standing for the bands of the
    Sentinel-2 file of that resolution, in file order), read from its manifest."""
    arrays = manifest.extra["files"]["arrays"]
    out: list[str] = []
    for item in spec:
        files = [f for name, f in arrays.items() if name.endswith(f"-{item}.npy")]
        out += files[0]["bands"] if files else [item]
    return out


def random_batch(bands: dict[str, list[str]], views: int, labels: torch.Tensor) -> dict:
    gen = torch.Generator().manual_seed(0)
    batch: dict[str, Any] = {
        m: [torch.randn(BATCH, len(b), SIZE, SIZE, generator=gen) for _ in range(views)]
        for m, b in bands.items()
    }
    batch["label"] = labels
    # numeric sample metadata, as stacks give it (metadata-kernel objectives read it)
    batch["meta"] = {
        "lonlat": torch.tensor([[5.0, 45.0], [5.01, 45.0]]),
        "date": torch.tensor([19000.0, 19010.0]),
    }
    return batch


def build_and_forward(path: Path, forward: bool = True) -> Any:
    """Instantiate ``path`` as ``rsmm <command>`` would, build the task's networks for the
    datamodule's bands, and (``forward``) check the training loss of a random batch."""
    command = command_of(path)
    cli = build_cli(command, ["--config", str(path)])
    model, dm = cli.model, cli.datamodule
    assert model is not None and dm is not None
    bands, classes = data_bands(dm)
    wanted = model.hparams.get("modalities") or list(bands)
    model.hparams["in_channels"] = {m: len(bands[m]) for m in wanted}
    model.hparams["data_info"] = {"bands": bands, "classes": classes}
    if command != "pretrain":
        model.hparams["num_classes"] = len(classes)
        model.hparams["pretrained"] = None  # checked against its pre-training config below
        if model.hparams.loss == "weighted_ce":
            model.hparams["class_weights"] = [1.0 + i for i in range(len(classes))]
    model.configure_models()
    for m, c in model.hparams["in_channels"].items():
        net = model.encoder.backbones[m]
        assert net.state_dict()[next(iter(net.state_dict()))].ndim == 4
        assert model.encoder.in_channels[m] == c
    if not forward:
        return model
    labels = torch.tensor([0, 1])
    if model.hparams.get("multilabel"):
        labels = torch.nn.functional.one_hot(labels, len(classes)).float()
    batch = random_batch({m: bands[m] for m in wanted}, dm.views, labels)
    model.train()
    if command == "pretrain":
        loss, _ = model.shared_step(batch)
    else:
        loss, logits = model._loss(batch)
        assert logits.shape == (BATCH, len(classes)) and torch.isfinite(logits).all()
    assert loss.ndim == 0 and torch.isfinite(loss), path
    return model


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_builds_and_runs(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = build_and_forward(path)
    if command_of(path) == "pretrain":
        cfg = yaml.safe_load(path.read_text())
        assert model.hparams.loss == (cfg.get("model", {}).get("loss") or "ntxent")


# results/<configs folder>/<pre-training config stem>/pretrain/ (a grid row keyed
# "<folder>/<stem>" in a grid writing to results/<grid>/ adds one level)
PRETRAINED = re.compile(r"results/(?:[^/]+/)?(?P<dir>[^/]+)/(?P<stem>pretrain_[^/]+)/pretrain/")


def finetune_pairs() -> list[tuple[Path, Path]]:
    """(fine-tuning config, the pre-training config whose checkpoint it starts from)."""
    pairs = []
    for path in CONFIGS:
        pre = (yaml.safe_load(path.read_text()).get("model") or {}).get("pretrained")
        match = PRETRAINED.search(pre or "")
        if command_of(path) != "pretrain" and match:
            pairs.append((path, ROOT / match["dir"] / f"{match['stem']}.yaml"))
    return pairs


@pytest.mark.parametrize("pair", finetune_pairs(), ids=lambda p: str(p[0].relative_to(ROOT)))
def test_finetune_config_fits_its_pretraining_config(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint a fine-tuning config names comes from a pre-training config whose
    backbones and bands the fine-tuning model accepts (the check FinetuneTask runs)."""
    monkeypatch.chdir(tmp_path)
    ft_path, pre_path = pair
    assert pre_path.is_file(), f"{ft_path} starts from {pre_path}, which is not a config"
    ft, pre = build_and_forward(ft_path, False), build_and_forward(pre_path, False)
    mods = list(ft.hparams.in_channels)
    sd = {k: v for k, v in pre.encoder.state_dict().items() if k.split(".")[1] in mods}
    weights = PretrainedEncoders(
        pre_path,
        sd,
        {m: pre.encoder.archs[m] for m in mods},
        {m: pre.hparams.data_info["bands"][m] for m in mods},
    )
    check_pretrained(weights, ft.encoder, ft.hparams.data_info["bands"])


def test_there_are_configs() -> None:
    assert len(CONFIGS) >= 12
    assert len(finetune_pairs()) >= 10


def _copy_with(path: Path, tmp_path: Path, **model: Any) -> Path:
    cfg = yaml.safe_load(path.read_text())
    cfg["model"].update(model)
    out = tmp_path / path.name
    out.write_text(yaml.safe_dump(cfg))
    return out


@pytest.mark.parametrize(
    ("config", "change", "error"),
    [
        ("eurosat/finetune_ms.yaml", {"backbone": "resnet_eighteen"}, "resnet_eighteen"),
        ("meterml/pretrain_s1_s2_aug.yaml", {"backbone": "resnet_eighteen"}, "resnet_eighteen"),
        # unknown options of a pairwise OT objective and of an SSL method fail when the
        # task is created
        ("ot/pretrain_ot_sample.yaml", {"loss_kwargs": {"bogus": 3}}, "bogus"),
        ("eurosat/pretrain_ms_byol.yaml", {"loss_kwargs": {"bogus": 3}}, "bogus"),
    ],
)
def test_broken_configs_fail(
    config: str,
    change: dict[str, Any],
    error: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = _copy_with(ROOT / config, tmp_path, **change)
    with pytest.raises((ValueError, TypeError), match=error):
        build_and_forward(bad)


THESIS_DIRS = ("eurosat", "resisc45", "meterml", "sen12ms_dfc2020", "ot")


def test_every_config_names_its_thesis_source_and_data_root() -> None:
    """The first line says which thesis table, row and column a config reproduces (or
    that it is not a thesis config); a thesis config states its reported numbers (or
    where its grid holds them) and what the thesis leaves unstated; a downstream config
    says where its data come from. Nothing says the numbers are not available."""
    for path in ROOT.rglob("*.yaml"):
        text = path.read_text()
        assert "not available" not in text, path
        if path.parent.name not in THESIS_DIRS or path.name.startswith("grid"):
            continue  # bigearthnet/: published anchors, tests/test_bigearthnet_configs.py;
            # beyond/: objectives beyond the thesis; grids: tests/test_thesis_grids.py
        head = [line for line in text.splitlines() if line.startswith("#")]
        assert head[0].startswith(("# Thesis Table", "# Not a thesis config")), path
        if head[0].startswith("# Thesis Table"):
            assert re.search(r"row|column", head[0] + head[1]), path
            assert "Reported" in " ".join(head), path
        else:
            assert "no number is reported" in " ".join(head), path
        assert "data/" in text or "--data.init_args.root" in text, path


def test_meterml_configs_read_sentinel2_rgb_nir_at_10m() -> None:
    """The thesis' Meter-ML protocol: Sentinel-2 RGB + NIR at 10 m (every config with s2)."""
    paths = [*(ROOT / "meterml").glob("*_*.yaml"), *(ROOT / "ot").glob("*.yaml")]
    for path in paths:
        if path.name.startswith("grid"):
            continue
        data = yaml.safe_load(path.read_text())["data"]["init_args"]
        if "MeterML" in yaml.safe_load(path.read_text())["data"]["class_path"]:
            if "s2" in data["modalities"]:
                assert data["s2_bands"] == ["10m"], path


def test_thesis_protocol_values() -> None:
    """Values the thesis states: RGB pre-training batch 512, SSW-SSL lambda 20 with L = 10
    and 3, SW-SSL lambda 1, dense entropic eps 10 / 1000, unbalanced lambda 0.05,
    DFC2020 fine-tuning on the whole validation release, SupCon+CE alpha = 0.5."""

    def cfg(name: str) -> dict[str, Any]:
        return yaml.safe_load((ROOT / name).read_text())

    for ds in ("eurosat", "resisc45"):
        for path in (ROOT / ds).glob("pretrain_rgb_*.yaml"):
            assert yaml.safe_load(path.read_text())["data"]["init_args"]["batch_size"] == 512
    assert cfg("eurosat/pretrain_rgb_moco.yaml")["model"]["loss_kwargs"]["queue_size"] == 3072
    for name, lam, n in [
        ("ot/pretrain_ssw_ssl.yaml", 20, 10),
        ("ot/pretrain_ssw_ssl_l3.yaml", 20, 3),
        ("ot/pretrain_sw_ssl.yaml", 1, 10),
        ("ot/pretrain_sw_ssl_l3.yaml", 1, 3),
    ]:
        kw = cfg(name)["model"]["loss_kwargs"]
        assert (kw["lam"], kw["n_projections"]) == (lam, n), name
    assert cfg("ot/pretrain_dense_sinkhorn.yaml")["model"]["dense_kwargs"]["eps"] == 10
    assert cfg("ot/pretrain_dense_sinkhorn_eps1000.yaml")["model"]["dense_kwargs"]["eps"] == 1000
    unbalanced = cfg("ot/pretrain_dense_unbalanced.yaml")["model"]
    assert unbalanced["dense"] == "unbalanced" and unbalanced["dense_kwargs"]["rho"] == 0.05
    for name, alpha in [
        ("finetune_dfc2020_s1_s2.yaml", 0),
        ("finetune_dfc2020_s1_s2_supcon_ce.yaml", 0.5),
    ]:
        c = cfg(f"sen12ms_dfc2020/{name}")
        assert c["data"]["init_args"]["holdout_fraction"] == 0
        assert c["model"].get("alpha", 0) == alpha
