"""``rsmm benchmark <name>`` end to end, on tiny settings.

Speed is not asserted (it lives in benchmarks/RESULTS.md); these tests check that each
benchmark runs from the CLI, prints its ratio table and, where it compares results
(Sinkhorn plans against POT's), that the compared results agree.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from rsmm.cli import main


def _ratios(text: str) -> list[float]:
    """The ``= 1.23x`` / ``: 1.23x`` ratios a benchmark prints."""
    return [float(v) for v in re.findall(r"[=:]\s*([0-9.]+)x\b", text)]


def _run(capsys: pytest.CaptureFixture, *argv: str) -> str:
    assert main(["benchmark", *argv]) == 0
    return capsys.readouterr().out


def _check_ratios(out: str, expected: int) -> None:
    ratios = _ratios(out)
    assert len(ratios) == expected, out
    assert all(math.isfinite(r) and r > 0 for r in ratios), out


def test_augment(capsys: pytest.CaptureFixture) -> None:
    out = _run(capsys, "augment", "--batch-size", "4", "--repeats", "1")
    for label in ("(a) rsmm", "(b) torchgeo", "(c) rsmm ops per sample", "(d) torchgeo/kornia"):
        assert label in out
    _check_ratios(out, 3)


def test_sinkhorn_plans_agree_with_pot(capsys: pytest.CaptureFixture) -> None:
    out = _run(
        capsys, "sinkhorn", "--size", "24", "--iters", "20", "--batch", "2", "--repeats", "1"
    )
    rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+0\.", line)]
    assert [(r[0], r[1]) for r in rows] == [
        ("1", "0.05"),
        ("1", "0.01"),
        ("2", "0.05"),
        ("2", "0.01"),
    ]
    for r in rows:
        max_diff, max_p = float(r[-2]), float(r[-1])
        assert max_diff <= 1e-4 * max_p, out  # the same plan to float rounding


def test_loaders(capsys: pytest.CaptureFixture, torchgeo_fixtures: Path) -> None:
    out = _run(capsys, "loaders", "--repeats", "1", "--fixtures", str(torchgeo_fixtures))
    assert "rsmm SEN12MS" in out and "torchgeo SEN12MS" in out
    _check_ratios(out, 1)


def test_stacks(capsys: pytest.CaptureFixture) -> None:
    out = _run(
        capsys, "stacks", "--extent", "1280", "--chip", "320", "--samples", "4", "--repeats", "1"
    )
    assert "rsmm CoRegisteredStack s2+s1+naip" in out
    _check_ratios(out, 2)


def test_loss(capsys: pytest.CaptureFixture) -> None:
    out = _run(capsys, "loss", "--steps", "4", "--losses", "ot_sample")
    assert re.search(r"\| ntxent \| \d+ \| \+0\.0 % \|", out), out
    assert re.search(r"\| ot_sample \| \d+ \|", out), out


def test_step_with_a_method_against_torchgeo(capsys: pytest.CaptureFixture) -> None:
    out = _run(capsys, "step", "--steps", "4", "--methods", "moco")
    assert "torchgeo / rsmm step time" in out
    assert re.search(r"\| moco \| \d+ \| [0-9.]+ \| MoCoTask \| \d+ \| [0-9.]+ \|", out), out


def test_unknown_benchmark_exits_2_naming_the_choices(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:  # argparse's exit, as from the shell
        main(["benchmark", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "augment" in err and "Traceback" not in err


def test_hyperbolic(capsys: pytest.CaptureFixture) -> None:
    out = _run(capsys, "hyperbolic", "--fast", "--pretrain-epochs", "1", "--probe-epochs", "1")
    for row in ("| ntxent | linear |", "| hyp_ntxent | linear |", "| hyp_ntxent | horospherical |"):
        assert re.search(rf"\| 0 {re.escape(row)} 0\.\d+ \|", out), out
    norms = re.search(r"\| mean norm \|(.*)\|", out)
    assert norms is not None, out
    values = [float(v) for v in norms[1].split("|") if v.strip() != "nan"]
    assert values and all(0.0 < v < 1.0 for v in values), out


def test_missing_modalities(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """The missing-modality experiment through ``rsmm benchmark missing`` (tiny scene, one
    seed, one setting): a run per protocol, its table, and runs kept by setting name."""
    args = ["missing", "--mode", "tiny", "--seeds", "0", "--settings", "(c) s1 only"]
    out = _run(capsys, *args, "--out", str(tmp_path))
    assert "seed 0  (c) s1 only, fine-tuned: test OA" in out, out
    assert re.search(r"\| \(c\) s1 only \| linear probe \| 0\.\d+ ± 0\.000 \| – \|", out), out
    assert (tmp_path / "seed0" / "c_s1_only").is_dir()
