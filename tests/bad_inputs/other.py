"""Bad inputs of the dataset constructors, ``rsmm grid``, ``rsmm benchmark`` and
``rsmm quickstart``."""

from __future__ import annotations

from pathlib import Path

from bad_inputs.core import Api, Cli, Shared, case
from rsmm import datasets
from rsmm.errors import ConfigError, DatasetNotFoundError, UnknownNameError

TESTS_DATA = Path(__file__).resolve().parents[1] / "data"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# --- dataset constructors -------------------------------------------------------------


@case("dataset-eurosat-missing-root")
def _(tmp: Path, shared: Shared) -> Api:
    root = tmp / "eurosat"
    return Api(lambda: datasets.EuroSAT(root), DatasetNotFoundError, (str(root),))


@case("dataset-resisc45-missing-root")
def _(tmp: Path, shared: Shared) -> Api:
    root = tmp / "resisc45"
    return Api(lambda: datasets.RESISC45(root), DatasetNotFoundError, (str(root),))


@case("dataset-sen12ms-missing-root")
def _(tmp: Path, shared: Shared) -> Api:
    root = tmp / "sen12ms"
    return Api(lambda: datasets.SEN12MS(root), DatasetNotFoundError, (str(root),))


@case("dataset-meterml-missing-root")
def _(tmp: Path, shared: Shared) -> Api:
    root = tmp / "meterml"
    return Api(lambda: datasets.MeterML(root), DatasetNotFoundError, (str(root),))


@case("dataset-meterml-wrong-split")
def _(tmp: Path, shared: Shared) -> Api:
    root = TESTS_DATA / "meterml"
    return Api(lambda: datasets.MeterML(root, split="training"), ConfigError, ("training",))


@case("dataset-meterml-unknown-modality")
def _(tmp: Path, shared: Shared) -> Api:
    root = TESTS_DATA / "meterml"
    call = lambda: datasets.MeterML(root, modalities=("s1", "sar"))  # noqa: E731
    return Api(call, ConfigError, ("sar",))


@case("dataset-meterml-unknown-band")
def _(tmp: Path, shared: Shared) -> Api:
    root = TESTS_DATA / "meterml"
    call = lambda: datasets.MeterML(root, s2_bands=("B02", "B8"))  # noqa: E731
    return Api(call, ConfigError, ("B8",))


@case("dataset-dfc2020-wrong-split")
def _(tmp: Path, shared: Shared) -> Api:
    root = TESTS_DATA / "dfc2020"
    return Api(lambda: datasets.DFC2020(root, split="train"), ConfigError, ("train",))


@case("dataset-synthetic-unknown-band")
def _(tmp: Path, shared: Shared) -> Api:
    call = lambda: datasets.SyntheticMultiModal(bands={"s2": ["B2", "B3"]})  # noqa: E731
    return Api(call, ConfigError, ("B2",))


@case("dataset-unknown-name")
def _(tmp: Path, shared: Shared) -> Api:
    return Api(lambda: datasets.dataset_class("bigearth"), UnknownNameError, ("bigearth",))


# --- rsmm grid ------------------------------------------------------------------------


def grid(tmp: Path, text: str) -> Cli:
    (tmp / "grid.yaml").write_text(text)
    return Cli(["grid", str(tmp / "grid.yaml"), "--dry-run"], ("grid.yaml",))


@case("grid-missing-spec")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["grid", str(tmp / "grid.yaml"), "--dry-run"], ("grid.yaml",))


@case("grid-bad-yaml")
def _(tmp: Path, shared: Shared) -> Cli:
    return grid(tmp, "pretrain:\n  - {name: a, config: [x\n")


@case("grid-spec-a-list")
def _(tmp: Path, shared: Shared) -> Cli:
    return grid(tmp, "- pretrain\n- downstream\n")


@case("grid-unknown-key")
def _(tmp: Path, shared: Shared) -> Cli:
    return grid(tmp, "seed: [0, 1]\n")


@case("grid-config-not-found")
def _(tmp: Path, shared: Shared) -> Cli:
    ft = CONFIGS / "synthetic" / "finetune.yaml"
    return grid(
        tmp,
        f"pretrain:\n  - {{name: ours, config: missing.yaml}}\n"
        f"downstream:\n  - {{name: FT, command: finetune, config: {ft}}}\n",
    )


@case("grid-unknown-command")
def _(tmp: Path, shared: Shared) -> Cli:
    ft = CONFIGS / "synthetic" / "finetune.yaml"
    return grid(
        tmp,
        f"pretrain:\n  - {{name: random, config: null}}\n"
        f"downstream:\n  - {{name: FT, command: fine-tune, config: {ft}}}\n",
    )


@case("grid-seeds-not-integers")
def _(tmp: Path, shared: Shared) -> Cli:
    ft = CONFIGS / "synthetic" / "finetune.yaml"
    return grid(
        tmp,
        f"seeds: [zero]\npretrain:\n  - {{name: random, config: null}}\n"
        f"downstream:\n  - {{name: FT, command: finetune, config: {ft}}}\n",
    )


# --- rsmm benchmark, rsmm quickstart, the command itself --------------------------------


@case("benchmark-unknown-name")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["benchmark", "losses"], ("losses",))


@case("benchmark-too-few-steps")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["benchmark", "loss", "--steps", "2"], ("--steps",))


@case("benchmark-unknown-option")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["benchmark", "loss", "--stpes", "6"], ("--stpes",))


@case("quickstart-seed-not-an-integer")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["quickstart", "--seed", "zero", "--out", str(tmp / "qs")], ("--seed",))


@case("quickstart-out-is-a-file")
def _(tmp: Path, shared: Shared) -> Cli:
    (tmp / "qs").write_text("a file")
    return Cli(["quickstart", "--fast", "--out", str(tmp / "qs")], (str(tmp / "qs"),))


@case("quickstart-unknown-option")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["quickstart", "--fats"], ("--fats",))


@case("unknown-command")
def _(tmp: Path, shared: Shared) -> Cli:
    return Cli(["pretrian", "--config", "x.yaml"], ("pretrian",))
