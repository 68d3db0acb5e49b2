"""The NCE primitive of GDT (spec 4.1).

``nce_loss(Q, K, bank)``: row ``i`` of the logits is ``[Q_i·K_0, ..., Q_i·K_{N-1}, Q_i·E_0, ..., Q_i·E_{M-1}] / τ``
and the target is column ``i``: the positive of query ``i`` is key ``i``; the other local keys and every bank row
are negatives. Gradient flows through the queries only: keys and bank are detached here.
"""

import torch
import torch.nn.functional as F


def nce_loss(queries, keys, bank=None, temperature=0.07):
    """Cross-entropy NCE with positives on the diagonal.

    Args:
        queries: ``N x C`` (carries gradient).
        keys: ``N x C``; ``keys[i]`` is the positive of ``queries[i]`` (detached).
        bank: optional extra negatives ``M x C`` (detached), a tensor or a list of tensors; ``M`` may be 0.
        temperature: softmax temperature τ.

    Returns:
        ``(loss, accuracy)``: the mean cross-entropy over the N rows (scalar tensor) and the fraction of rows whose
        arg-max logit is their positive (float tensor, no gradient).
    """
    if queries.shape != keys.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and keys {tuple(keys.shape)} must have the same shape")
    candidates = [keys.detach()]
    if bank is not None:
        bank = [bank] if torch.is_tensor(bank) else list(bank)
        candidates += [b.detach() for b in bank if b.numel() > 0]
    candidates = torch.cat(candidates, dim=0) if len(candidates) > 1 else candidates[0]
    logits = queries @ candidates.t() / temperature
    target = torch.arange(queries.shape[0], device=queries.device)
    loss = F.cross_entropy(logits, target)
    with torch.no_grad():
        acc = (logits.argmax(dim=1) == target).float().mean()
    return loss, acc
