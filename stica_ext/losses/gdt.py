"""GDT objective: the nine transformation hypotheses (spec 4.2, 4.3), clean formulation.

Views (each a pair of video / audio embeddings, ``N x C``, L2-normalised, local batch):

* ``orig`` = (V, A), ``rev`` = (VR, AR) the time-reversed clip, ``shift`` = (V2, A2) a second clip of the same
  video at an independent position, ``shift_rev`` = (V2R, A2R).

``X*`` denotes the rows of view ``X`` gathered from the *other* processes (detached); with one process every
``X*`` is empty. ``P(Q→K; E)`` is :func:`nce_loss` with queries ``Q``, positives/local keys ``K`` and bank ``E``.
"""

import torch
import torch.nn as nn

from ..config import HYPOTHESIS_NAMES, VIEW_ORDER, resolve_hypothesis, views_for_hypothesis
from ..registry import LOSS_REGISTRY, register_as
from ..utils.distributed import all_gather_other
from .nce import nce_loss

__all__ = ["VIEW_ORDER", "views_for_hypothesis", "gdt_loss", "GDTNCELoss"]


class _Terms:
    """Accumulates weighted NCE terms and their accuracies."""

    def __init__(self, temperature):
        self.t = temperature
        self.loss = 0.0
        self.acc = []
        self.named = {}

    def p(self, q, k, bank, weight):
        loss, acc = nce_loss(q, k, bank, self.t)
        self.loss = self.loss + weight * loss
        self.acc.append(acc)
        return loss


def _base1(T, o, other, w):
    (v, a), (vs, as_) = o, other
    T.p(v, a, [as_], w / 2)
    T.p(a, v, [vs], w / 2)


def _base(T, o, t, oo, to, w):
    (v, a), (vt, at), (vs, as_), (vts, ats) = o, t, oo, to
    T.p(v, a, [as_, ats], w / 4)
    T.p(a, v, [vs, vts], w / 4)
    T.p(vt, at, [as_, ats], w / 4)
    T.p(at, vt, [vs, vts], w / 4)


def _var(T, o, t, oo, to, w):
    (v, a), (vt, at), (vs, as_), (vts, ats) = o, t, oo, to
    T.p(v, a, [as_, ats, at], w / 4)
    T.p(a, v, [vs, vts, vt], w / 4)
    T.p(vt, at, [as_, ats, a], w / 4)
    T.p(at, vt, [vs, vts, v], w / 4)


def _inv(T, o, t, oo, to, w):
    (v, a), (vt, at), (vs, as_), (vts, ats) = o, t, oo, to
    T.p(v, at, [ats, as_], w / 4)
    T.p(a, vt, [vts, vs], w / 4)
    T.p(vt, a, [ats, as_], w / 4)
    T.p(at, v, [vts, vs], w / 4)


# Each hypothesis: list of (block, original view, transformed view, weight) (spec 4.3 table).
_BLOCKS = {
    2: [(_var, "orig", "rev", 1.0)],
    3: [(_base, "orig", "rev", 0.5), (_inv, "orig", "rev", 0.5)],
    4: [(_var, "orig", "shift", 1.0)],
    5: [(_base, "orig", "shift", 0.5), (_inv, "orig", "shift", 0.5)],
    6: [(_var, "orig", "rev", 0.25), (_var, "shift", "shift_rev", 0.25),
        (_var, "orig", "shift", 0.25), (_var, "rev", "shift_rev", 0.25)],
    7: [(_base, "orig", "rev", 0.2), (_inv, "orig", "rev", 0.2), (_inv, "shift", "shift_rev", 0.2),
        (_var, "orig", "shift", 0.2), (_var, "rev", "shift_rev", 0.2)],
    8: [(_base, "orig", "shift", 0.2), (_var, "orig", "rev", 0.2), (_var, "shift", "shift_rev", 0.2),
        (_inv, "orig", "shift", 0.2), (_inv, "rev", "shift_rev", 0.2)],
    9: [(_base, "orig", "rev", 1 / 6), (_base, "orig", "shift", 1 / 6), (_inv, "orig", "rev", 1 / 6),
        (_inv, "shift", "shift_rev", 1 / 6), (_inv, "orig", "shift", 1 / 6), (_inv, "rev", "shift_rev", 1 / 6)],
}


def gdt_loss(views, hypothesis=1, temperature=0.07, gather=all_gather_other):
    """GDT loss of one step.

    Args:
        views: dict view name -> ``(video_emb, audio_emb)``, each ``N x C`` local embeddings (with gradient);
            must contain :func:`views_for_hypothesis` of ``hypothesis``.
        hypothesis: 1..9 or README name.
        temperature: τ of every NCE term.
        gather: function returning the detached rows of a tensor from the other processes (``0 x C`` alone).

    Returns:
        ``(loss, stats)`` with ``stats = {"nce_acc": mean contrastive accuracy over terms}``.
    """
    h = resolve_hypothesis(hypothesis)
    needed = views_for_hypothesis(h)
    missing = [n for n in needed if n not in views]
    if missing:
        raise KeyError(f"hypothesis {h} ({HYPOTHESIS_NAMES[h]}) needs views {needed}; missing {missing}")
    others = {n: tuple(gather(x) for x in views[n]) for n in needed}
    T = _Terms(temperature)
    if h == 1:
        _base1(T, views["orig"], others["orig"], 1.0)
    else:
        for block, o, t, w in _BLOCKS[h]:
            block(T, views[o], views[t], others[o], others[t], w)
    acc = torch.stack(T.acc).mean()
    return T.loss, {"nce_acc": acc}


@register_as(LOSS_REGISTRY, "gdt_nce")
class GDTNCELoss(nn.Module):
    """Module form of :func:`gdt_loss`, registered as ``gdt_nce`` (``MODEL.LOSS_FUNC``)."""

    def __init__(self, hypothesis=1, temperature=0.07):
        super().__init__()
        self.hypothesis = resolve_hypothesis(hypothesis)
        self.temperature = temperature

    @classmethod
    def from_cfg(cls, cfg):
        return cls(hypothesis=cfg.GDT.HYPOTHESIS, temperature=cfg.GDT.TEMPERATURE)

    @property
    def views(self):
        return views_for_hypothesis(self.hypothesis)

    def forward(self, views):
        return gdt_loss(views, self.hypothesis, self.temperature)
