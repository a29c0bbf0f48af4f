"""The finiteness checks behind every "no NaN saved or returned" guarantee."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textme_sdk.engine.numerics import all_finite, nonfinite_rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_finds_exactly_the_bad_rows(dtype, bad):
    x = torch.randn(20_000, 7).to(dtype)
    rows = [3, 8191, 8192, 19_999]
    for r in rows:
        x[r, r % 7] = bad
    assert nonfinite_rows(x, chunk=8192).tolist() == rows
    assert not all_finite(x)
    x[rows] = 0.5
    assert nonfinite_rows(x).tolist() == [] and all_finite(x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_overflowing_sums_of_finite_values_are_not_reported(dtype):
    big = torch.finfo(dtype).max
    x = torch.full((300, 64), big, dtype=dtype)  # every row sum overflows; no value is inf
    assert torch.isinf(x.sum(dim=1)).all()
    assert nonfinite_rows(x).tolist() == []
    assert all_finite(x)
    x[17, 5] = float("nan")
    assert nonfinite_rows(x).tolist() == [17]


def test_inf_minus_inf_in_one_row_is_found():
    x = torch.zeros(4, 3)
    x[2, 0], x[2, 1] = float("inf"), -float("inf")
    assert nonfinite_rows(x).tolist() == [2]


def test_shapes_and_dtypes_without_floats():
    assert all_finite(torch.arange(10)) and all_finite(torch.zeros(0, 5))
    assert nonfinite_rows(torch.ones(3, dtype=torch.bool)).tolist() == []
    assert nonfinite_rows(torch.tensor([1.0, float("nan"), 2.0])).tolist() == [1]
    assert not all_finite(torch.tensor(float("nan"))) and all_finite(torch.tensor(1.0))
    x = torch.zeros(3, 2, 2)
    x[1, 1, 0] = float("inf")
    assert nonfinite_rows(x).tolist() == [1] and not all_finite(x)


def test_reads_a_memory_mapped_tensor_in_place(tmp_path):
    path = tmp_path / "m.bin"
    arr = np.memmap(path, dtype=np.float16, mode="w+", shape=(50_000, 16))
    arr[:] = 0.25
    arr[42_000, 3] = np.nan
    arr.flush()
    t = torch.from_numpy(np.memmap(path, dtype=np.float16, mode="c", shape=(50_000, 16)))
    assert nonfinite_rows(t).tolist() == [42_000]


def test_unit_matches_f_normalize_in_value_and_gradient():
    from torch.nn import functional as F

    from textme_sdk.engine.numerics import unit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 300, generator=g, dtype=torch.float64) * 3
    x[5] = 0.0  # a clamped row: gradient g / eps, as F.normalize gives
    w = torch.randn(64, 300, generator=g, dtype=torch.float64)
    grads = []
    for fn in (lambda t: F.normalize(t, dim=-1), unit, lambda t: unit(unit(t))):
        t = x.clone().requires_grad_()
        out = fn(t)
        (out * w).sum().backward()
        grads.append((out.detach(), t.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-9, atol=1e-9)
    # normalising twice: the same gradient (the projection is idempotent) except on the zero
    # row, where each clamped normalisation scales by 1/eps
    keep = torch.arange(64) != 5
    torch.testing.assert_close(grads[2][1][keep], grads[0][1][keep], rtol=1e-9, atol=1e-9)
    assert torch.autograd.gradcheck(unit, (x[6:9].clone().requires_grad_(),))


def test_unit_without_grad_and_under_double_backward():
    from textme_sdk.engine.numerics import unit

    x = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(unit(x).norm(dim=-1), torch.ones(4))
    t = x.double().requires_grad_()
    assert torch.autograd.gradgradcheck(unit, (t,))
