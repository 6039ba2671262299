"""Option and config-file mistakes of every ``rsmm`` command: a typo is never taken for
the option it is a prefix of (``--trainer.max_epoch`` is not ``--trainer.max_epochs``),
and each mistake is one ``rsmm: error:`` line, exit status 2, naming the option (with
the closest valid one) or the config file, with the line and column of a YAML error."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsmm.cli import main
from rsmm.cli.errors import _readable

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = str(REPO / "configs" / "synthetic" / "pretrain.yaml")
FINETUNE = str(REPO / "configs" / "synthetic" / "finetune.yaml")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # a run that started by mistake would write here
    monkeypatch.delenv("RSMM_DEBUG", raising=False)


def error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line of a command that fails with exit status 2."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse-based commands exit as from the shell
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert line.startswith("rsmm: error: ") and "Traceback" not in err
    assert "<unicode string>" not in line and "Union subtypes" not in line
    return line


@pytest.mark.parametrize("command", ["pretrain", "finetune", "linear-probe"])
@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("--trainer.max_epoch", "--trainer.max_epochs"),
        ("--trainer.max_epoch=2", "--trainer.max_epochs"),
        ("--data.batch_siz", "--data.batch_size"),
        ("--data.init_args.batch_siz", "--data.batch_size"),
        ("--model.lr_", "--model.lr"),
        ("--seed_everythin", "--seed_everything"),
    ],
)
def test_a_typo_of_a_training_option_fails_naming_the_closest(
    command: str, typo: str, suggestion: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = PRETRAIN if command == "pretrain" else FINETUNE
    value = [] if "=" in typo else ["2"]
    line = error_line([command, "--config", config, typo, *value], capsys)
    name = typo.split("=")[0].replace(".init_args.", ".")
    assert f"unknown option {name}; did you mean {suggestion}?" in line
    assert f"rsmm {command} --help" in line
    assert not (tmp_path / "runs").exists()


def test_a_typo_of_ckpt_path_is_no_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(["test", "--config", FINETUNE, "--ckpt_pat", "x.ckpt"], capsys)
    assert line == "rsmm: error: rsmm test needs --ckpt_path <checkpoint>"
    line = error_line(["finetune", "--config", FINETUNE, "--ckpt_pat", "x.ckpt"], capsys)
    assert "unknown option --ckpt_pat; did you mean --ckpt_path?" in line


def test_an_unknown_option_without_a_close_one(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(["pretrain", "--config", PRETRAIN, "--nothing_like_it", "1"], capsys)
    assert line.startswith("rsmm: error: unknown option --nothing_like_it (see")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--model.lr", "abc", "model.lr: expected float, got 'abc'"),
        ("--data.batch_size", "abc", "data.batch_size: expected int, got 'abc'"),
        ("--trainer.max_epochs", "abc", "trainer.max_epochs: expected int or null, got 'abc'"),
        (
            "--data.class_path",
            "nosuch.DataModule",
            "data.class_path: cannot use 'nosuch.DataModule': No module named 'nosuch'",
        ),
        (
            "--data.class_path",
            "rsmm.datamodules.Nope",
            "data.class_path: cannot use 'rsmm.datamodules.Nope': module 'rsmm.datamodules' "
            "has no attribute 'Nope'",
        ),
    ],
)
def test_a_wrong_value_is_its_cause_only(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = error_line(["pretrain", "--config", PRETRAIN, option, value], capsys)
    assert line == f"rsmm: error: {message} (see `rsmm pretrain --help`)"


def test_a_missing_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(["pretrain", "--config", "missing.yaml"], capsys)
    assert line == "rsmm: error: config file not found: missing.yaml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model:\n  lr: [1\n",
            "bad.yaml:3:1: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence started at line 2)",
        ),
        ("model:\n  lr: 1\n   loss: x: y\n", "bad.yaml:3:"),
        ("model:\n\tlr: 1\n", "bad.yaml:2:1: found character '\\t' that cannot start any token"),
        ("- model\n- data\n", "bad.yaml: a config file is a mapping of options"),
        ("just text\n", "bad.yaml: a config file is a mapping of options"),
    ],
)
def test_a_config_file_that_is_not_yaml_or_not_a_mapping(
    text: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    line = error_line(["pretrain", "--config", PRETRAIN, "--config", "bad.yaml"], capsys)
    assert line.startswith(f"rsmm: error: {message}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  lrr: 0.1\n", "unknown option model.lrr; did you mean model.lr?"),
        ("trainer:\n  max_epoch: 1\n", "unknown option trainer.max_epoch; did you mean"),
        (
            "data:\n  init_args:\n    batch_siz: 4\n",
            "unknown option data.batch_siz; did you mean data.batch_size?",
        ),
        ("seed_everythin: 1\n", "unknown option seed_everythin; did you mean seed_everything?"),
        ("model:\n  lr: abc\n", "model.lr: expected float, got 'abc'"),
        ("data:\n  class_path: nosuch.DataModule\n", "data.class_path: cannot use"),
    ],
)
def test_a_mistake_inside_a_config_file_names_the_file(
    text: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "mine.yaml").write_text(text)
    line = error_line(["pretrain", "--config", PRETRAIN, "--config", "mine.yaml"], capsys)
    assert line.startswith(f"rsmm: error: mine.yaml: {message}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["export", "a.ckpt", "out", "--overwrit"],
            "unknown option --overwrit; did you mean --overwrite?",
        ),
        (
            ["export", "a.ckpt", "out", "--modal", "s1"],
            "unknown option --modal; did you mean --modalities?",
        ),
        (["manifest", "build", "--ou", "x"], "the following arguments are required: --out"),
        (
            ["manifest", "stats", "eurosat", "root", "--max-sample", "3"],
            "unknown option --max-sample; did you mean --max-samples?",
        ),
        (["grid", "spec.yaml", "--dry"], "unknown option --dry; did you mean --dry-run?"),
        (["quickstart", "--fas"], "unknown option --fas; did you mean --fast?"),
        (["benchmark", "los"], "invalid choice: 'los'"),
    ],
)
def test_argparse_commands_take_no_abbreviation(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = error_line(argv, capsys)
    assert message in line and f"(see `rsmm {argv[0]}" in line
    assert not any(tmp_path.iterdir())


def test_benchmark_options_take_no_abbreviation(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "loss", "--step", "4"])
    assert exc.value.code == 2 and "unrecognized arguments: --step" in capsys.readouterr().err


def test_readable_keeps_what_it_does_not_know() -> None:
    assert _readable("something else\nentirely") == "something else\nentirely"
