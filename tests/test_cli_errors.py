"""What reaches the terminal: one ``rsmm: error:`` line for a user error, a traceback for a bug."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import fresh_python

from rsmm.cli import main
from rsmm.cli.errors import wrapped_user_error
from rsmm.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "synthetic"
TINY = ["--data.num_samples", "16", "--data.size", "8", "--data.batch_size", "8"]
TINY += ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
TINY += ["--trainer.accelerator", "cpu"]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("rsmm: error:")]


def test_an_internal_error_in_training_reaches_the_terminal_as_a_traceback(
    tmp_path: Path,
) -> None:
    """A TypeError raised while training (a bug, not a user error) is not one line."""
    code = f"""
import sys
from rsmm.tasks import PretrainTask

def broken_step(self, batch, batch_idx):
    raise TypeError("unsupported operand inside the loss")

PretrainTask.training_step = broken_step
from rsmm.cli import main
sys.exit(main(["pretrain", "--config", {str(CONFIGS / "pretrain.yaml")!r}, *{TINY!r}]))
"""
    proc = fresh_python(code, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "TypeError: unsupported operand inside the loss" in proc.stderr
    assert not _error_lines(proc.stderr)


def test_a_user_error_reaches_the_terminal_as_one_line(tmp_path: Path) -> None:
    """A value the datamodule refuses: exit 2, one line naming the option, no traceback."""
    code = f"""
import sys
from rsmm.cli import main
sys.exit(main(["finetune", "--config", {str(CONFIGS / "finetune.yaml")!r},
               "--data.label_fraction", "2"]))
"""
    proc = fresh_python(code, tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = _error_lines(proc.stderr)
    assert "label_fraction must be in (0, 1], got 2.0" in line
    assert "Traceback" not in proc.stderr
    # the rest of stderr is Lightning's seeding notice, nothing about the error
    others = [line for line in proc.stderr.splitlines() if not line.startswith("rsmm: error:")]
    assert all(line.startswith("Seed set to") for line in others), proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        # raised by the datamodule, which jsonargparse instantiates from a class_path
        # and wraps in a ValueError "Does not validate against any of the Union subtypes"
        ("--data.batch_size", "0", "batch_size must be >= 1, got 0"),
        ("--data.views", "0", "views must be >= 1, got 0"),
        # raised by the task, which LightningCLI instantiates directly
        ("--model.loss", "nosuchloss", "loss: unknown 'nosuchloss'"),
    ],
)
def test_errors_of_instantiated_classes_are_one_line(
    option: str,
    value: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RSMM_DEBUG", raising=False)
    args = ["pretrain", "--config", str(CONFIGS / "pretrain.yaml"), *TINY, option, value]
    assert main(args) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert message in line and "Union subtypes" not in line
    assert not (tmp_path / "runs").exists()
    # RSMM_DEBUG shows the datamodule's or task's own error, with its traceback
    monkeypatch.setenv("RSMM_DEBUG", "1")
    with pytest.raises(ConfigError, match=message.split(",")[0]):
        main(args)


def test_an_invalid_value_type_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["pretrain", "--config", str(CONFIGS / "pretrain.yaml"), "--data.batch_size", "abc"]
    assert main(args) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "batch_size" in line and "abc" in line and "rsmm pretrain --help" in line


def test_only_explicit_causes_are_unwrapped() -> None:
    user = ConfigError("views must be >= 1")
    try:
        try:
            raise user
        except ConfigError as err:
            raise ValueError("Does not validate against any of the Union subtypes") from err
    except ValueError as wrapped:
        assert wrapped_user_error(wrapped) is user
    # a bug raised while a user error was being handled stays a bug
    try:
        try:
            raise user
        except ConfigError:
            raise TypeError("bug in the handler")  # noqa: B904
    except TypeError as bug:
        assert bug.__context__ is user and wrapped_user_error(bug) is None
    assert wrapped_user_error(ValueError("no cause")) is None
