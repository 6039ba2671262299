"""What a new user meets first: the quick start's progress lines, and every ```python
snippet of README.md running as written.

The snippets run in a folder holding what a reader has at that point: the output of
``rsmm quickstart`` (``--fast`` here, same files) under its default ``rsmm-quickstart/``,
and a weights file in TorchGeo's format under the name TorchGeo downloads it to (random
weights: no network). A snippet may be skipped only when it needs a real dataset or the
network; the line before its fence then says so::

    <!-- readme-test: skip (needs the Meter-ML download) -->
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest
import timm
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((.+?)\)\s*-->")
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def snippets(text: str) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip reason)`` of every python block of a Markdown text."""
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1), skip and skip.group(1)))
    return out


SNIPPETS = snippets(README.read_text())


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder after ``rsmm quickstart --fast`` ran in it, and what it printed."""
    from rsmm.quickstart import main

    root = tmp_path_factory.mktemp("reader")
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        warnings.simplefilter("ignore")
        assert main(["--fast", "--out", str(root / "rsmm-quickstart")]) == 0
    tg = timm.create_model("resnet18", in_chans=13, num_classes=0)
    torch.save(tg.state_dict(), root / "resnet18_sentinel2_all_moco-59bfdff9.pth")
    return root, printed.getvalue()


@pytest.fixture
def reader_folder(quickstart: tuple[Path, str]) -> Path:
    return quickstart[0]


def test_quickstart_prints_a_line_per_epoch_in_every_phase(quickstart: tuple[Path, str]) -> None:
    phases = re.split(r"^\[\d/5\] ", quickstart[1], flags=re.M)[1:]
    assert len(phases) == 7  # scene, pre-training, 2 x 2 fine-tuning runs, export
    assert re.findall(
        r"^    epoch 1/1  train/loss \d+\.\d{3}  val/knn_acc [0-9.]+  \d+ s$", phases[1], re.M
    )
    for run in phases[2:6]:
        assert (
            len(
                re.findall(
                    r"^    epoch \d/2  train/loss [0-9.]+  val/OA [0-9.]+  \d+ s$", run, re.M
                )
            )
            == 2
        )
    assert re.search(r"^done in \d+\.\d min$", quickstart[1], re.M)


def test_quickstart_reads_each_chip_once_and_gives_the_same_samples(
    quickstart: tuple[Path, str],
) -> None:
    from rsmm.datamodules import CoRegisteredStackDataModule
    from rsmm.quickstart import SceneDataModule

    manifest = str(quickstart[0] / "rsmm-quickstart" / "chips.parquet")
    kept = SceneDataModule(root=manifest)
    kept.chips = {}
    kept.setup("fit")
    plain = CoRegisteredStackDataModule(root=manifest)
    plain.setup("fit")
    first = kept.datasets["train"][3]
    assert list(kept.chips["train"]) == [3]
    again = SceneDataModule(root=manifest)  # another phase: shares the chips read
    again.chips = kept.chips
    again.setup("fit")
    assert again.datasets["train"][3] is not None and list(kept.chips["train"]) == [3]
    for m in ("s1", "s2", "naip"):
        assert torch.equal(first[m], plain.datasets["train"][3][m])
        assert torch.equal(again.datasets["train"][3][m], first[m])


def test_snippets_are_found_and_skips_give_a_reason() -> None:
    text = (
        "a\n<!-- readme-test: skip (needs network) -->\n```python\nx = 1\n```\n```python\ny\n```\n"
    )
    assert snippets(text) == [(3, "x = 1\n", "needs network"), (6, "y\n", None)]
    assert sum(reason is None for _, _, reason in SNIPPETS) >= 3


@pytest.mark.parametrize(
    ("line", "code", "skip"), SNIPPETS, ids=[f"README.md:{line}" for line, _, _ in SNIPPETS]
)
def test_readme_snippet_runs(
    line: int,
    code: str,
    skip: str | None,
    reader_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if skip:
        pytest.skip(skip)
    monkeypatch.chdir(reader_folder)
    exec(compile(code, f"{README}:{line}", "exec"), {"__name__": "__readme__"})
