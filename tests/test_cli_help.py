"""``rsmm ... --help``: the data and model options first, and no torch to print them."""

from __future__ import annotations

import ast
import inspect

import pytest
from helpers import fresh_python

from rsmm.cli import main
from rsmm.cli.help import DATAMODULE, TASKS, class_options, datamodule_classes, google_args


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 0
    return capsys.readouterr().out.splitlines()


def _line_of(lines: list[str], option: str) -> int:
    return next(i for i, line in enumerate(lines) if line.split()[:1] == [option])


def test_pretrain_help_lists_the_data_options_first(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _help(capsys, "pretrain", "--help")
    data = [_line_of(lines, f"--data.{o}") for o in ("root", "modalities", "label_fraction")]
    assert max(data) < 60  # near the top
    assert max(data) < _line_of(lines, "--model.backbone") < _line_of(lines, "--model.loss")
    assert "(required)" in lines[_line_of(lines, "--data.root")]
    assert "(default: 1.0)" in " ".join(lines[_line_of(lines, "--data.label_fraction") :][:4])
    text = "\n".join(lines)
    assert "--help-all" in text and "--data.help CLASS" in text
    assert "rsmm.datamodules.SyntheticDataModule" in text
    # the trainer's options are not listed one by one (LightningCLI's help has ~40)
    assert "--trainer.max_epochs" in text and "--trainer.gradient_clip_val" not in text


def test_finetune_help_says_how_to_get_the_random_init_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = " ".join(" ".join(_help(capsys, "finetune", "--help")).split())
    assert "leave it out (or set it to null) to train from random initialisation" in text
    assert "--model.pretrained" in text and "--model.freeze_backbone" in text
    assert "random-initialisation baseline" in " ".join(
        " ".join(_help(capsys, "linear-probe", "--help")).split()
    )


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_help_options_are_the_classes_parameters(command: str) -> None:
    """The help, read from the source, names every parameter with its real default."""
    import rsmm.datamodules
    import rsmm.tasks

    for (module, name), package in ((TASKS[command], rsmm.tasks), (DATAMODULE, rsmm.datamodules)):
        cls = getattr(package, name)
        params = [
            p
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        options = class_options(module, name)
        assert [o.name for o in options] == [p.name for p in params]
        for option, param in zip(options, params, strict=True):
            if param.default is inspect.Parameter.empty:
                assert option.default is None
            else:
                assert ast.literal_eval(option.default) == param.default, option
            assert option.doc, f"{name}.{option.name} is not documented"
    assert datamodule_classes() == [  # the order of __all__ (ruff keeps it sorted)
        n for n in rsmm.datamodules.__all__ if n.endswith("DataModule") and n != DATAMODULE[1]
    ]


def test_google_args_reads_first_paragraphs() -> None:
    doc = """Summary.

    Args:
        root: dataset root
            directory.
        views (int): views per modality.

            Second paragraph, not shown.
        **kwargs: passed on.

    Returns:
        nothing: this is not an argument.
    """
    assert google_args(inspect.cleandoc(doc)) == {
        "root": "dataset root directory.",
        "views": "views per modality.",
        "kwargs": "passed on.",
    }
    assert google_args("No sections.") == {}


def test_help_all_is_lightning_clis_full_help(capsys: pytest.CaptureFixture[str]) -> None:
    text = "\n".join(_help(capsys, "test", "--help-all"))
    assert "--trainer.gradient_clip_val" in text and "--model.pretrained" in text


def test_importing_the_cli_and_asking_for_help_import_no_torch() -> None:
    """``import rsmm.cli`` and every command's ``--help`` stay clear of torch, Lightning
    and matplotlib (what made ``rsmm pretrain --help`` take ~a minute)."""
    code = """
import contextlib, io, sys
import rsmm.cli
heavy = ("torch", "lightning", "matplotlib", "jsonargparse")
print(sorted(m for m in heavy if m in sys.modules))
helps = [["--help"], ["export", "--help"], ["manifest", "--help"], ["manifest", "build", "--help"],
         ["benchmark", "--help"], ["grid", "--help"], ["pretrain", "--help"], ["finetune", "--help"],
         ["linear-probe", "--help"], ["test", "--help"]]
for argv in helps:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            rc = rsmm.cli.main(argv)
        except SystemExit as exc:
            rc = exc.code
    assert rc == 0 and ("usage" in out.getvalue() or "commands:" in out.getvalue()), argv
print(sorted(m for m in heavy if m in sys.modules))
"""
    proc = fresh_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "[]"]
