"""GDT objective: the nine transformation hypotheses (spec 4.2-4.4).

Views (each a pair of video / audio embeddings, ``N x C``, L2-normalised, local batch):

* ``orig`` = (V, A), ``rev`` = (VR, AR) the time-reversed clip, ``shift`` = (V2, A2) a second clip of the same
  video at an independent position, ``shift_rev`` = (V2R, A2R).

``X*`` denotes the rows of view ``X`` gathered from the *other* processes (detached); with one process every
``X*`` is empty. ``P(Q→K; E)`` is :func:`nce_loss` with queries ``Q`` (gradient), positives / local keys ``K``
(``K[i]`` is the positive of ``Q[i]``, the other rows of ``K`` are negatives) and an extra negative bank ``E``.

Every hypothesis is a weighted sum of *blocks* over an (original, transformed) view pair; each block is the mean
of its NCE terms (:data:`BLOCKS`, :data:`HYPOTHESES`). Two ways to build the gathered part of the banks:

* clean (default): exactly the banks of spec 4.3;
* ``reference_bank_aliasing=True``: the banks the reference ends up with when several processes train (spec 4.4,
  Appendix B). The reference keeps one Python list of gathered tensors per view for the whole step and builds a
  bank ``(X*, Y*)`` by extending X's list *in place* with Y's list; later blocks that start from X's list therefore
  also see every view appended to it earlier, duplicates included. :class:`_GatheredBanks` simulates exactly that.
  With one process all gathered tensors are empty and both modes give identical losses.

``num_negatives >= 0`` keeps a random subset (without replacement) of that many rows of each block's gathered bank;
the same row indices are used for the video-query and the audio-query banks and for both halves of the block.
Local in-batch negatives are never dropped. Indices come from ``generator`` (a CPU ``torch.Generator``) when one is
given, else from the global torch RNG.
"""

import torch
import torch.nn as nn

from ..config import HYPOTHESIS_NAMES, VIEW_ORDER, resolve_hypothesis, views_for_hypothesis
from ..registry import LOSS_REGISTRY, register_as
from ..utils.distributed import all_gather_other
from .nce import nce_loss

__all__ = ["VIEW_ORDER", "BLOCKS", "HYPOTHESES", "views_for_hypothesis", "term_names", "gdt_loss", "GDTNCELoss"]

# ---------------------------------------------------------------------------------------------------------------
# Blocks (spec 4.3). One NCE term = (query, positives/local keys, gathered banks, local bank rows), where
# "V", "A" name the original pair and "VT", "AT" the transformed pair. A gathered bank ("A", "AT") means A*, AT*.
# The first two terms are the forward half (set 1), the last two the mirrored half (set 2).
# ---------------------------------------------------------------------------------------------------------------
BLOCKS = {
    "base1": (("V", "A", ("A",), ()),                   # Base1 = ½[P(V→A; A*) + P(A→V; V*)]
              ("A", "V", ("V",), ())),
    "base": (("V", "A", ("A", "AT"), ()),               # Base = ¼[P(V→A; A*,AT*) + P(A→V; V*,VT*)
             ("A", "V", ("V", "VT"), ()),
             ("VT", "AT", ("A", "AT"), ()),             #        + P(VT→AT; A*,AT*) + P(AT→VT; V*,VT*)]
             ("AT", "VT", ("V", "VT"), ())),
    "var": (("V", "A", ("A", "AT"), ("AT",)),           # Var = ¼[P(V→A; A*,AT*,AT) + P(A→V; V*,VT*,VT)
            ("A", "V", ("V", "VT"), ("VT",)),
            ("VT", "AT", ("A", "AT"), ("A",)),          #        + P(VT→AT; A*,AT*,A) + P(AT→VT; V*,VT*,V)]
            ("AT", "VT", ("V", "VT"), ("V",))),
    "inv": (("V", "AT", ("AT", "A"), ()),               # Inv = ¼[P(V→AT; AT*,A*) + P(A→VT; VT*,V*)
            ("A", "VT", ("VT", "V"), ()),
            ("VT", "A", ("AT", "A"), ()),               #        + P(VT→A; AT*,A*) + P(AT→V; VT*,V*)]
            ("AT", "V", ("VT", "V"), ())),
}

# ---------------------------------------------------------------------------------------------------------------
# Hypotheses (spec 4.3 table): (block, original view, transformed view, weight), in the reference's evaluation
# order (the order only matters with reference_bank_aliasing).
# ---------------------------------------------------------------------------------------------------------------
HYPOTHESES = {
    1: (("base1", "orig", None, 1.0),),
    2: (("var", "orig", "rev", 1.0),),
    3: (("base", "orig", "rev", 1 / 2), ("inv", "orig", "rev", 1 / 2)),
    4: (("var", "orig", "shift", 1.0),),
    5: (("base", "orig", "shift", 1 / 2), ("inv", "orig", "shift", 1 / 2)),
    6: (("var", "orig", "rev", 1 / 4), ("var", "shift", "shift_rev", 1 / 4),
        ("var", "orig", "shift", 1 / 4), ("var", "rev", "shift_rev", 1 / 4)),
    7: (("base", "orig", "rev", 1 / 5), ("inv", "orig", "rev", 1 / 5), ("inv", "shift", "shift_rev", 1 / 5),
        ("var", "orig", "shift", 1 / 5), ("var", "rev", "shift_rev", 1 / 5)),
    8: (("base", "orig", "shift", 1 / 5), ("var", "orig", "rev", 1 / 5), ("var", "shift", "shift_rev", 1 / 5),
        ("inv", "orig", "shift", 1 / 5), ("inv", "rev", "shift_rev", 1 / 5)),
    9: (("base", "orig", "rev", 1 / 6), ("base", "orig", "shift", 1 / 6), ("inv", "orig", "rev", 1 / 6),
        ("inv", "shift", "shift_rev", 1 / 6), ("inv", "orig", "shift", 1 / 6), ("inv", "rev", "shift_rev", 1 / 6)),
}


def _term_name(block, orig, trans):
    return f"loss/{block}-{orig}" if trans is None else f"loss/{block}-{orig}-{trans}"


def term_names(hypothesis):
    """Stats keys of the per-block losses of a hypothesis, e.g. ``["loss/base-orig-rev", "loss/inv-orig-rev"]``."""
    return [_term_name(b, o, t) for b, o, t, _ in HYPOTHESES[resolve_hypothesis(hypothesis)]]


class _GatheredBanks:
    """The gathered (other-process) negative banks of one step, keyed by ``(view name, 0 video | 1 audio)``.

    ``bank(keys)`` returns the list of gathered tensors that make up the bank ``keys[0]*, keys[1]*, ...``. Clean mode
    returns exactly those tensors. Aliasing mode mimics the reference: ``keys[0]``'s list is extended in place with
    the lists of the other keys, and the whole grown list is the bank (so it persists into later blocks).
    """

    def __init__(self, gathered, aliasing):
        self.lists = {key: [t] for key, t in gathered.items()}
        self.aliasing = aliasing

    def bank(self, keys):
        if not self.aliasing:
            return [self.lists[k][0] for k in keys]
        first = self.lists[keys[0]]
        for k in keys[1:]:
            first.extend(self.lists[k])
        return list(first)


def _subsample_index(num_rows, num_negatives, generator):
    """Sorted random row indices to keep (``None`` = keep all rows)."""
    if num_negatives < 0 or num_rows <= num_negatives:
        return None
    return torch.randperm(num_rows, generator=generator)[:num_negatives].sort().values


def _block_loss(block, orig, trans, views, banks, temperature, num_negatives, generator):
    """Mean of the NCE terms of one block and their accuracies."""
    where = {"V": (orig, 0), "A": (orig, 1), "VT": (trans, 0), "AT": (trans, 1)}
    terms = BLOCKS[block]
    # Gathered banks, built once per block: both halves share them (and so does the aliasing growth).
    gathered = {}
    for _, _, g, _ in terms:
        if g not in gathered:
            parts = banks.bank([where[n] for n in g])
            gathered[g] = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
    sizes = {b.shape[0] for b in gathered.values()}
    if len(sizes) != 1:
        raise ValueError(f"gathered banks of block {block}({orig},{trans}) differ in size across modalities: {sizes}")
    keep = _subsample_index(sizes.pop(), num_negatives, generator)
    if keep is not None:  # the same rows for the video-query and audio-query banks
        gathered = {g: b.index_select(0, keep.to(b.device)) for g, b in gathered.items()}
    losses, accs = [], []
    for q, k, g, local in terms:
        bank = [gathered[g]] + [views[where[n][0]][where[n][1]] for n in local]
        loss, acc = nce_loss(views[where[q][0]][where[q][1]], views[where[k][0]][where[k][1]], bank, temperature)
        losses.append(loss)
        accs.append(acc)
    return sum(losses) / len(losses), accs


def gdt_loss(views, hypothesis=1, temperature=0.07, gather=all_gather_other, num_negatives=-1,
             reference_bank_aliasing=False, generator=None):
    """GDT loss of one step.

    Args:
        views: dict view name -> ``(video_emb, audio_emb)``, each ``N x C`` local embeddings (with gradient);
            must contain :func:`views_for_hypothesis` of ``hypothesis``.
        hypothesis: 1..9 or README name.
        temperature: τ of every NCE term.
        gather: function returning the detached rows of a tensor from the other processes (``0 x C`` alone);
            called once per needed view tensor, in ``VIEW_ORDER``, video before audio.
        num_negatives: ``-1`` keeps every gathered row; ``n >= 0`` keeps a random subset of ``n`` rows of each
            block's gathered bank (same indices for both modalities); local negatives are always kept.
        reference_bank_aliasing: build the gathered banks as the reference does with several processes (spec 4.4).
        generator: CPU ``torch.Generator`` for the ``num_negatives`` draw; ``None`` uses the global torch RNG.

    Returns:
        ``(loss, stats)``: ``loss`` = Σ weight · block loss (scalar, with gradient); ``stats`` holds detached scalar
        tensors: ``"nce_acc"`` (mean over all NCE terms of the fraction of queries whose arg-max is their positive)
        and one ``"loss/<block>-<orig>[-<trans>]"`` per block (the block's unweighted mean NCE loss, see
        :func:`term_names`).
    """
    h = resolve_hypothesis(hypothesis)
    if num_negatives is None:
        num_negatives = -1
    if num_negatives < -1:
        raise ValueError(f"num_negatives must be -1 (all) or >= 0, got {num_negatives}")
    needed = views_for_hypothesis(h)
    missing = [n for n in needed if n not in views]
    if missing:
        raise KeyError(f"hypothesis {h} ({HYPOTHESIS_NAMES[h]}) needs views {needed}; missing {missing}")
    gathered = {(n, m): gather(views[n][m]) for n in needed for m in (0, 1)}
    banks = _GatheredBanks(gathered, reference_bank_aliasing)
    total, accs, stats = 0.0, [], {}
    for block, orig, trans, weight in HYPOTHESES[h]:
        loss, acc = _block_loss(block, orig, trans, views, banks, temperature, num_negatives, generator)
        total = total + weight * loss
        accs += acc
        stats[_term_name(block, orig, trans)] = loss.detach()
    stats["nce_acc"] = torch.stack(accs).mean()
    return total, stats


@register_as(LOSS_REGISTRY, "gdt_nce")
class GDTNCELoss(nn.Module):
    """Module form of :func:`gdt_loss`, registered as ``gdt_nce`` (``MODEL.LOSS_FUNC``).

    ``forward(views)`` with ``views = {name: (video_emb, audio_emb)}`` returns ``(loss, stats)``. The
    ``num_negatives`` draw uses ``generator`` if given, else the global torch RNG (``from_cfg`` passes none).
    """

    def __init__(self, hypothesis=1, temperature=0.07, num_negatives=-1, reference_bank_aliasing=False,
                 generator=None, gather=all_gather_other):
        super().__init__()
        self.hypothesis = resolve_hypothesis(hypothesis)
        self.temperature = temperature
        self.num_negatives = -1 if num_negatives is None else int(num_negatives)
        if self.num_negatives < -1:
            raise ValueError(f"GDT.NUM_NEGATIVES must be -1 (all) or >= 0, got {num_negatives}")
        self.reference_bank_aliasing = bool(reference_bank_aliasing)
        self.generator = generator
        self.gather = gather

    @classmethod
    def from_cfg(cls, cfg):
        return cls(hypothesis=cfg.GDT.HYPOTHESIS, temperature=cfg.GDT.TEMPERATURE,
                   num_negatives=cfg.GDT.NUM_NEGATIVES, reference_bank_aliasing=cfg.GDT.REFERENCE_BANK_ALIASING)

    @property
    def views(self):
        return views_for_hypothesis(self.hypothesis)

    def extra_repr(self):
        return (f"hypothesis={self.hypothesis} ({HYPOTHESIS_NAMES[self.hypothesis]}), "
                f"temperature={self.temperature}, num_negatives={self.num_negatives}, "
                f"reference_bank_aliasing={self.reference_bank_aliasing}")

    def forward(self, views):
        return gdt_loss(views, self.hypothesis, self.temperature, gather=self.gather,
                        num_negatives=self.num_negatives, reference_bank_aliasing=self.reference_bank_aliasing,
                        generator=self.generator)
