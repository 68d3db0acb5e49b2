"""Objectives: the NCE primitive and the GDT hypotheses."""

from .gdt import GDTNCELoss, gdt_loss, views_for_hypothesis, VIEW_ORDER  # noqa: F401
from .nce import nce_loss  # noqa: F401
