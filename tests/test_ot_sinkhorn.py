"""Sinkhorn solvers against POT (float64, iteration by iteration) and numerical edge cases."""

from __future__ import annotations

import math
import warnings

import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmm.losses.ot import sinkhorn, sinkhorn_unbalanced
from rsmm.losses.ot import solvers as sinkhorn_module


def _problem(seed: int, n: int = 30, m: int = 40, batch: int | None = None):
    g = torch.Generator().manual_seed(seed)
    shape = (n, m) if batch is None else (batch, n, m)
    C = torch.rand(shape, generator=g, dtype=torch.float64)
    a = torch.rand(shape[:-1], generator=g, dtype=torch.float64) + 0.1
    b = torch.rand((*shape[:-2], m), generator=g, dtype=torch.float64) + 0.1
    return C, a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)


def _rel_err(P: torch.Tensor, ref: torch.Tensor) -> float:
    return float((P - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize(
    ("eps", "n_iters"), [(10.0, 5), (1.0, 20), (0.1, 50), (0.01, 300), (1e-3, 1500)]
)
def test_balanced_matches_pot(eps: float, n_iters: int) -> None:
    C, a, b = _problem(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", numItermax=n_iters, stopThr=0)
    P = sinkhorn(C, a, b, eps=eps, n_iters=n_iters)
    assert P.dtype == torch.float64 and P.shape == C.shape
    assert _rel_err(P, ref) <= 1e-5


@pytest.mark.parametrize("eps", [1.0, 0.1, 0.05, 0.01])
@pytest.mark.parametrize("rho", [0.1, 1.0, 10.0])
def test_unbalanced_matches_pot(eps: float, rho: float) -> None:
    C, a, b = _problem(1)
    a, b = 2.0 * a, 0.5 * b  # unequal masses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ot.unbalanced.sinkhorn_unbalanced(a, b, C, eps, rho, numItermax=100, stopThr=0)
    P = sinkhorn_unbalanced(C, a, b, eps=eps, rho=rho, n_iters=100)
    assert _rel_err(P, ref) <= 1e-5


def test_uniform_default_marginals() -> None:
    C, _, _ = _problem(2, n=6, m=9)
    P = sinkhorn(C, eps=0.05, n_iters=500)
    assert torch.allclose(P.sum(), torch.tensor(1.0, dtype=P.dtype))
    assert torch.allclose(P.sum(1), torch.full((6,), 1 / 6, dtype=P.dtype))
    assert torch.allclose(P.sum(0), torch.full((9,), 1 / 9, dtype=P.dtype), atol=1e-10)


def test_batched_equals_per_problem() -> None:
    C, a, b = _problem(3, n=12, m=10, batch=4)
    C[1] *= 5.0  # different scales need different stabilisation steps
    P = sinkhorn(C, a, b, eps=0.02, n_iters=80)
    U = sinkhorn_unbalanced(C, a, b, eps=0.05, rho=0.5, n_iters=40)
    for i in range(4):
        torch.testing.assert_close(P[i], sinkhorn(C[i], a[i], b[i], eps=0.02, n_iters=80))
        torch.testing.assert_close(
            U[i], sinkhorn_unbalanced(C[i], a[i], b[i], eps=0.05, rho=0.5, n_iters=40)
        )
    # shared (unbatched) marginals broadcast over the batch
    torch.testing.assert_close(
        sinkhorn(C, a[0], b[0], eps=0.02, n_iters=80)[2],
        sinkhorn(C[2], a[0], b[0], eps=0.02, n_iters=80),
    )


def test_cpu_chunking_equals_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    C, a, b = _problem(9, n=12, m=10, batch=5)
    whole = sinkhorn(C, a, b, eps=0.02, n_iters=30, tol=1e-12)
    whole_u = sinkhorn_unbalanced(C, a, b, eps=0.05, n_iters=30)
    # room for two problems per chunk: chunks of 2, 2 and 1
    monkeypatch.setattr(sinkhorn_module, "_CPU_CHUNK_BYTES", 2 * 2 * 12 * 10 * 8)
    torch.testing.assert_close(sinkhorn(C, a, b, eps=0.02, n_iters=30, tol=1e-12), whole)
    torch.testing.assert_close(sinkhorn_unbalanced(C, a, b, eps=0.05, n_iters=30), whole_u)


def test_float32_close_to_float64() -> None:
    C, a, b = _problem(4)
    P64 = sinkhorn(C, a, b, eps=0.01, n_iters=200)
    P32 = sinkhorn(C.float(), a.float(), b.float(), eps=0.01, n_iters=200)
    assert P32.dtype == torch.float32
    assert _rel_err(P32.double(), P64) < 1e-4


def test_rho_inf_is_balanced() -> None:
    C, a, b = _problem(5, n=8, m=8)
    U = sinkhorn_unbalanced(C, a, b, eps=0.2, rho=math.inf, n_iters=500)
    P = sinkhorn(C, a, b, eps=0.2, n_iters=500)
    assert _rel_err(U, P) < 1e-8


def test_tolerance_stops_with_small_marginal_error() -> None:
    C, a, b = _problem(6)
    P = sinkhorn(C, a, b, eps=0.05, n_iters=10_000, tol=1e-9)
    assert float((P.sum(0) - b).abs().sum()) < 1e-9
    assert torch.allclose(P.sum(1), a)
    converged = sinkhorn(C, a, b, eps=0.05, n_iters=3000)
    assert _rel_err(P, converged) < 1e-6


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_infinite_costs_forbid_pairs() -> None:
    C, _, _ = _problem(7, n=6, m=6)
    C = C.clone().requires_grad_()
    masked = C.masked_fill(torch.eye(6, dtype=torch.bool), math.inf)
    P = sinkhorn(masked, eps=0.01, n_iters=50)
    U = sinkhorn_unbalanced(masked, eps=0.01, n_iters=50)
    assert torch.all(P.diagonal() == 0) and torch.all(U.diagonal() == 0)
    ref = ot.sinkhorn(
        torch.full((6,), 1 / 6, dtype=torch.float64),
        torch.full((6,), 1 / 6, dtype=torch.float64),
        C.detach().masked_fill(torch.eye(6, dtype=torch.bool), 1e6),
        0.01,
        method="sinkhorn_log",
        numItermax=50,
        stopThr=0,
    )
    assert _rel_err(P.detach(), ref) < 1e-5
    ((P * C).sum() + (U * C).sum()).backward()
    assert torch.isfinite(C.grad).all()


def test_gradient_matches_finite_differences() -> None:
    C, a, b = _problem(8, n=4, m=5)
    C.requires_grad_()
    weights = torch.rand(4, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda c: (sinkhorn(c, a, b, eps=0.3, n_iters=15) * weights).sum(), (C,)
    )
    assert torch.autograd.gradcheck(
        lambda c: (sinkhorn_unbalanced(c, a, b, eps=0.3, rho=0.7, n_iters=15) * weights).sum(),
        (C,),
    )


@settings(max_examples=25, deadline=None)
@given(
    log_eps=st.floats(math.log(1e-3), math.log(10.0)),
    log_scale=st.floats(math.log(1e-6), math.log(1e4)),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32]),
    unbalanced=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_no_nan_or_inf(
    log_eps: float, log_scale: float, dtype: torch.dtype, unbalanced: bool, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    C = (torch.rand(2, 7, 5, generator=g) * math.exp(log_scale)).to(dtype).requires_grad_()
    eps = math.exp(log_eps)
    if unbalanced:
        P = sinkhorn_unbalanced(C, eps=eps, rho=1.0, n_iters=30)
    else:
        P = sinkhorn(C, eps=eps, n_iters=30)
        # the last step is a row projection: rows sum to 1/7 whatever eps and the scale
        torch.testing.assert_close(
            P.float().sum(-1), torch.full((2, 7), 1 / 7), atol=2e-3, rtol=2e-2
        )
    assert P.dtype == dtype and P.shape == C.shape
    assert torch.isfinite(P).all()
    (P.float() * torch.rand(2, 7, 5, generator=g)).sum().backward()
    assert torch.isfinite(C.grad).all()


def test_invalid_arguments() -> None:
    C = torch.rand(3, 4)
    with pytest.raises(ValueError, match="`C` must have shape"):
        sinkhorn(torch.rand(3))
    with pytest.raises(TypeError, match="floating-point"):
        sinkhorn(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="`eps`"):
        sinkhorn(C, eps=0.0)
    with pytest.raises(ValueError, match="`n_iters`"):
        sinkhorn(C, n_iters=0)
    with pytest.raises(ValueError, match="`tol`"):
        sinkhorn(C, tol=-1.0)
    with pytest.raises(ValueError, match=r"`a` must have shape \(3,\)"):
        sinkhorn(C, a=torch.ones(4) / 4)
    with pytest.raises(ValueError, match="`b` must be strictly positive"):
        sinkhorn(C, b=torch.tensor([0.5, 0.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match="NaN"):
        sinkhorn(torch.tensor([[0.0, math.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="finite entry"):
        sinkhorn(torch.tensor([[math.inf, math.inf], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="`rho`"):
        sinkhorn_unbalanced(C, rho=0.0)


@pytest.mark.parametrize(
    ("dtype", "row_tol"),
    [
        (torch.float64, 1e-13),
        (torch.float32, 2e-6),
        # half inputs are solved in float32; the output's rounding bounds the row sums
        (torch.bfloat16, 2.0**-8),
        (torch.float16, 2.0**-10),
    ],
)
@pytest.mark.parametrize("cost_over_eps", [1.0, 1e2, 1e3, 1e4, 1e5])
@pytest.mark.parametrize("n_iters", [1, 2, 30])
def test_rows_hold_whatever_cost_over_eps(
    dtype: torch.dtype, row_tol: float, cost_over_eps: float, n_iters: int
) -> None:
    """The docstring's promise: rows sum to `a` (relative error within the dtype's
    precision) for any C/eps and any number of iterations; the mass is sum(a)."""
    if dtype == torch.float16 and cost_over_eps > 6e4:
        pytest.skip("costs above 65504 are not representable in float16")
    g = torch.Generator().manual_seed(int(cost_over_eps) + n_iters)
    C = torch.rand(3, 7, 5, generator=g, dtype=torch.float64) * cost_over_eps
    a = torch.rand(7, generator=g, dtype=torch.float64) + 0.1
    a = (a / a.sum()).to(dtype)
    P = sinkhorn(C.to(dtype), a, eps=1.0, n_iters=n_iters).double()
    rows = P.sum(-1) / a.double()
    assert float((rows - 1).abs().max()) <= row_tol
    assert float((P.sum((-2, -1)) - a.double().sum()).abs().max()) <= row_tol


@pytest.mark.parametrize("cost_over_eps", [1e2, 1e3])
def test_columns_within_tol_when_tol_stops(cost_over_eps: float) -> None:
    """Columns hold only at convergence: when `tol` stops the loop early their L1 error is
    below `tol` (the docstring's numbers: ~1000 iterations at C/eps = 1e2, ~3000 at 1e3)."""
    g = torch.Generator().manual_seed(11)
    C = torch.rand(3, 7, 5, generator=g, dtype=torch.float64) * cost_over_eps
    P = sinkhorn(C, eps=1.0, n_iters=5000, tol=1e-9)
    assert float((P.sum(-2) - 0.2).abs().sum(-1).max()) < 1e-9


def test_columns_are_not_promised_without_convergence() -> None:
    """What the docstring warns about, measured: one iteration leaves the columns off at
    any C/eps, and at C/eps = 1e5 even 1000 iterations leave an L1 error of tens of percent
    (the rows stay exact)."""
    g = torch.Generator().manual_seed(0)
    C = torch.rand(7, 5, generator=g, dtype=torch.float64)
    one = sinkhorn(C * 10, eps=1.0, n_iters=1)
    assert float((one.sum(0) - 0.2).abs().sum()) > 1e-2
    hard = sinkhorn(C * 1e5, eps=1.0, n_iters=1000)
    assert float((hard.sum(0) - 0.2).abs().sum()) > 0.1
    torch.testing.assert_close(hard.sum(1), torch.full((7,), 1 / 7, dtype=torch.float64))
