"""STiCA objective: feature-map crop terms plus the cross-modal term (spec 5.2-5.4).

Input: the STiCA model's training output, a list ``[c1, c2]`` of two per-view dicts (view 1, view 2) with the
L2-normalised ``B x E`` embeddings ``"video"``, ``"audio"`` and the crop lists ``"large"``, ``"small"``,
``"tlarge"``, ``"tsmall"`` (see :mod:`stica_ext.models.stica`).

Primitive ``g(x, y; τ, symmetric)`` (:func:`contrastive`): queries ``y`` against keys ``sg[x_local ; x*]`` (the
local rows first, then the rows of every other process; positives on the diagonal), plus, when symmetric, queries
``x`` against ``sg[y_local ; y*]``, averaged. Keys never carry gradient.

Crop terms (temperature ``τc``, default 0.5); the roles are asymmetric:

======== =========================================== ================================================ ===========
term     active when                                 computation                                      comparisons
======== =========================================== ================================================ ===========
L-L      ``num_large == 2``                          ``g(c2.large[1], c1.large[1])``                  1
S-L      ``num_large >= 1 and num_small >= 1``       ``P(c2.small[j] -> sg[c1.large[i]])`` for all    ``Ls · Ss``
                                                     ``i < num_large, j < num_small``
TL-TL    ``num_large_t == 2``                        ``g(c2.tlarge[1], c1.tlarge[1])``                1
TS-TL    ``num_large_t >= 1 and num_small_t >= 1``   ``P(c2.tsmall[j] -> sg[c1.tlarge[i]])``          ``Lt · St``
======== =========================================== ================================================ ===========

``P(q -> sg[k])`` is one-directional NCE (:func:`~stica_ext.losses.nce.nce_loss`) with the keys ``k`` of all
processes detached: the small crops of view 2 learn from view 1's large crops, which act as fixed targets.
``loss_crops`` is the plain mean over every individual comparison (sum of all term values / number of comparisons).

Cross-modal term (temperature ``τav``, default 0.1, its own setting):
``loss_av = ½[g(c1.video, c1.audio) + g(c2.video, c2.audio)]``.

Total: ``(1 - α)·loss_crops + α·loss_av`` for ``α > 0`` and ``loss_crops`` for ``α = 0``.
A configuration without any active crop term is only valid with ``α = 1`` (pure cross-modal learning; then
``loss_crops`` is reported as 0); otherwise it is rejected (the reference divides 0 by 0 and trains on NaN).
"""

import torch
import torch.nn as nn

from ..registry import LOSS_REGISTRY, register_as
from ..utils.distributed import all_gather_other
from .nce import nce_loss

__all__ = ["contrastive", "active_crop_terms", "crop_losses", "stica_loss", "STiCANCELoss"]


def contrastive(x, y, temperature, symmetric=True, gather=all_gather_other):
    """``g(x, y; τ, symmetric)`` for ``x, y: N x E`` (row ``i`` of ``x`` matches row ``i`` of ``y``).

    Returns ``(loss, accuracy)``: ``ℓ(y -> sg[x ; x*])``, or ``½[ℓ(y -> sg[x ; x*]) + ℓ(x -> sg[y ; y*])]`` when
    ``symmetric`` (accuracies averaged likewise). ``gather(t)`` returns the detached rows of ``t`` from the other
    processes (``0 x E`` in a single process).
    """
    loss1, acc1 = nce_loss(y, x, gather(x), temperature)
    if not symmetric:
        return loss1, acc1
    loss2, acc2 = nce_loss(x, y, gather(y), temperature)
    return 0.5 * (loss1 + loss2), 0.5 * (acc1 + acc2)


def active_crop_terms(num_large, num_small, num_large_t, num_small_t):
    """``{term: number of comparisons}`` of the crop terms active for these crop counts (may be empty)."""
    terms = {}
    if num_large == 2:
        terms["ll"] = 1
    if num_large >= 1 and num_small >= 1:
        terms["sl"] = num_large * num_small
    if num_large_t == 2:
        terms["tltl"] = 1
    if num_large_t >= 1 and num_small_t >= 1:
        terms["tstl"] = num_large_t * num_small_t
    return terms


def _validate_counts(num_large, num_small, num_large_t, num_small_t, alpha):
    if min(num_large, num_small, num_large_t, num_small_t) < 0 or num_large > 2 or num_large_t > 2:
        raise ValueError(f"crop counts must be >= 0 with at most 2 large crops; got large {num_large}, small "
                         f"{num_small}, large temporal {num_large_t}, small temporal {num_small_t}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"the cross-modal weight alpha (STICA.CROSS_MODAL_ALPHA) must be in [0, 1], got {alpha}")
    if not active_crop_terms(num_large, num_small, num_large_t, num_small_t) and alpha < 1.0:
        raise ValueError(
            f"no STiCA crop term is active (STICA.NUM_LARGE_CROPS={num_large}, STICA.NUM_SMALL_CROPS={num_small}, "
            f"STICA.NUM_LARGE_TCROPS={num_large_t}, STICA.NUM_SMALL_TCROPS={num_small_t}): use 2 large crops or "
            f">= 1 large and >= 1 small crops (spatial or temporal), or STICA.CROSS_MODAL_ALPHA 1.0 for a "
            f"cross-modal-only loss (got {alpha})")


def _crop(out, kind, index, view):
    items = out.get(kind)
    if items is None or index >= len(items) or items[index] is None:
        raise ValueError(f"the loss needs {kind} crop {index} of view {view + 1}, which the model output lacks; build "
                         f"the model and the loss with the same STICA crop counts")
    return items[index]


def crop_losses(c1, c2, num_large=2, num_small=4, num_large_t=2, num_small_t=1, temperature=0.5, symmetric=True,
                gather=all_gather_other):
    """Crop terms of spec 5.3 from the two views' outputs.

    Returns ``(loss_crops, terms, accs)``: the mean over all comparisons (a zero tensor when no term is active),
    ``{term: mean value of that term's comparisons}`` for the active terms (``ll``, ``sl``, ``tltl``, ``tstl``) and
    the list of per-comparison accuracies.
    """
    total, count, terms, accs = 0.0, 0, {}, []
    for tag, large, small, n_large, n_small in (("", "large", "small", num_large, num_small),
                                                ("t", "tlarge", "tsmall", num_large_t, num_small_t)):
        if n_large == 2:  # L-L: large crop 1 of both views
            loss, acc = contrastive(_crop(c2, large, 1, 1), _crop(c1, large, 1, 0), temperature, symmetric, gather)
            terms[f"{tag}l{tag}l"] = loss
            total, count = total + loss, count + 1
            accs.append(acc)
        if n_large >= 1 and n_small >= 1:  # S-L: view 2's small crops -> view 1's detached large crops
            term = 0.0
            for i in range(n_large):
                key = _crop(c1, large, i, 0)
                bank = gather(key)
                for j in range(n_small):
                    loss, acc = nce_loss(_crop(c2, small, j, 1), key, bank, temperature)
                    term = term + loss
                    accs.append(acc)
            terms[f"{tag}s{tag}l"] = term / (n_large * n_small)
            total, count = total + term, count + n_large * n_small
    if count == 0:
        ref = c1["video"]
        return ref.new_zeros(()), terms, accs
    return total / count, terms, accs


def stica_loss(outputs, num_large=2, num_small=4, num_large_t=2, num_small_t=1, crop_temperature=0.5,
               cross_modal_temperature=0.1, alpha=0.5, symmetric=True, gather=all_gather_other):
    """STiCA loss of one step.

    Args:
        outputs: ``[c1, c2]``, the model's per-view dicts (``video``, ``audio``, crop lists).
        num_large, num_small, num_large_t, num_small_t: crop counts (the model's).
        crop_temperature: τ of the crop terms.
        cross_modal_temperature: τ of the video-audio term.
        alpha: weight of the cross-modal term, in [0, 1].
        symmetric: symmetric ``g`` in the L-L, TL-TL and cross-modal terms.
        gather: detached rows of the other processes (``all_gather_other``).

    Returns:
        ``(loss, stats)``; ``stats`` holds detached scalar tensors: ``loss_crops``, ``loss_av``, ``loss_<term>`` for
        each active crop term (mean over its comparisons), ``acc_crops``, ``acc_av`` and ``nce_acc`` (mean accuracy
        over every contrastive comparison, crops and cross-modal).
    """
    _validate_counts(num_large, num_small, num_large_t, num_small_t, alpha)
    if not isinstance(outputs, (list, tuple)) or len(outputs) != 2:
        raise ValueError("outputs must be the model's list of two per-view dicts")
    c1, c2 = outputs
    loss_crops, terms, crop_accs = crop_losses(c1, c2, num_large, num_small, num_large_t, num_small_t,
                                               crop_temperature, symmetric, gather)
    with torch.set_grad_enabled(torch.is_grad_enabled() and alpha > 0):
        av1, acc1 = contrastive(c1["video"], c1["audio"], cross_modal_temperature, symmetric, gather)
        av2, acc2 = contrastive(c2["video"], c2["audio"], cross_modal_temperature, symmetric, gather)
        loss_av = 0.5 * (av1 + av2)
    if not terms:  # only reachable with alpha == 1
        loss = loss_av
    elif alpha > 0:
        loss = (1.0 - alpha) * loss_crops + alpha * loss_av
    else:
        loss = loss_crops
    av_accs = [acc1, acc2]
    stats = {"loss_crops": loss_crops.detach(), "loss_av": loss_av.detach()}
    stats.update({f"loss_{name}": value.detach() for name, value in terms.items()})
    zero = loss_av.new_zeros(())
    stats["acc_crops"] = torch.stack(crop_accs).mean() if crop_accs else zero
    stats["acc_av"] = torch.stack(av_accs).mean()
    stats["nce_acc"] = torch.stack(crop_accs + av_accs).mean()
    return loss, stats


@register_as(LOSS_REGISTRY, "stica_nce")
class STiCANCELoss(nn.Module):
    """Module form of :func:`stica_loss`, registered as ``stica_nce`` (``MODEL.LOSS_FUNC``).

    ``loss_fn(outputs) -> (loss, stats)`` with ``outputs`` the STiCA model's list of two per-view dicts.
    Raises ``ValueError`` at construction for a configuration without an active crop term (unless ``alpha == 1``).
    """

    def __init__(self, num_large=2, num_small=4, num_large_t=2, num_small_t=1, crop_temperature=0.5,
                 cross_modal_temperature=0.1, alpha=0.5, symmetric=True):
        super().__init__()
        _validate_counts(num_large, num_small, num_large_t, num_small_t, alpha)
        if crop_temperature <= 0 or cross_modal_temperature <= 0:
            raise ValueError(f"temperatures must be > 0, got crops {crop_temperature}, cross-modal "
                             f"{cross_modal_temperature}")
        self.num_large, self.num_small = num_large, num_small
        self.num_large_t, self.num_small_t = num_large_t, num_small_t
        self.crop_temperature, self.cross_modal_temperature = crop_temperature, cross_modal_temperature
        self.alpha, self.symmetric = alpha, symmetric

    @classmethod
    def from_cfg(cls, cfg):
        s = cfg.STICA
        return cls(num_large=s.NUM_LARGE_CROPS, num_small=s.NUM_SMALL_CROPS, num_large_t=s.NUM_LARGE_TCROPS,
                   num_small_t=s.NUM_SMALL_TCROPS, crop_temperature=s.CROP_TEMPERATURE,
                   cross_modal_temperature=s.CROSS_MODAL_TEMPERATURE, alpha=s.CROSS_MODAL_ALPHA)

    @property
    def terms(self):
        """``{term: comparisons}`` of the active crop terms."""
        return active_crop_terms(self.num_large, self.num_small, self.num_large_t, self.num_small_t)

    def forward(self, outputs, gather=all_gather_other):
        return stica_loss(outputs, self.num_large, self.num_small, self.num_large_t, self.num_small_t,
                          self.crop_temperature, self.cross_modal_temperature, self.alpha, self.symmetric, gather)

    def extra_repr(self):
        return (f"crops=({self.num_large}, {self.num_small}, {self.num_large_t}, {self.num_small_t}), "
                f"crop_temperature={self.crop_temperature}, cross_modal_temperature={self.cross_modal_temperature}, "
                f"alpha={self.alpha}")
