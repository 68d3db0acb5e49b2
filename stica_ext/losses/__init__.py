"""Objectives: the NCE primitive and the GDT hypotheses."""

from .gdt import BLOCKS, HYPOTHESES, VIEW_ORDER, GDTNCELoss, gdt_loss, term_names, views_for_hypothesis  # noqa: F401
from .nce import nce_loss  # noqa: F401
from .stica import STiCANCELoss, contrastive, stica_loss  # noqa: F401  (registers stica_nce)
