import pytest
import torch

from reference_losses import reference_hard_negative_infonce

from textme_sdk.engine import hard_negative_infonce


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("window", [(0.1, 0.9), (0.0, 1.0), (0.5, 0.95)])
def test_vectorised_equals_reference(seed, window):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(48, 24, generator=g)
    k = q + 0.8 * torch.randn(48, 24, generator=g)
    q1, k1 = q.clone().requires_grad_(), k.clone().requires_grad_()
    q2, k2 = q.clone().requires_grad_(), k.clone().requires_grad_()
    a = hard_negative_infonce(q1, k1, 0.07, window)
    b = reference_hard_negative_infonce(q2, k2, 0.07, window)
    assert a.item() > 0
    assert torch.allclose(a, b, atol=1e-5)
    a.backward()
    b.backward()
    assert torch.allclose(q1.grad, q2.grad, atol=1e-5)
    assert torch.allclose(k1.grad, k2.grad, atol=1e-5)


def test_window_excludes_easy_and_too_close_negatives():
    # query 0: key 1 has S=0.95*s (too close), key 2 has S=0.5*s (in window), key 3 negative
    keys = torch.eye(4)
    q = torch.tensor([[1.0, 0.95, 0.5, -0.3]])
    q = torch.cat([q, torch.eye(4)[1:]])
    loss = hard_negative_infonce(q, keys, temperature=1.0)
    s = torch.nn.functional.normalize(q, dim=-1)[0]
    expected = -torch.log_softmax(torch.stack([s[0], s[2]]), 0)[0]
    # rows 1..3 are one-hot and have no negative in the window: only row 0 counts
    assert torch.allclose(loss, expected, atol=1e-6)


def test_no_negatives_gives_zero_with_gradient():
    q = torch.eye(6, requires_grad=True)
    loss = hard_negative_infonce(q, torch.eye(6))
    assert loss.item() == 0.0
    loss.backward()
    assert q.grad is not None


def test_fp16_inputs_are_safe():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(256, 64, generator=g)
    k = q + 0.5 * torch.randn(256, 64, generator=g)
    full = hard_negative_infonce(q, k)
    half = hard_negative_infonce(q.half(), k.half())
    assert torch.isfinite(half) and half.dtype == torch.float32
    assert torch.allclose(full, half, atol=1e-2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        hard_negative_infonce(torch.randn(4, 8), torch.randn(5, 8))


def test_masked_nll_gradient_is_exact_to_second_order():
    """The closed-form backward of the loss's last step (the rest is autograd), in float64."""
    from textme_sdk.engine.losses import _MaskedNLL

    g = torch.Generator().manual_seed(3)
    sim = torch.randn(10, 10, generator=g, dtype=torch.float64).requires_grad_()
    keep = torch.rand(10, 10, generator=g) < 0.6
    keep.fill_diagonal_(True)
    keep[4] = False  # a query without negatives: no part in the loss
    keep[4, 4] = True
    active = keep.sum(dim=1) > 1
    fn = lambda s: _MaskedNLL.apply(s, keep, active, 1 / 0.07)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (sim,))
    assert torch.autograd.gradgradcheck(fn, (sim,))
    fn(sim).backward()
    assert torch.all(sim.grad[4] == 0) and torch.all(sim.grad[~keep] == 0)
