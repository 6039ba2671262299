"""Under DDP (2 CPU ranks, gloo) the baseline SSL methods give the single-process loss
and gradients on the concatenated batch (Barlow Twins, like VICReg and MMCR, gathers
every rank's rows with gradients; MoCo's loss is a per-query mean over a shared queue)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_ddp import run


@pytest.mark.parametrize("loss", ["moco", "barlow_twins"])
def test_ddp_two_ranks_equals_single_process(tmp_path: Path, loss: str) -> None:
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir()
    ddp.mkdir()
    run(single, devices=1, batch_size=8, loss=loss)
    run(ddp, devices=2, batch_size=4, loss=loss)
    ref = torch.load(single / "rank0.pt", weights_only=True)
    ranks = [torch.load(ddp / f"rank{r}.pt", weights_only=True) for r in range(2)]
    if loss == "moco":  # each rank's mean over its own queries
        got = (ranks[0]["loss"] + ranks[1]["loss"]) / 2
    else:  # every rank computes the loss of the gathered global batch
        got = ranks[0]["loss"]
        assert ranks[1]["loss"].item() == pytest.approx(got.item(), rel=1e-6)
    assert got.item() == pytest.approx(ref["loss"].item(), rel=1e-5)
    for r in ranks:
        assert r["grads"].keys() == ref["grads"].keys()
        assert not any(".target." in name for name in ref["grads"])
        for name, g in ref["grads"].items():
            # atol: Barlow Twins' projector biases have zero gradient up to float32 noise
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-4, atol=5e-5)
