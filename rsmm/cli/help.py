"""The short ``--help`` of the training commands, read from rsmm's source.

``rsmm pretrain --help`` lists the options of the datamodule (``data.*``) and of the task
(``model.*``) with their defaults and documentation, and points to ``--help-all`` for
LightningCLI's full help (every Trainer option). The options are read from the source
files with :mod:`ast` (signature and Google-style ``Args:`` section), so the help needs
neither torch nor Lightning and comes back at once; it cannot drift from the classes,
since it is read from them.
"""

from __future__ import annotations

import argparse
import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import rsmm

TASKS = {
    "pretrain": ("rsmm.tasks.pretrain", "PretrainTask"),
    "finetune": ("rsmm.tasks.finetune", "FinetuneTask"),
    "linear-probe": ("rsmm.tasks.finetune", "FinetuneTask"),
    "test": ("rsmm.tasks.finetune", "FinetuneTask"),
}
DATAMODULE = ("rsmm.datamodules.base", "MultiModalDataModule")

DESCRIPTIONS = {
    "pretrain": "Multimodal contrastive pre-training. Give a config with `model:` (PretrainTask: "
    "backbone per modality, loss ntxent|supcon|..., temperature) and `data:` (a datamodule "
    "class_path such as rsmm.datamodules.MeterMLDataModule with root, modalities, views=2 "
    "and an augmentation preset). Checkpoints and logs go to trainer.default_root_dir.",
    "finetune": "Fine-tune on labels. `model.pretrained` names a pre-training checkpoint or "
    "export directory; leave it out (or set it to null) to train from random "
    "initialisation, the baseline a pre-training is compared with. `data.label_fraction` "
    "takes a stratified, seeded fraction of the labelled training split (e.g. 0.01, 0.1); "
    "`model.modalities` any subset of the pre-trained modalities; `model.alpha` mixes "
    "SupCon with the classification loss.",
    "linear-probe": "Like finetune with frozen encoders (model.freeze_backbone=true): only "
    "the head is trained. Leave out `model.pretrained` for the random-initialisation "
    "baseline.",
    "test": "Evaluate `--ckpt_path` on the test split: OA, AA, kappa, per-class accuracy, "
    "confusion matrix (PNG + CSV in the run directory).",
}


@dataclass(frozen=True)
class Option:
    """One ``__init__`` parameter of a class, as its source writes it.

    Attributes:
        name: the parameter's name.
        default: the source text of its default; ``None`` when it has none (required).
        doc: the first paragraph of its ``Args:`` entry, without reST markup.
    """

    name: str
    default: str | None
    doc: str


def _source_file(module: str) -> Path:
    """The file of an rsmm module, found without importing it (or its package)."""
    base = Path(rsmm.__file__).parent.joinpath(*module.split(".")[1:])
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def google_args(doc: str | None) -> dict[str, str]:
    """``{name: text}`` of the ``Args:`` section of a Google-style docstring.

    The text of an entry is its first paragraph, on one line.
    """
    out: dict[str, list[str]] = {}
    section_indent: int | None = None
    entry_indent: int | None = None
    name: str | None = None
    ended: set[str] = set()  # entries whose first paragraph is complete
    for line in (doc or "").splitlines():
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        if section_indent is None:
            if text in ("Args:", "Arguments:"):
                section_indent = indent
            continue
        if not text:
            if name is not None:
                ended.add(name)
            continue
        if indent <= section_indent:
            break  # the next section
        entry_indent = indent if entry_indent is None else entry_indent
        match = re.match(r"(\*{0,2}\w+)(?:\s*\([^)]*\))?:(?:\s+|$)(.*)", text)
        if indent == entry_indent and match:
            name = match.group(1).lstrip("*")
            out[name] = [match.group(2)]
        elif name is not None and name not in ended:
            out[name].append(text)
    return {k: _plain(" ".join(v)) for k, v in out.items()}


def _plain(text: str) -> str:
    """Docstring text without reST roles and literals."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "").strip()


def class_options(module: str, name: str) -> list[Option]:
    """The ``__init__`` parameters of class ``name`` in rsmm module ``module``.

    ``*args`` / ``**kwargs`` are left out. Documentation comes from the ``Args:``
    section of the class docstring or of ``__init__``'s.
    """
    path = _source_file(module)
    source = path.read_text()
    tree = ast.parse(source, str(path))
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cls is None:
        raise LookupError(f"class {name} not found in {path}")
    init = next(
        (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
    )
    if init is None:
        raise LookupError(f"class {name} in {path} defines no __init__")
    docs = google_args(ast.get_docstring(cls)) | google_args(ast.get_docstring(init))
    args = init.args
    positional = [*args.posonlyargs, *args.args][1:]  # without self
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    pairs = [*zip(positional, [*defaults, *args.defaults]), *zip(args.kwonlyargs, args.kw_defaults)]
    return [
        Option(
            arg.arg,
            None if default is None else ast.get_source_segment(source, default),
            docs.get(arg.arg, ""),
        )
        for arg, default in pairs
    ]


def datamodule_classes() -> list[str]:
    """The datamodules ``rsmm.datamodules`` exports (the base class left out)."""
    path = _source_file("rsmm.datamodules")
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
            return [n for n in names if n.endswith("DataModule") and n != DATAMODULE[1]]
    return []


def _option_help(option: Option) -> str:
    doc = option.doc
    if doc.endswith(":"):  # a sentence introducing a list that is not shown
        doc = doc[: doc.rfind(". ") + 1] if ". " in doc else doc[:-1]
    doc = doc.rstrip(".") + "." if doc else ""
    if option.default is None:
        tail = "(required)"
    elif option.default == "None" and "default" in doc:  # the text says what None means
        tail = ""
    else:
        tail = f"(default: {option.default})"
    return f"{doc} {tail}".strip().replace("%", "%%")  # argparse formats help with %


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def short_help(command: str) -> str:
    """The help of ``rsmm <command> --help``: the data and model options first."""
    p = argparse.ArgumentParser(  # formats the help only: parses nothing
        prog=f"rsmm {command}",
        usage=f"rsmm {command} [--config FILE] [--data.OPTION VALUE] [--model.OPTION VALUE]\n"
        f"{' ' * len(f'usage: rsmm {command} ')}[--trainer.OPTION VALUE] [--seed_everything N] "
        "[--ckpt_path FILE]",
        description=textwrap.fill(DESCRIPTIONS[command], 88),
        formatter_class=_formatter,
        epilog=textwrap.fill(
            "Options given after --config override the file's values; "
            f"`rsmm {command} --config FILE --print_config` prints the resolved config. "
            "Trainer options (--trainer.max_epochs, --trainer.accelerator gpu, "
            "--trainer.devices, --trainer.precision bf16-mixed, --trainer.default_root_dir) "
            f"and the optimiser's are listed by `rsmm {command} --help-all` (slower: it "
            "imports torch and Lightning).",
            88,
        ),
        add_help=False,
    )
    general = p.add_argument_group("options")
    flags: list[tuple[tuple[str, ...], str]] = [
        (("-h", "--help"), "show this help and exit"),
        (("--help-all",), "LightningCLI's full help: every option, the Trainer's included"),
        (("-c", "--config"), "YAML config with model:, data: and trainer: sections"),
        (("--print_config",), "print the resolved config (after all options) and exit"),
        (("--seed_everything",), "global seed (default: 0)"),
    ]
    if command == "test":
        flags.append((("--ckpt_path",), "the checkpoint to evaluate (required)"))
    else:
        flags.append((("--ckpt_path",), "resume an interrupted run from this checkpoint"))
        flags.append(
            (
                ("--checkpoint_every_n_steps",),
                "also write checkpoints/last.ckpt every N training steps (default: 500; "
                "0: only at epoch ends)",
            )
        )
    for names, text in flags:
        general.add_argument(*names, action="store_true", help=text)

    module, cls = DATAMODULE
    classes = ", ".join(f"rsmm.datamodules.{c}" for c in datamodule_classes())
    data = p.add_argument_group(
        f"data options (of every datamodule; `rsmm {command} --data.help CLASS` lists "
        "all of one datamodule's)"
    )
    data.add_argument(
        "--data.class_path", action="store_true", help=f"the datamodule: one of {classes}"
    )
    for option in class_options(module, cls):
        data.add_argument(f"--data.{option.name}", action="store_true", help=_option_help(option))

    module, cls = TASKS[command]
    model = p.add_argument_group(f"model options ({cls})")
    for option in class_options(module, cls):
        model.add_argument(f"--model.{option.name}", action="store_true", help=_option_help(option))
    return p.format_help()
