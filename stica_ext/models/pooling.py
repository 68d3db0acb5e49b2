"""Video pooling modules of STiCA: global average pooling or temporal transformer pooling (spec 1.5, 1.6).

Both turn a layer4 map ``B x C x T' x H' x W'`` (or a crop of it) into ``B x C`` features and share the call
signature ``pool(fmap, num_tokens=None)``:

* :class:`GlobalAvgPool` (``num_layers = 0``): the mean over every cell; ``num_tokens`` is ignored. No parameters.
* :class:`TemporalTransformerPool` (``num_layers > 0``): a Sequential whose indices match the reference key names
  (``video_pooling.2.transformer.{i}...``)::

      [0] TokenPool3d            B x C x T x H x W -> B x C x N x 1 x 1   (adaptive average pool, N tokens)
      [1] MapToTokens            B x C x N x 1 x 1 -> B x N x C           (batch axis preserved, N checked)
      [2] TransformerPooling     B x N x C         -> B x C               (post-LN encoder, token 0 out)

  The token count ``N`` is the time length of the tensor that is pooled (``num_tokens=None``) or an explicit
  ``num_tokens`` (STiCA pools a temporal crop of the map back to the full map's ``T'`` tokens, repeating cells when
  the crop is shorter). It is never a separate setting: the reference reshaped with a fixed token count and silently
  merged samples when it differed from the map; here the tokens are always ``B x N x C`` and a positional embedding
  that cannot cover ``N`` positions raises an error.

Widths follow the backbone: ``emb_dim`` is the backbone's ``out_dim`` (512 at width 64) and the FFN is ``4 *
emb_dim`` wide, so narrow test networks get narrow transformers.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "MultiHeadSelfAttention",
    "FeedForward",
    "TransformerLayer",
    "TransformerPooling",
    "TokenPool3d",
    "MapToTokens",
    "TemporalTransformerPool",
    "GlobalAvgPool",
    "build_video_pooling",
]


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with ``num_heads`` heads of width ``emb_dim / num_heads``.

    ``q = q_lin(x)``, ``k = k_lin(x)``; unless ``qkv_mha``, the values are the input itself and there is no output
    projection (``v_lin`` / ``out_lin`` exist only with ``qkv_mha=True``). Scores ``q·kᵀ/√d_head``, softmax in
    float32, dropout ``p=dropout`` on the attention weights, heads re-merged to ``emb_dim``.
    """

    def __init__(self, emb_dim, num_heads=4, dropout=0.0, qkv_mha=False):
        super().__init__()
        if emb_dim % num_heads:
            raise ValueError(f"emb_dim ({emb_dim}) must be divisible by num_heads ({num_heads})")
        self.emb_dim, self.num_heads, self.head_dim = emb_dim, num_heads, emb_dim // num_heads
        self.dropout = dropout
        self.q_lin = nn.Linear(emb_dim, emb_dim)
        self.k_lin = nn.Linear(emb_dim, emb_dim)
        self.v_lin = nn.Linear(emb_dim, emb_dim) if qkv_mha else None
        self.out_lin = nn.Linear(emb_dim, emb_dim) if qkv_mha else None

    def _heads(self, x):
        n, length, _ = x.shape
        return x.view(n, length, self.num_heads, self.head_dim).transpose(1, 2)  # N x h x L x d

    def forward(self, x):
        """``N x L x C`` -> ``N x L x C``."""
        n, length, c = x.shape
        q = self._heads(self.q_lin(x))
        k = self._heads(self.k_lin(x))
        v = self._heads(self.v_lin(x) if self.v_lin is not None else x)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        weights = F.softmax(scores.float(), dim=-1).type_as(scores)
        weights = F.dropout(weights, p=self.dropout, training=self.training)
        ctx = (weights @ v).transpose(1, 2).reshape(n, length, c)
        return self.out_lin(ctx) if self.out_lin is not None else ctx


class FeedForward(nn.Module):
    """``lin2(GELU(lin1(x)))`` (erf GELU), then dropout ``p=dropout`` (0 in the reference, whatever its ``dp``)."""

    def __init__(self, emb_dim, hidden_dim, dropout=0.0):
        super().__init__()
        self.lin1 = nn.Linear(emb_dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, emb_dim)
        self.dropout = dropout

    def forward(self, x):
        return F.dropout(self.lin2(F.gelu(self.lin1(x))), p=self.dropout, training=self.training)


class TransformerLayer(nn.Module):
    """Post-LN encoder layer: ``x = norm1(x + drop(mha(x)))``; ``x = norm2(x + ffn(x))`` (LayerNorm eps 1e-12)."""

    def __init__(self, emb_dim, num_heads=4, dropout=0.0, qkv_mha=False, ffn_dim=None, ffn_dropout=0.0):
        super().__init__()
        self.mha = MultiHeadSelfAttention(emb_dim, num_heads, dropout, qkv_mha)
        self.norm1 = nn.LayerNorm(emb_dim, eps=1e-12)
        self.ffn = FeedForward(emb_dim, ffn_dim or 4 * emb_dim, ffn_dropout)
        self.norm2 = nn.LayerNorm(emb_dim, eps=1e-12)
        self.dropout = dropout

    def forward(self, x):
        x = self.norm1(x + F.dropout(self.mha(x), p=self.dropout, training=self.training))
        return self.norm2(x + self.ffn(x))


class TransformerPooling(nn.Module):
    """Transformer over temporal tokens, read out at one token (spec 1.6).

    Args:
        emb_dim: token width (the backbone's ``out_dim``; 512 at width 64).
        num_layers: encoder layers (``transformer.{i}``); at least 1.
        num_heads: attention heads (4).
        dropout: dropout on the attention weights and on the attention output (``dp``; 0.0).
        positional_emb: add a learned positional embedding: ``pos_embs.0`` = ``Embedding(max_positions, emb_dim)``
            (PyTorch's default N(0, 1) init) and the saved int64 buffer ``pos_ids = arange(max_positions)`` of shape
            ``1 x max_positions``; token ``i`` gets row ``i``.
        qkv_mha: give the attention value and output projections (``mha.v_lin``, ``mha.out_lin``).
        ffn_dim: FFN hidden width (``4 * emb_dim``).
        max_positions: rows of the positional embedding (64); more tokens than this is an error.
        ffn_dropout: dropout after the FFN (0.0; the reference never wires ``dp`` there).
        readout: ``"first"`` (the reference: the output is token 0, the earliest time step after mixing; there is no
            CLS token) or ``"mean"`` (mean over the tokens).

    Every ``nn.Linear`` is initialised N(0, 0.02) with zero bias, LayerNorms (1, 0).
    Input ``N x L x emb_dim`` tokens -> ``N x emb_dim``.
    """

    def __init__(self, emb_dim=512, num_layers=2, num_heads=4, dropout=0.0, positional_emb=False, qkv_mha=False,
                 ffn_dim=None, max_positions=64, ffn_dropout=0.0, readout="first"):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"TransformerPooling needs num_layers >= 1, got {num_layers} (0 means global pooling)")
        if readout not in ("first", "mean"):
            raise ValueError(f"readout must be 'first' or 'mean', got {readout!r}")
        self.emb_dim, self.num_layers, self.num_heads = emb_dim, num_layers, num_heads
        self.positional_emb, self.qkv_mha, self.readout = positional_emb, qkv_mha, readout
        self.max_positions = max_positions if positional_emb else None
        if positional_emb:
            self.register_buffer("pos_ids", torch.arange(max_positions, dtype=torch.long).unsqueeze(0))
        self.transformer = nn.ModuleList([
            TransformerLayer(emb_dim, num_heads, dropout, qkv_mha, ffn_dim, ffn_dropout) for _ in range(num_layers)])
        self.pos_embs = nn.ModuleList([nn.Embedding(max_positions, emb_dim)]) if positional_emb else None
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, tokens):
        """``N x L x emb_dim`` -> ``N x emb_dim``."""
        if tokens.dim() != 3 or tokens.shape[-1] != self.emb_dim:
            raise ValueError(f"TransformerPooling expects tokens N x L x {self.emb_dim}, got {tuple(tokens.shape)}")
        x = tokens
        if self.positional_emb:
            length = x.shape[1]
            if length > self.max_positions:
                raise ValueError(
                    f"the positional embedding has {self.max_positions} positions but the feature map gives {length} "
                    f"temporal tokens; use shorter clips or a larger max_positions (STICA.MAX_POSITIONS)")
            x = x + self.pos_embs[0](self.pos_ids[:, :length])
        for layer in self.transformer:
            x = layer(x)
        return x[:, 0] if self.readout == "first" else x.mean(dim=1)

    def extra_repr(self):
        return (f"emb_dim={self.emb_dim}, num_layers={self.num_layers}, num_heads={self.num_heads}, "
                f"positional_emb={self.positional_emb}, qkv_mha={self.qkv_mha}, readout={self.readout!r}")


class TokenPool3d(nn.AdaptiveAvgPool3d):
    """Adaptive average pool ``B x C x T x H x W -> B x C x N x 1 x 1`` with ``N = num_tokens`` or ``T`` (default)."""

    def __init__(self):
        super().__init__((None, 1, 1))

    def forward(self, x, num_tokens=None):
        if num_tokens is None:
            return super().forward(x)
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        return F.adaptive_avg_pool3d(x, (int(num_tokens), 1, 1))


class MapToTokens(nn.Module):
    """``B x C x N x 1 x 1`` -> tokens ``B x N x C`` (one token per time step; the batch axis is never mixed)."""

    def forward(self, x):
        if x.dim() != 5 or x.shape[3:] != (1, 1):
            raise ValueError(f"MapToTokens expects B x C x N x 1 x 1, got {tuple(x.shape)}")
        return x.flatten(2).transpose(1, 2)


class TemporalTransformerPool(nn.Sequential):
    """``[0] TokenPool3d, [1] MapToTokens, [2] TransformerPooling``: ``B x C x T x H x W`` -> ``B x C``.

    ``forward(x, num_tokens=None)``: the map (or crop) is average-pooled over space and adaptively over time to
    ``num_tokens`` tokens (default: its own time length ``T``).
    """

    def __init__(self, transformer):
        super().__init__(TokenPool3d(), MapToTokens(), transformer)

    @property
    def transformer_pooling(self):
        return self[2]

    def forward(self, x, num_tokens=None):
        if x.dim() != 5:
            raise ValueError(f"video pooling expects a map B x C x T x H x W, got {tuple(x.shape)}")
        tokens = self[1](self[0](x, num_tokens))
        return self[2](tokens)


class GlobalAvgPool(nn.AdaptiveAvgPool3d):
    """Mean over every cell of ``B x C x T x H x W`` -> ``B x C`` (``num_tokens`` is accepted and ignored)."""

    def __init__(self):
        super().__init__((1, 1, 1))

    def forward(self, x, num_tokens=None):
        if x.dim() != 5:
            raise ValueError(f"video pooling expects a map B x C x T x H x W, got {tuple(x.shape)}")
        return torch.flatten(super().forward(x), 1)


def build_video_pooling(emb_dim, num_layers=0, num_heads=4, dropout=0.0, positional_emb=False, qkv_mha=False,
                        ffn_dim=None, max_positions=64, readout="first"):
    """:class:`GlobalAvgPool` for ``num_layers == 0``, else a :class:`TemporalTransformerPool` around a
    :class:`TransformerPooling` of ``num_layers`` layers (``ffn_dim`` default ``4 * emb_dim``)."""
    if num_layers < 0:
        raise ValueError(f"num_layers must be >= 0, got {num_layers}")
    if num_layers == 0:
        return GlobalAvgPool()
    return TemporalTransformerPool(TransformerPooling(
        emb_dim, num_layers, num_heads, dropout, positional_emb, qkv_mha, ffn_dim, max_positions, readout=readout))
