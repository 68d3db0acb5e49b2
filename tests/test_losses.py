import math

import pytest
import torch
import torch.nn.functional as F

from stica_ext.losses import GDTNCELoss, gdt_loss, nce_loss


def test_nce_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # tau = 1, no bank: each row has logits [1, 0] (positive first) -> log(1 + e^-1)
    loss, acc = nce_loss(q, k, None, temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert acc.item() == 1.0
    # bank [-1, 0]: row 0 logits [1, 0, -1] -> log(1 + e^-1 + e^-2); row 1 logits [0, 1, 0] -> log(1 + 2 e^-1)
    bank = torch.tensor([[-1.0, 0.0]])
    loss, _ = nce_loss(q, k, bank, temperature=1.0)
    expected = 0.5 * (math.log(1 + math.exp(-1) + math.exp(-2)) + math.log(1 + 2 * math.exp(-1)))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # temperature scales the logits
    loss, _ = nce_loss(q, k, bank, temperature=0.5)
    expected = 0.5 * (math.log(1 + math.exp(-2) + math.exp(-4)) + math.log(1 + 2 * math.exp(-2)))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_nce_empty_bank_and_list_bank_equal_concatenation():
    torch.manual_seed(0)
    q, k = F.normalize(torch.randn(4, 8), dim=1), F.normalize(torch.randn(4, 8), dim=1)
    e1, e2 = F.normalize(torch.randn(3, 8), dim=1), F.normalize(torch.randn(2, 8), dim=1)
    a, _ = nce_loss(q, k, torch.zeros(0, 8))
    b, _ = nce_loss(q, k, None)
    assert torch.equal(a, b)
    c, _ = nce_loss(q, k, [e1, e2])
    d, _ = nce_loss(q, k, torch.cat([e1, e2]))
    assert torch.allclose(c, d)
    logits = torch.cat([q @ k.t(), q @ torch.cat([e1, e2]).t()], 1) / 0.07
    assert torch.allclose(c, F.cross_entropy(logits, torch.arange(4)))


def test_nce_gradient_only_through_queries():
    torch.manual_seed(0)
    q = torch.randn(3, 4, requires_grad=True)
    k = torch.randn(3, 4, requires_grad=True)
    bank = torch.randn(2, 4, requires_grad=True)
    loss, _ = nce_loss(q, k, bank)
    loss.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None and bank.grad is None


def test_nce_accuracy_is_argmax_equals_positive():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # row 0 -> col 0 (hit); row 1 -> argmax col 0, positive col 1 (miss); row 2 -> tie, argmax col 1, positive 2 (miss)
    _, acc = nce_loss(q, k, None, temperature=1.0)
    assert acc.item() == pytest.approx(1 / 3)


def test_nce_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        nce_loss(torch.randn(3, 4), torch.randn(2, 4))


def test_cross_modal_baseline_single_process():
    torch.manual_seed(1)
    v, a = F.normalize(torch.randn(5, 6), dim=1), F.normalize(torch.randn(5, 6), dim=1)
    loss, stats = gdt_loss({"orig": (v, a)}, hypothesis=1, temperature=0.1)
    expected = 0.5 * (nce_loss(v, a, None, 0.1)[0] + nce_loss(a, v, None, 0.1)[0])
    assert torch.allclose(loss, expected)
    assert 0.0 <= stats["nce_acc"].item() <= 1.0


def test_cross_modal_baseline_uses_other_process_rows_as_negatives():
    torch.manual_seed(2)
    v, a = F.normalize(torch.randn(4, 6), dim=1), F.normalize(torch.randn(4, 6), dim=1)
    other = {id(v): F.normalize(torch.randn(4, 6), dim=1), id(a): F.normalize(torch.randn(4, 6), dim=1)}
    loss, _ = gdt_loss({"orig": (v, a)}, 1, 0.07, gather=lambda x: other[id(x)])
    # video queries see the other processes' audio rows, audio queries their video rows
    expected = 0.5 * (nce_loss(v, a, other[id(a)])[0] + nce_loss(a, v, other[id(v)])[0])
    assert torch.allclose(loss, expected)


def test_loss_module_and_missing_views():
    m = GDTNCELoss(hypothesis="v_reversal", temperature=0.07)
    assert m.views == ("orig", "rev")
    v = F.normalize(torch.randn(3, 4), dim=1)
    with pytest.raises(KeyError, match="rev"):
        m({"orig": (v, v)})
