"""Projection heads mapping backbone features to the contrastive embedding space (spec 1.4).

``MLPHead`` keeps its layers in a Sequential named ``block_forward`` whose indices match the released checkpoints
(``block_forward.2.weight``, ``block_forward.4.*`` BN, ``block_forward.8.{weight,bias}``); the linear head is a
plain ``nn.Linear`` (keys ``weight``, ``bias``).
"""

import torch.nn as nn

__all__ = ["MLPHead", "Unsqueeze", "build_head"]


class Unsqueeze(nn.Module):
    """Adds a singleton axis: ``B x C`` -> ``B x C x 1`` (for ``dim=-1``)."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.unsqueeze(self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class MLPHead(nn.Module):
    """Two-layer MLP head: ``B x in_dim`` (or any ``B x ...`` that flattens to it) -> ``B x out_dim``.

    ``block_forward`` indices: 0 Flatten, 1 Dropout(p), 2 Linear(in_dim -> hidden_dim, no bias), 3 Unsqueeze
    (``B x hidden x 1``), 4 BatchNorm1d(hidden_dim), 5 Flatten, 6 ReLU, 7 Dropout(p), 8 Linear(hidden_dim -> out_dim).
    Default PyTorch init. In training mode the BN needs more than one sample per batch.
    """

    def __init__(self, in_dim, out_dim=256, hidden_dim=512, dropout=0.3):
        super().__init__()
        self.block_forward = nn.Sequential(
            nn.Flatten(1),
            nn.Dropout(p=dropout),
            nn.Linear(in_dim, hidden_dim, bias=False),
            Unsqueeze(-1),
            nn.BatchNorm1d(hidden_dim),
            nn.Flatten(1),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden_dim, out_dim),
        )
        self.in_dim, self.out_dim, self.hidden_dim = in_dim, out_dim, hidden_dim

    def forward(self, x):
        """``B x in_dim`` -> ``B x out_dim``."""
        return self.block_forward(x)


def build_head(in_dim, out_dim=256, use_mlp=True, hidden_dim=512, dropout=0.3):
    """``MLPHead(in_dim, out_dim, hidden_dim, dropout)`` if ``use_mlp`` else ``nn.Linear(in_dim, out_dim)``."""
    if use_mlp:
        return MLPHead(in_dim, out_dim, hidden_dim=hidden_dim, dropout=dropout)
    return nn.Linear(in_dim, out_dim)
