"""Video-text GDT: a bag-of-words text encoder and the ``TextVidGDT`` meta-architecture (spec 1.7, 4.5, A.3).

Text encoder (``text_network``)::

    tokens B x L (int64, 0 = padding)
      -> word_embd  frozen Embedding(V, 300), rows = the word2vec matrix     B x L x 300
      -> fc1        Linear(300 -> 2048) + ReLU                               B x L x 2048
      -> max over the word axis                                              B x 2048

State-dict names: ``text_network.word_embd.weight`` (V x 300), ``text_network.fc1.{weight,bias}``; the projection is
the separate head ``mlp_t`` (2048 -> 512 -> 256), so ``TextVidGDT`` at width 64 with a 66250-word matrix has exactly
the 241 entries of the released HowTo100M video-text checkpoint layout (``video_network.base.*``, ``text_network.*``,
``mlp_v.*``, ``mlp_t.*``).

Word embedding, loaded lazily. The encoder is built with a given vocabulary size and never reads a file in its
constructor, so a model whose video branch is finetuned never needs the text files. The frozen matrix is filled by
whichever comes first:

* :meth:`TextEncoder.load_word2vec` (explicit; reads ``word2vec.pth``, a plain ``V x 300`` float tensor, with
  ``torch.load(weights_only=True)``);
* loading a state_dict / checkpoint that contains ``word_embd.weight``;
* the first ``forward`` when ``word2vec_path`` is set (the lazy path used by pretraining).

When the row count of the file or checkpoint differs from the built vocabulary size, the embedding is resized *in
place* (the ``Parameter`` object is kept, so optimisers and DDP wrappers built earlier stay valid). The embedding
never requires a gradient and the lookup runs under ``no_grad``.

Padding. By default (``mask_padding=False``, the reference behaviour) padding positions take part in the max: they
embed row 0 of the matrix. With ``mask_padding=True`` padding positions are excluded (a caption made only of padding
gives a zero feature). Because the features are ReLU outputs (>= 0), masking is implemented by zeroing padding
positions before the max.

Reversal on the text side is degenerate. A max over the word axis does not depend on the word order, so the
"reversed" caption (token vector flipped, padding moved to the front) has a feature bit-identical to the original
one, in both padding modes. Consequences for the GDT hypotheses with text in place of audio (the objective only sees
embeddings and needs no change; ``tests/test_howto100m.py`` checks each point):

* reversal *variance* (the ``var`` block on (V, VR): hypotheses 2, 6, 8): the text negative ``TR`` is an exact copy
  of the positive ``T``, so every video-query term is >= log 2, and the block gives the same value when V and VR are
  exchanged -- it asks each caption to match a clip and its reversal at once and carries no signal about the
  direction of time (hypotheses 2 and 6 as a whole are unchanged by that exchange);
* reversal *invariance* (the ``inv`` block: hypotheses 3, 7, 9) is trivially met on the text side: with ``TR == T``
  the ``inv`` block equals the plain cross-modal ``base`` block over (V, VR), i.e. both the clip and its reversal
  must match the caption;
* the time-shift views (a second caption of the same video) are not degenerate.
"""

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODEL_REGISTRY
from ..utils.io import PathManager
from .gdt import VideoBaseNetwork, _is_cfg, _node, build_video_base
from .heads import build_head

__all__ = ["TextEncoder", "TextVidGDT", "load_word2vec_matrix", "DEFAULT_VOCAB_SIZE"]

logger = logging.getLogger(__name__)

# Rows of the released HowTo100M word2vec matrix (spec 1.7, DATA_NOTES 1).
DEFAULT_VOCAB_SIZE = 66250


def load_word2vec_matrix(path):
    """Read a ``V x D`` float word-embedding matrix saved with ``torch.save`` (a plain tensor).

    Raises:
        FileNotFoundError: naming the path when it does not exist.
        ValueError: when the file does not hold a 2-D floating-point tensor.
    """
    if not path or not PathManager.exists(path):
        raise FileNotFoundError(f"word2vec matrix not found: {path!r} (TEXT.WORD2VEC_PATH)")
    with PathManager.open(path, "rb") as f:
        weight = torch.load(f, map_location="cpu", weights_only=True)
    if not torch.is_tensor(weight) or weight.dim() != 2 or not weight.is_floating_point():
        desc = tuple(weight.shape) if torch.is_tensor(weight) else type(weight).__name__
        raise ValueError(f"{path}: expected a 2-D float tensor (V x word_dim), got {desc}")
    return weight


class TextEncoder(nn.Module):
    """Max-pooled bag of frozen word embeddings: ``B x L`` token ids -> ``B x hidden_dim``.

    Args:
        vocab_size: rows of the word-embedding matrix used until a file or checkpoint fills it (66250 for the
            released HowTo100M matrix; token ids are ``word index + 1``, 0 = padding).
        word_dim: embedding size (300).
        hidden_dim: output size of ``fc1`` (2048).
        word2vec_path: ``word2vec.pth`` read on the first ``forward`` if the embedding has not been filled yet
            ("" = keep the random initialisation, with a warning on first use).
        mask_padding: exclude padding positions (id 0) from the max (False = reference behaviour).
    """

    def __init__(self, vocab_size=DEFAULT_VOCAB_SIZE, word_dim=300, hidden_dim=2048, word2vec_path="",
                 mask_padding=False):
        super().__init__()
        self.word_embd = nn.Embedding(int(vocab_size), int(word_dim))
        self.word_embd.weight.requires_grad_(False)
        self.fc1 = nn.Linear(int(word_dim), int(hidden_dim))
        self.word_dim = int(word_dim)
        self.out_dim = int(hidden_dim)
        self.word2vec_path = word2vec_path or ""
        self.mask_padding = bool(mask_padding)
        self.embedding_loaded = False
        self._warned_random = False

    @property
    def vocab_size(self):
        return self.word_embd.num_embeddings

    def extra_repr(self):
        return f"mask_padding={self.mask_padding}, word2vec_path={self.word2vec_path!r}"

    # --- word embedding ------------------------------------------------------------------------------------------
    def _resize_embedding(self, rows):
        """Give the (frozen) embedding ``rows`` rows, in place: the Parameter object is kept."""
        weight = self.word_embd.weight
        if weight.shape[0] != rows:
            weight.data = torch.empty((rows, self.word_dim), dtype=weight.dtype, device=weight.device)
            self.word_embd.num_embeddings = int(rows)

    def load_word2vec(self, path=None):
        """Fill the frozen embedding from ``path`` (default ``self.word2vec_path``), resizing it to the file's rows.

        Returns the number of rows. The embedding keeps ``requires_grad=False``.
        """
        path = path or self.word2vec_path
        weight = load_word2vec_matrix(path)
        if weight.shape[1] != self.word_dim:
            raise ValueError(f"{path}: word vectors have {weight.shape[1]} dims, the encoder expects {self.word_dim} "
                             "(TEXT.WORD_DIM)")
        self._resize_embedding(weight.shape[0])
        with torch.no_grad():
            self.word_embd.weight.copy_(weight)
        self.word_embd.weight.requires_grad_(False)
        self.embedding_loaded = True
        logger.info("loaded word embedding %s (%d x %d)", path, weight.shape[0], weight.shape[1])
        return weight.shape[0]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A checkpoint fills the embedding: adopt its row count (only the vocabulary may differ) before copying.
        key = prefix + "word_embd.weight"
        incoming = state_dict.get(key)
        if incoming is not None and incoming.dim() == 2 and incoming.shape[1] == self.word_dim:
            self._resize_embedding(incoming.shape[0])
            self.embedding_loaded = True
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def ensure_embedding(self):
        """Load ``word2vec_path`` now unless the embedding was already filled (no-op without a path)."""
        if self.embedding_loaded:
            return
        if self.word2vec_path:
            self.load_word2vec()
        elif not self._warned_random:
            self._warned_random = True
            logger.warning("text encoder: no word2vec matrix given (TEXT.WORD2VEC_PATH); using a random frozen "
                           "word embedding")

    # --- forward -------------------------------------------------------------------------------------------------
    def forward(self, tokens):
        """``B x L`` int64 token ids (0 = padding) -> ``B x hidden_dim`` features (max over words of ReLU(fc1))."""
        if tokens.dim() != 2:
            raise ValueError(f"text tokens must be B x L, got {tuple(tokens.shape)}")
        self.ensure_embedding()
        with torch.no_grad():
            emb = self.word_embd(tokens)
        x = F.relu(self.fc1(emb))
        if self.mask_padding:
            x = x * (tokens != 0).unsqueeze(-1).to(x.dtype)
        return x.max(dim=1).values


@MODEL_REGISTRY.register()
class TextVidGDT(nn.Module):
    """Video-text GDT model: ``(video, text) -> (zv, zt)`` (``MODEL.MODEL_NAME: TextVidGDT``).

    Same conventions as :class:`stica_ext.models.gdt.GDT`, with the text encoder in place of the audio network:
    explicit keyword arguments, or a config as the single positional argument (``TextVidGDT(cfg)`` equals
    ``TextVidGDT.from_cfg(cfg)``).

    Args:
        video_arch: ``"r2plus1d_18"`` or ``"r2plus1d_34"``.
        width: video backbone width (64 = published; features are ``8 * width``).
        embed_dim: embedding size after each head (256).
        use_mlp: MLP heads (``MLPHead``) if True, else ``nn.Linear`` heads.
        mlp_hidden_dim: hidden size of both MLP heads (512).
        mlp_dropout: dropout of the MLP heads (0.3).
        norm_feat: L2-normalise the embeddings.
        vocab_size, word_dim, text_hidden_dim, word2vec_path, mask_padding: see :class:`TextEncoder`.

    Submodules: ``video_network.base`` (R(2+1)D), ``text_network`` (:class:`TextEncoder`), ``mlp_v`` (video head,
    ``8 * width -> embed_dim``), ``mlp_t`` (text head, ``text_hidden_dim -> embed_dim``). At width 64 with
    ``use_mlp=True`` and a 66250-word matrix the state_dict has the 241 entries of spec A.3 (229 of A.4 with
    ``use_mlp=False``).
    """

    def __init__(self, cfg=None, *, video_arch="r2plus1d_18", width=64, embed_dim=256, use_mlp=True,
                 mlp_hidden_dim=512, mlp_dropout=0.3, norm_feat=True, vocab_size=DEFAULT_VOCAB_SIZE, word_dim=300,
                 text_hidden_dim=2048, word2vec_path="", mask_padding=False):
        super().__init__()
        if cfg is not None:
            if not _is_cfg(cfg):
                raise TypeError("TextVidGDT's only positional argument is a config (with a MODEL node), "
                                f"got {type(cfg)}")
            kw = self.cfg_to_kwargs(cfg)
            video_arch, width, embed_dim, use_mlp = kw["video_arch"], kw["width"], kw["embed_dim"], kw["use_mlp"]
            mlp_hidden_dim, mlp_dropout, norm_feat = kw["mlp_hidden_dim"], kw["mlp_dropout"], kw["norm_feat"]
            vocab_size, word_dim, text_hidden_dim = kw["vocab_size"], kw["word_dim"], kw["text_hidden_dim"]
            word2vec_path, mask_padding = kw["word2vec_path"], kw["mask_padding"]
        self.video_network = VideoBaseNetwork(build_video_base(video_arch, width))
        self.text_network = TextEncoder(vocab_size, word_dim, text_hidden_dim, word2vec_path, mask_padding)
        self.mlp_v = build_head(self.video_network.out_dim, embed_dim, use_mlp, mlp_hidden_dim, mlp_dropout)
        self.mlp_t = build_head(self.text_network.out_dim, embed_dim, use_mlp, mlp_hidden_dim, mlp_dropout)
        self.norm_feat = norm_feat
        self.embed_dim = embed_dim
        self.feat_dim = self.video_network.out_dim

    @staticmethod
    def cfg_to_kwargs(cfg):
        """Constructor arguments from a config.

        Reads ``MODEL.ARCH``, ``RESNET.WIDTH_PER_GROUP``, ``GDT.{EMBED_DIM, USE_MLP, MLP_HIDDEN_DIM, MLP_DROPOUT,
        NORM_FEAT}`` and ``TEXT.{VOCAB_SIZE, WORD_DIM, HIDDEN_DIM, WORD2VEC_PATH, MASK_PADDING}``. As for ``GDT``,
        ``GDT.MLP_HIDDEN_DIM`` is scaled by ``WIDTH_PER_GROUP / 64``; ``TEXT.HIDDEN_DIM`` and ``GDT.EMBED_DIM`` are
        not. No file is read here (the word2vec matrix is loaded lazily).
        """
        model, resnet, gdt, text = (_node(cfg, k) for k in ("MODEL", "RESNET", "GDT", "TEXT"))
        width = int(_node(resnet, "WIDTH_PER_GROUP"))
        hidden = max(1, int(round(int(_node(gdt, "MLP_HIDDEN_DIM")) * width / 64)))
        return dict(
            video_arch=_node(model, "ARCH"),
            width=width,
            embed_dim=int(_node(gdt, "EMBED_DIM")),
            use_mlp=bool(_node(gdt, "USE_MLP")),
            mlp_hidden_dim=hidden,
            mlp_dropout=float(_node(gdt, "MLP_DROPOUT")),
            norm_feat=bool(_node(gdt, "NORM_FEAT")),
            vocab_size=int(_node(text, "VOCAB_SIZE")),
            word_dim=int(_node(text, "WORD_DIM")),
            text_hidden_dim=int(_node(text, "HIDDEN_DIM")),
            word2vec_path=str(_node(text, "WORD2VEC_PATH")),
            mask_padding=bool(_node(text, "MASK_PADDING")),
        )

    @classmethod
    def from_cfg(cls, cfg):
        """Build from a config (see :meth:`cfg_to_kwargs` for the keys read)."""
        return cls(**cls.cfg_to_kwargs(cfg))

    # --- backbones -------------------------------------------------------------------------------------------
    def video_features(self, video):
        """``B x 3 x T x H x W`` -> pooled backbone features ``B x 8*width`` (what a linear probe uses)."""
        return self.video_network(video)

    def text_features(self, text):
        """``B x L`` token ids -> text features ``B x text_hidden_dim``."""
        return self.text_network(text)

    def forward_features(self, video, text):
        """Backbone features ``(fv, ft)``: ``B x 8*width`` and ``B x text_hidden_dim``."""
        return self.video_features(video), self.text_features(text)

    # --- heads -----------------------------------------------------------------------------------------------
    def _normalise(self, z):
        return F.normalize(z, p=2, dim=1, eps=1e-12) if self.norm_feat else z

    def forward_head(self, fv, ft):
        """Backbone features -> embeddings ``(zv, zt)``, ``B x embed_dim`` each."""
        return self._normalise(self.mlp_v(fv)), self._normalise(self.mlp_t(ft))

    def encode_video(self, video):
        """``B x 3 x T x H x W`` -> video embedding ``B x embed_dim``."""
        return self._normalise(self.mlp_v(self.video_features(video)))

    def encode_text(self, text):
        """``B x L`` token ids -> text embedding ``B x embed_dim``."""
        return self._normalise(self.mlp_t(self.text_features(text)))

    def forward(self, video, text):
        """Embeddings of one view or of several views.

        * ``video: B x 3 x T x H x W``, ``text: B x L`` (int64) -> ``(zv, zt)``, each ``B x embed_dim``;
        * ``video: B x V x 3 x T x H x W``, ``text: B x V x L`` (views on axis 1, e.g. a collated
          :class:`~stica_ext.datasets.howto100m.Howto100mDataset` batch) -> ``(zv, zt)``, each ``B x V x embed_dim``.
          Each view pair runs as its own batch (per-view BatchNorm statistics, as for ``GDT``), in one call.
        """
        if video.dim() == 6:
            if text.dim() != 3 or text.shape[:2] != video.shape[:2]:
                raise ValueError(f"multi-view video {tuple(video.shape)} needs text B x V x L with the same B and V, "
                                 f"got {tuple(text.shape)}")
            pairs = [self.forward(video[:, i], text[:, i]) for i in range(video.shape[1])]
            return torch.stack([p[0] for p in pairs], 1), torch.stack([p[1] for p in pairs], 1)
        if video.dim() != 5 or text.dim() != 2:
            raise ValueError(f"expected video B x 3 x T x H x W and text B x L, got {tuple(video.shape)} and "
                             f"{tuple(text.shape)}")
        return self.forward_head(*self.forward_features(video, text))
