"""What a user installs: the built sdist and wheel, their package data and ``rsmm --version``.

``python -m build`` makes the sdist and, from it, the wheel; the wheel is installed with
``--no-deps`` into a new virtual environment that sees this environment's packages (torch,
TorchGeo ...) through a ``.pth`` file, and the quick start runs from an unrelated folder.
Building needs setuptools from the package index (``build``'s isolated environment), as
CI and ``scripts/setup.sh`` have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import rsmm

REPO = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[str]:
    """Files of the checkout that git tracks (or all files under rsmm/, without git)."""
    try:
        return subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(REPO)) for p in (REPO / "rsmm").rglob("*") if p.is_file()]


def _package_data() -> set[str]:
    """The non-Python files under rsmm/ that a user's installation needs."""
    return {p for p in _tracked_files() if p.startswith("rsmm/") and not p.endswith(".py")}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # from a copy of the tracked files: building writes rsmm.egg-info into its source
    src = tmp_path_factory.mktemp("src")
    for rel in _tracked_files():
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        cwd=out,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_wheel_and_sdist_hold_the_package_data(dist: Path) -> None:
    (wheel,) = dist.glob("rsmm-*.whl")
    (sdist,) = dist.glob("rsmm-*.tar.gz")
    assert wheel.name.startswith(f"rsmm-{rsmm.__version__}-py3-none-any")
    data = _package_data()
    assert {"rsmm/py.typed", "rsmm/data_manifests/eurosat.json"} <= data
    assert any(p.startswith("rsmm/augment/recipes/") for p in data)
    assert any("hierarchy_" in p for p in data)  # label trees
    names = set(zipfile.ZipFile(wheel).namelist())
    assert data <= names, sorted(data - names)
    assert not any("__pycache__" in n or n.startswith(("tests/", "benchmarks/")) for n in names)
    with tarfile.open(sdist) as tar:
        root = tar.getnames()[0].split("/")[0]
        in_sdist = {n.removeprefix(root + "/") for n in tar.getnames()}
    assert data <= in_sdist, sorted(data - in_sdist)
    metadata = zipfile.ZipFile(wheel).read(f"rsmm-{rsmm.__version__}.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert "Requires-Dist: torch>=2.4" in requires
    # ranges, never pins, in what the package asks of an environment
    assert not [r for r in requires if "==" in r.split(";")[0]], requires


def test_installed_wheel_runs_from_an_unrelated_folder(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("rsmm-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # this environment's packages (torch, TorchGeo, ...) without reinstalling them; a path
    # added by a .pth file is not scanned for .pth files, so rsmm's editable install is not
    (site / "_outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        env=env,
        check=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*args: str | Path) -> str:
        proc = subprocess.run(
            [str(a) for a in args], cwd=work, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    assert run(bindir / "rsmm", "--version").strip() == f"rsmm {rsmm.__version__}"
    where = run(python, "-c", "import rsmm; print(rsmm.__file__)").strip()
    assert Path(where).is_relative_to(env_dir), where
    # the benchmarks ship inside the package: no source tree needed
    bench = run(bindir / "rsmm", "benchmark", "loss", "--steps", "4", "--losses", "ssw_ssl")
    assert "| ssw_ssl |" in bench, bench[-2000:]
    out = run(bindir / "rsmm", "quickstart", "--fast", "--out", work / "qs")
    assert "pre-trained" in out, out[-2000:]
    assert (work / "qs" / "encoders" / "rsmm-encoders.json").is_file()
