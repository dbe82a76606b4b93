"""Asymmetric Loss: against a direct per-element transcription of the ASL formula."""

import math

import lcnet_reference
import pytest
import torch

from lcnet_fast.losses import AsymmetricLoss, asymmetric_loss


def transcription(logits, targets, gamma_pos, gamma_neg, clip, eps=1e-8):
    """ASL element by element, in plain Python floats."""
    total = 0.0
    for x, y in zip(logits.flatten().tolist(), targets.flatten().tolist(), strict=True):
        if y == -1:
            continue
        p = 1 / (1 + math.exp(-x))
        if y == 1:
            total += -((1 - p) ** gamma_pos) * math.log(max(p, eps))
        else:
            p_m = max(p - clip, 0.0)
            total += -(p_m**gamma_neg) * math.log(max(1 - p_m, eps))
    return total


@pytest.mark.parametrize(
    "gamma_pos,gamma_neg,clip", [(0, 4, 0.05), (1, 4, 0.05), (0, 0, 0), (2, 3, 0.2)]
)
def test_matches_transcription(gamma_pos, gamma_neg, clip):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 9, generator=g, dtype=torch.float64) * 4
    targets = torch.randint(-1, 2, (6, 9), generator=g).double()
    expected = transcription(logits, targets, gamma_pos, gamma_neg, clip)
    fast = asymmetric_loss(logits, targets, gamma_pos, gamma_neg, clip).item()
    reference = lcnet_reference.asymmetric_loss(logits, targets, gamma_pos, gamma_neg, clip).item()
    assert fast == pytest.approx(expected, rel=1e-12)
    assert reference == pytest.approx(expected, rel=1e-12)


def test_ignored_targets_contribute_nothing_and_mean_counts_valid_only():
    logits = torch.tensor([[3.0, -2.0, 0.5]], dtype=torch.float64)
    all_ignored = torch.full((1, 3), -1.0, dtype=torch.float64)
    assert asymmetric_loss(logits, all_ignored).item() == 0.0
    targets = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    per_element = asymmetric_loss(logits, targets, reduction="none")
    assert per_element[0, 1] == 0
    assert asymmetric_loss(logits, targets, reduction="mean").item() == pytest.approx(
        per_element.sum().item() / 2
    )


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(4, 5, generator=g, dtype=torch.float64) * 2).requires_grad_()
    targets = torch.randint(0, 2, (4, 5), generator=g).double()
    with torch.no_grad():  # keep sigmoid(x) away from the clip kink at p = clip
        p = torch.sigmoid(logits)
        logits[(p - 0.05).abs() < 0.02] += 0.5
    assert torch.autograd.gradcheck(lambda x: asymmetric_loss(x, targets), (logits,))


def test_detached_focusing_keeps_value_changes_gradient():
    logits = torch.tensor([[0.8, -0.3, 2.0]], requires_grad=True)
    targets = torch.tensor([[0.0, 0.0, 1.0]])
    a = asymmetric_loss(logits, targets, gamma_pos=1)
    b = asymmetric_loss(logits, targets, gamma_pos=1, detach_focusing=True)
    assert a.item() == pytest.approx(b.item())
    (ga,) = torch.autograd.grad(a, logits)
    (gb,) = torch.autograd.grad(b, logits)
    assert not torch.allclose(ga, gb)


def test_half_precision_logits_are_computed_in_float32():
    logits = torch.randn(3, 4).half()
    targets = torch.randint(0, 2, (3, 4)).half()
    assert asymmetric_loss(logits, targets).dtype == torch.float32


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="differ in shape"):
        AsymmetricLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction"):
        asymmetric_loss(torch.zeros(2), torch.zeros(2), reduction="avg")
