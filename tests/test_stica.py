"""STiCA: feature-map crops, (transformer) pooling, model outputs, checkpoint key layout, loss terms, config checks.

Full-width models are built on the ``meta`` device; forwards use narrow widths and tiny inputs (CPU, seconds).
"""

import io
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from stica_ext.config import ConfigError, assert_and_infer_cfg, get_cfg
from stica_ext.losses import nce_loss
from stica_ext.losses.stica import STiCANCELoss, active_crop_terms, contrastive, stica_loss
from stica_ext.models import build_model
from stica_ext.models.pooling import (
    GlobalAvgPool,
    TemporalTransformerPool,
    TransformerPooling,
    build_video_pooling,
)
from stica_ext.models.stica import (
    CropPlan,
    STiCA,
    crop_feature_map,
    crop_sizes,
    needed_crops,
    sample_crop_plan,
    valid_offsets,
)
from stica_ext.registry import LOSS_REGISTRY, MODEL_REGISTRY

DATA = Path(__file__).parent / "data"
A5 = "state_dict_stica_gap_mlp.txt"
A6 = "state_dict_stica_transformer2_mlp.txt"
A7_POOLING = "state_dict_stica_transformer2_posemb_qkv_pooling.txt"


def read_fixture(name):
    """Lines ``name (d0,d1,...) dtype`` (``#`` comments skipped) -> list of (name, shape tuple, dtype string)."""
    rows = []
    for line in (DATA / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split()
        dims = shape.strip("()")
        rows.append((key, tuple(int(d) for d in dims.split(",")) if dims else (), dtype))
    return rows


def describe(model):
    return [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def on_meta(fn, *args, **kwargs):
    with torch.device("meta"):
        return fn(*args, **kwargs)


def tiny_model(**kwargs):
    args = dict(width=8, mlp_hidden_dim=32, embed_dim=16)
    args.update(kwargs)
    return STiCA(**args)


# ---------------------------------------------------------------------------------------------------------------
# Crop windows and offsets
# ---------------------------------------------------------------------------------------------------------------
def test_crop_sizes_scale_with_the_map():
    assert crop_sizes((4, 7, 7)) == {"large": (6, 6), "small": (4, 4), "tlarge": (3,), "tsmall": (2,)}
    s8 = crop_sizes((8, 7, 7))
    assert s8["tlarge"] == (6,) and s8["tsmall"] == (4,)
    s12 = crop_sizes((12, 7, 7))
    assert s12["tlarge"] == (9,) and s12["tsmall"] == (6,)
    assert crop_sizes((15, 4, 3)) == {"large": (3, 3), "small": (2, 2), "tlarge": (11,), "tsmall": (8,)}
    assert crop_sizes((1, 2, 2)) == {"large": (2, 2), "small": (1, 1), "tlarge": (1,), "tsmall": (1,)}
    assert crop_sizes((8, 7, 7), spatial_fracs=(1.0, 0.3), temporal_fracs=(0.5, 0.25)) == {
        "large": (7, 7), "small": (2, 2), "tlarge": (4,), "tsmall": (2,)}
    with pytest.raises(ValueError, match="fraction"):
        crop_sizes((8, 7, 7), spatial_fracs=(1.2, 0.5))


def test_crop_sizes_compat_are_the_reference_windows():
    assert crop_sizes((4, 7, 7), compat=True) == {"large": (6, 6), "small": (4, 4), "tlarge": (3,), "tsmall": (2,)}
    for t in (8, 12, 15):
        assert crop_sizes((t, 7, 7), compat=True) == {"large": (6, 6), "small": (4, 4), "tlarge": (6,),
                                                       "tsmall": (4,)}


def test_valid_offsets():
    assert valid_offsets(7, 6) == 2 and valid_offsets(7, 4) == 4 and valid_offsets(3, 3) == 1
    assert valid_offsets(7, 6, compat=True) == 1 and valid_offsets(7, 4, compat=True) == 3
    with pytest.raises(ValueError):
        valid_offsets(6, 6, compat=True)  # the reference's randint(0, 0) fails
    with pytest.raises(ValueError):
        valid_offsets(3, 4)


def _starts(plans, kind):
    out = set()
    for p in plans:
        for w in getattr(p, kind):
            out.add((w[0][0], w[1][0]) if kind in ("large", "small") else w[0])
    return out


def _check_bounds(plans, sizes):
    for p in plans:
        t, h, w = p.map_size
        for kind in ("large", "small"):
            for (h0, h1), (w0, w1) in getattr(p, kind):
                assert (h1 - h0, w1 - w0) == sizes[kind]
                assert 0 <= h0 and h1 <= h and 0 <= w0 and w1 <= w
        for kind in ("tlarge", "tsmall"):
            for t0, t1 in getattr(p, kind):
                assert (t1 - t0,) == sizes[kind] and 0 <= t0 and t1 <= t


def test_offsets_cover_every_valid_position_torch_generator():
    g = torch.Generator().manual_seed(0)
    plans = [sample_crop_plan((8, 7, 7), 2, 4, 2, 1, rng=g) for _ in range(400)]
    _check_bounds(plans, crop_sizes((8, 7, 7)))
    assert all(len(p.large) == 2 and len(p.small) == 4 and len(p.tlarge) == 2 and len(p.tsmall) == 1 for p in plans)
    assert _starts(plans, "large") == {(a, b) for a in range(2) for b in range(2)}  # includes the last offset 1
    assert _starts(plans, "small") == {(a, b) for a in range(4) for b in range(4)}  # includes offset 3
    assert _starts(plans, "tlarge") == {0, 1, 2}
    assert _starts(plans, "tsmall") == {0, 1, 2, 3, 4}


def test_offsets_cover_every_valid_position_python_random_and_t4():
    rng = random.Random(3)
    plans = [sample_crop_plan((4, 7, 7), 1, 2, 1, 2, rng=rng) for _ in range(300)]
    _check_bounds(plans, crop_sizes((4, 7, 7)))
    assert _starts(plans, "tlarge") == {0, 1}
    assert _starts(plans, "tsmall") == {0, 1, 2}
    assert _starts(plans, "large") == {(a, b) for a in range(2) for b in range(2)}


def test_offsets_are_reproducible_from_the_generator():
    a = [sample_crop_plan((8, 7, 7), rng=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert a[0] == a[1]
    b = sample_crop_plan((8, 7, 7), rng=random.Random(5))
    assert b == sample_crop_plan((8, 7, 7), rng=random.Random(5))
    c = sample_crop_plan((8, 7, 7), rng=np.random.RandomState(5))
    assert c == sample_crop_plan((8, 7, 7), rng=np.random.RandomState(5))
    d = sample_crop_plan((8, 7, 7), rng=np.random.default_rng(5))
    assert d == sample_crop_plan((8, 7, 7), rng=np.random.default_rng(5))
    with pytest.raises(TypeError):
        sample_crop_plan((8, 7, 7), rng="seed")


def test_compat_mode_reproduces_reference_table():
    g = torch.Generator().manual_seed(1)
    plans4 = [sample_crop_plan((4, 7, 7), 2, 4, 2, 1, rng=g, compat=True) for _ in range(300)]
    _check_bounds(plans4, crop_sizes((4, 7, 7), compat=True))
    assert _starts(plans4, "large") == {(0, 0)}  # always [0:6, 0:6]
    assert _starts(plans4, "small") == {(a, b) for a in range(3) for b in range(3)}  # 9 positions, never 3
    assert {w for p in plans4 for w in p.tlarge} == {(0, 3)}  # always [0:3]
    assert {w for p in plans4 for w in p.tsmall} == {(0, 2), (1, 3)}
    plans8 = [sample_crop_plan((8, 7, 7), 2, 4, 2, 1, rng=g, compat=True) for _ in range(300)]
    assert {w for p in plans8 for w in p.tlarge} == {(0, 6), (1, 7)}
    assert _starts(plans8, "tsmall") == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="7 x 7"):
        sample_crop_plan((4, 4, 4), 2, 4, 0, 0, rng=g, compat=True)
    with pytest.raises(ValueError, match="CROP_COMPAT"):
        sample_crop_plan((6, 7, 7), 0, 0, 2, 1, rng=g, compat=True)


def test_needed_crops_follow_the_loss_terms():
    assert needed_crops(0, 2, 4, 2, 1) == {"large": (0, 1), "small": (), "tlarge": (0, 1), "tsmall": ()}
    assert needed_crops(1, 2, 4, 2, 1) == {"large": (1,), "small": (0, 1, 2, 3), "tlarge": (1,), "tsmall": (0,)}
    assert needed_crops(0, 2, 0, 1, 2) == {"large": (1,), "small": (), "tlarge": (0,), "tsmall": ()}
    assert needed_crops(1, 2, 0, 1, 2) == {"large": (1,), "small": (), "tlarge": (), "tsmall": (0, 1)}
    assert needed_crops(0, 1, 0, 0, 0) == needed_crops(1, 1, 0, 0, 0) == {k: () for k in
                                                                         ("large", "small", "tlarge", "tsmall")}
    assert needed_crops(1, 0, 3, 0, 0)["small"] == ()  # small crops without a large teacher are never used


def test_crop_feature_map_slices():
    fmap = torch.arange(2 * 3 * 4 * 5 * 6, dtype=torch.float32).view(2, 3, 4, 5, 6)
    assert torch.equal(crop_feature_map(fmap, "small", ((1, 3), (2, 5))), fmap[:, :, :, 1:3, 2:5])
    assert torch.equal(crop_feature_map(fmap, "tlarge", (1, 4)), fmap[:, :, 1:4])
    with pytest.raises(ValueError):
        crop_feature_map(fmap, "huge", (0, 1))


# ---------------------------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------------------------
def manual_transformer(tp, x):
    """Independent re-statement of spec 1.6 for one TransformerPooling (eval mode)."""
    c = x.shape[-1]
    if tp.positional_emb:
        x = x + tp.pos_embs[0].weight[: x.shape[1]]
    for layer in tp.transformer:
        m = layer.mha
        d = c // m.num_heads
        q, k = m.q_lin(x), m.k_lin(x)
        v = m.v_lin(x) if m.v_lin is not None else x
        heads = []
        for i in range(m.num_heads):
            sl = slice(i * d, (i + 1) * d)
            att = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d), dim=-1)
            heads.append(att @ v[..., sl])
        att = torch.cat(heads, -1)
        if m.out_lin is not None:
            att = m.out_lin(att)
        x = F.layer_norm(x + att, (c,), layer.norm1.weight, layer.norm1.bias, 1e-12)
        h = layer.ffn.lin1(x)
        h = layer.ffn.lin2(0.5 * h * (1 + torch.erf(h / math.sqrt(2))))
        x = F.layer_norm(x + h, (c,), layer.norm2.weight, layer.norm2.bias, 1e-12)
    return x[:, 0]


@pytest.mark.parametrize("positional_emb, qkv_mha", [(False, False), (True, True)])
def test_transformer_pooling_matches_spec(positional_emb, qkv_mha):
    torch.manual_seed(0)
    tp = TransformerPooling(16, num_layers=2, num_heads=4, positional_emb=positional_emb, qkv_mha=qkv_mha).eval()
    for m in tp.modules():  # non-trivial LayerNorm affine parameters
        if isinstance(m, nn.LayerNorm):
            nn.init.normal_(m.weight, 1.0, 0.1)
            nn.init.normal_(m.bias, 0.0, 0.1)
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        assert torch.allclose(tp(x), manual_transformer(tp, x), atol=1e-5)
    layer = tp.transformer[0]
    assert layer.norm1.eps == 1e-12 and layer.norm2.eps == 1e-12
    assert layer.ffn.lin1.weight.shape == (64, 16)  # FFN 4 x emb_dim
    assert (layer.mha.v_lin is not None) == qkv_mha and (layer.mha.out_lin is not None) == qkv_mha
    if positional_emb:
        assert tp.pos_ids.dtype == torch.int64 and tp.pos_ids.shape == (1, 64)
        assert torch.equal(tp.pos_ids[0], torch.arange(64))


def test_transformer_pooling_initialisation_and_readout():
    torch.manual_seed(0)
    tp = TransformerPooling(128, num_layers=1, positional_emb=True)
    linears = [m for m in tp.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 4
    for lin in linears:
        assert torch.all(lin.bias == 0)
        assert lin.weight.std().item() == pytest.approx(0.02, rel=0.05)
    for m in tp.modules():
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert tp.pos_embs[0].weight.std().item() == pytest.approx(1.0, rel=0.05)  # PyTorch default N(0, 1)
    mean_tp = TransformerPooling(16, num_layers=1, readout="mean").eval()
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        h = mean_tp.transformer[0](x)
        assert torch.allclose(mean_tp(x), h.mean(1), atol=1e-6)
    with pytest.raises(ValueError, match="num_layers"):
        TransformerPooling(16, num_layers=0)
    with pytest.raises(ValueError, match="divisible"):
        TransformerPooling(18, num_layers=1, num_heads=4)


@pytest.mark.parametrize("t", [1, 3, 4, 8, 12, 15])
def test_tokens_come_from_the_map_and_keep_the_batch(t):
    torch.manual_seed(0)
    pool = build_video_pooling(16, num_layers=1).eval()
    assert isinstance(pool, TemporalTransformerPool) and isinstance(pool[2], TransformerPooling)
    assert isinstance(pool[0], nn.AdaptiveAvgPool3d)
    fmap = torch.randn(4, 16, t, 3, 3)
    tokens = pool[1](pool[0](fmap))
    assert tokens.shape == (4, t, 16)
    assert torch.allclose(tokens, fmap.mean(dim=(3, 4)).transpose(1, 2), atol=1e-6)
    with torch.no_grad():
        out = pool(fmap)
        assert out.shape == (4, 16)  # the reference returns 2 rows for B=4, T'=8, 4 tokens
        fmap2 = fmap.clone()
        fmap2[0] += torch.randn_like(fmap2[0])
        out2 = pool(fmap2)
    assert torch.allclose(out[1:], out2[1:], atol=1e-6)  # samples never mix
    assert not torch.allclose(out[0], out2[0])


def test_crop_time_axis_is_pooled_to_the_requested_token_count():
    pool = build_video_pooling(16, num_layers=1).eval()
    crop = torch.randn(2, 16, 3, 2, 2)
    tokens = pool[1](pool[0](crop, 8))
    assert tokens.shape == (2, 8, 16)
    cells = crop.mean(dim=(3, 4))
    assert torch.allclose(tokens[:, 0], cells[:, :, 0], atol=1e-6)
    assert torch.allclose(tokens[:, 7], cells[:, :, 2], atol=1e-6)
    assert torch.allclose(tokens, F.adaptive_avg_pool3d(crop, (8, 1, 1)).flatten(2).transpose(1, 2))
    with torch.no_grad():
        assert torch.allclose(pool(crop, 8), pool[2](tokens), atol=1e-6)


def test_token_shape_and_positional_embedding_are_checked():
    pool = build_video_pooling(16, num_layers=1, positional_emb=True, max_positions=4).eval()
    with torch.no_grad():
        assert pool(torch.randn(2, 16, 4, 2, 2)).shape == (2, 16)
        with pytest.raises(ValueError, match="4 positions .* 8 temporal tokens"):
            pool(torch.randn(2, 16, 8, 2, 2))
        with pytest.raises(ValueError, match="4 positions"):
            pool(torch.randn(2, 16, 2, 2, 2), 5)
    with pytest.raises(ValueError, match="B x C x N x 1 x 1"):
        pool[1](torch.randn(2, 16, 4, 2, 2))
    with pytest.raises(ValueError, match="tokens"):
        pool[2](torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match="B x C x T x H x W"):
        pool(torch.randn(2, 16, 4))


def test_global_average_pooling():
    pool = build_video_pooling(16, num_layers=0)
    assert isinstance(pool, GlobalAvgPool) and not list(pool.state_dict())
    fmap = torch.randn(3, 16, 4, 3, 2)
    assert torch.allclose(pool(fmap), fmap.mean(dim=(2, 3, 4)), atol=1e-6)
    assert torch.allclose(pool(fmap, 8), pool(fmap))  # num_tokens is irrelevant to the mean


# ---------------------------------------------------------------------------------------------------------------
# Reference checkpoint key layout (spec Appendix A.5 - A.7)
# ---------------------------------------------------------------------------------------------------------------
def test_fixtures_have_the_spec_sizes():
    assert len(read_fixture(A5)) == 312
    assert len(read_fixture(A6)) == 336
    assert len(read_fixture(A7_POOLING)) == 34


def test_state_dict_matches_a5_gap():
    model = on_meta(STiCA)
    assert describe(model) == read_fixture(A5)
    assert n_params(model) == 37_501_637


def test_state_dict_matches_a6_transformer():
    model = on_meta(STiCA, num_layers=2, num_heads=4)
    assert describe(model) == read_fixture(A6)
    assert n_params(model) == 42_755_781


def test_state_dict_matches_a7_positional_emb_qkv():
    model = on_meta(STiCA, num_layers=2, positional_emb=True, qkv_mha=True)
    rows = describe(model)
    assert len(rows) == 346
    assert [r for r in rows if r[0].startswith("video_pooling.")] == read_fixture(A7_POOLING)
    assert [r for r in rows if not r[0].startswith("video_pooling.")] == [
        r for r in read_fixture(A6) if not r[0].startswith("video_pooling.")]
    assert n_params(model) == 43_839_173


def test_dead_fc_optional():
    rows = describe(on_meta(STiCA, audio_dead_fc=False))
    assert rows == [r for r in read_fixture(A5) if not r[0].startswith("audio_network.base.fc.")]


# ---------------------------------------------------------------------------------------------------------------
# Model forward
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_batch():
    torch.manual_seed(0)
    return torch.randn(2, 2, 3, 8, 32, 32), torch.randn(2, 1, 40, 99)


def _shape(x):
    return None if x is None else tuple(x.shape)


@pytest.mark.parametrize("num_layers", [0, 2])
def test_forward_output_structure(tiny_batch, num_layers):
    video, audio = tiny_batch
    torch.manual_seed(0)
    model = tiny_model(num_layers=num_layers)
    out = model(video, audio, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, list) and len(out) == 2
    c1, c2 = out
    for c in out:
        assert set(c) == {"video", "audio", "large", "small", "tlarge", "tsmall", "crop_plan"}
        assert c["video"].shape == (2, 16) and c["audio"].shape == (2, 16)
        assert isinstance(c["crop_plan"], CropPlan) and c["crop_plan"].map_size == (1, 2, 2)
        for z in [c["video"], c["audio"]] + [z for k in ("large", "small", "tlarge", "tsmall") for z in c[k] if
                                             z is not None]:
            assert z.shape == (2, 16)
            assert torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    assert [_shape(z) for z in c1["large"]] == [(2, 16), (2, 16)]
    assert c1["small"] == [None] * 4 and c1["tsmall"] == [None]
    assert [_shape(z) for z in c1["tlarge"]] == [(2, 16), (2, 16)]
    assert [_shape(z) for z in c2["large"]] == [None, (2, 16)]
    assert [_shape(z) for z in c2["small"]] == [(2, 16)] * 4
    assert [_shape(z) for z in c2["tlarge"]] == [None, (2, 16)]
    assert [_shape(z) for z in c2["tsmall"]] == [(2, 16)]
    assert c1["audio"] is c2["audio"]  # audio encoded once per forward
    # list input is the same as the stacked tensor
    model.eval()
    with torch.no_grad():
        plans = [c1["crop_plan"], c2["crop_plan"]]
        a = model(video, audio, crop_plans=plans)
        b = model([video[:, 0], video[:, 1]], audio, crop_plans=plans)
    assert torch.allclose(a[1]["small"][2], b[1]["small"][2]) and torch.allclose(a[0]["video"], b[0]["video"])


def test_forward_input_checks(tiny_batch):
    video, audio = tiny_batch
    model = tiny_model()
    with pytest.raises(ValueError, match="two views"):
        model(video[:, :1], audio)
    with pytest.raises(ValueError, match="audio"):
        model(video, audio[:1])
    plan = sample_crop_plan((4, 7, 7))
    with pytest.raises(ValueError, match="crop plan"):
        model(video, audio, crop_plans=[plan, plan])


def test_audio_per_view_reencodes_audio(tiny_batch):
    video, audio = tiny_batch
    torch.manual_seed(0)
    model = tiny_model(audio_per_view=True)
    out = model(video, audio)
    assert out[0]["audio"] is not out[1]["audio"]
    assert not torch.allclose(out[0]["audio"], out[1]["audio"])  # independent dropout masks in training
    model.eval()
    with torch.no_grad():
        out = model(video, audio)
    assert torch.allclose(out[0]["audio"], out[1]["audio"]) and torch.allclose(out[0]["audio"],
                                                                                model.encode_audio(audio))


def test_crop_embeddings_on_a_7x7_map_equal_manual_computation():
    torch.manual_seed(0)
    model = STiCA(width=4, mlp_hidden_dim=16, embed_dim=8, num_layers=1, num_large_crops=2, num_small_crops=2,
                  num_large_tcrops=2, num_small_tcrops=1).eval()
    video = torch.randn(2, 2, 3, 32, 112, 112)
    audio = torch.randn(2, 1, 40, 99)
    with torch.no_grad():
        out = model(video, audio, generator=torch.Generator().manual_seed(2))
        for k in range(2):
            fmap = model.video_feature_map(video[:, k])
            assert fmap.shape == (2, 32, 4, 7, 7)
            plan = out[k]["crop_plan"]
            assert plan.map_size == (4, 7, 7)

            def embed(crop):
                tokens = F.adaptive_avg_pool3d(crop, (4, 1, 1)).flatten(2).transpose(1, 2)  # 4 tokens, like the map
                return F.normalize(model.mlp_v(model.video_pooling[2](tokens)), dim=1)

            assert torch.allclose(out[k]["video"], embed(fmap), atol=1e-5)
            for kind in ("large", "small", "tlarge", "tsmall"):
                for i, z in enumerate(out[k][kind]):
                    if z is None:
                        continue
                    window = getattr(plan, kind)[i]
                    if kind in ("large", "small"):
                        (h0, h1), (w0, w1) = window
                        assert (h1 - h0, w1 - w0) == ((6, 6) if kind == "large" else (4, 4))
                        crop = fmap[:, :, :, h0:h1, w0:w1]
                    else:
                        t0, t1 = window
                        assert t1 - t0 == (3 if kind == "tlarge" else 2)
                        crop = fmap[:, :, t0:t1]
                    assert torch.allclose(z, embed(crop), atol=1e-5), (k, kind, i)


def test_compat_model_uses_the_reference_windows():
    torch.manual_seed(0)
    model = STiCA(width=4, mlp_hidden_dim=16, embed_dim=8, crop_compat=True).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 3, 32, 112, 112), torch.randn(2, 1, 40, 99),
                    generator=torch.Generator().manual_seed(0))
    for c in out:
        assert c["crop_plan"].large == (((0, 6), (0, 6)), ((0, 6), (0, 6)))
        assert c["crop_plan"].tlarge == ((0, 3), (0, 3))
    model2 = tiny_model(crop_compat=True)
    with pytest.raises(ValueError, match="7 x 7"):
        model2(torch.randn(2, 2, 3, 8, 32, 32), torch.randn(2, 1, 40, 99))


def test_video_features_and_pooling_accessor(tiny_batch):
    video, _ = tiny_batch
    for num_layers in (0, 2):
        model = tiny_model(num_layers=num_layers).eval()
        assert model.pooling is model.video_pooling
        with torch.no_grad():
            fmap = model.video_feature_map(video[:, 0])
            feats = model.video_features(video[:, 0])
            assert feats.shape == (2, 64)
            assert torch.allclose(feats, model.pooling(fmap), atol=1e-6)
            one = model.video_features(video[:1, 0])
            assert one.shape == (1, 64)  # a batch of one keeps its batch axis
            assert model.encode_video(video[:1, 0]).shape == (1, 16)
        if num_layers == 0:
            assert torch.allclose(feats, fmap.mean(dim=(2, 3, 4)), atol=1e-6)


def test_backward_reaches_every_used_parameter(tiny_batch):
    video, audio = tiny_batch
    torch.manual_seed(0)
    model = tiny_model(num_layers=2, positional_emb=True, qkv_mha=True)
    loss, stats = STiCANCELoss()(model(video, audio, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("audio_network.base.fc."):
            assert p.grad is None, name  # the dead fc is never executed
        else:
            assert p.grad is not None, name


def test_transformer_model_round_trips_through_a_checkpoint(tiny_batch):
    video, _ = tiny_batch
    torch.manual_seed(0)
    kwargs = dict(num_layers=2, positional_emb=True, qkv_mha=True)
    src = tiny_model(**kwargs)
    with torch.no_grad():  # move BN statistics and weights away from their initial values
        for p in src.parameters():
            p.add_(0.01 * torch.randn_like(p))
        src(video, torch.randn(2, 1, 40, 99))
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    dst = tiny_model(**kwargs)
    src.eval()
    dst.eval()
    with torch.no_grad():
        assert not torch.allclose(src.video_features(video[:, 0]), dst.video_features(video[:, 0]))
    result = dst.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    a, b = src.state_dict(), dst.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert "video_pooling.2.pos_ids" in b and "video_pooling.2.pos_embs.0.weight" in b
    with torch.no_grad():
        assert torch.equal(src.video_features(video[:, 0]), dst.video_features(video[:, 0]))


# ---------------------------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------------------------
I2 = [[1.0, 0.0], [0.0, 1.0]]
SWAP = [[0.0, 1.0], [1.0, 0.0]]


def leaf(rows):
    return torch.tensor(rows, requires_grad=True)


def make_views(n_large=2, n_small=2, n_tlarge=2, n_tsmall=2, seed=0):
    """Two per-view dicts of random unit leaf tensors (B=3, E=4), every crop present."""
    g = torch.Generator().manual_seed(seed)

    def z():
        return F.normalize(torch.randn(3, 4, generator=g), dim=1).requires_grad_(True)

    return [{"video": z(), "audio": z(), "large": [z() for _ in range(n_large)],
             "small": [z() for _ in range(n_small)], "tlarge": [z() for _ in range(n_tlarge)],
             "tsmall": [z() for _ in range(n_tsmall)]} for _ in range(2)]


def no_gather(x):
    return x.detach().new_zeros((0, x.shape[1]))


def test_contrastive_g_hand_computed():
    x, y = torch.tensor(I2), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # term 1: queries y, keys x -> rows [1, 0] (target 0) and [1, 0] (target 1)
    l1 = 0.5 * (math.log(1 + math.exp(-1)) + math.log(1 + math.e))
    # term 2: queries x, keys y -> rows [1, 1] and [0, 0]: log 2 each
    loss, _ = contrastive(x, y, 1.0, symmetric=False, gather=no_gather)
    assert loss.item() == pytest.approx(l1, abs=1e-6)
    loss, _ = contrastive(x, y, 1.0, symmetric=True, gather=no_gather)
    assert loss.item() == pytest.approx(0.5 * (l1 + math.log(2)), abs=1e-6)
    # keys of the other processes come after the local rows
    other = torch.tensor([[-1.0, 0.0]])
    loss, _ = contrastive(x, y, 1.0, symmetric=False, gather=lambda t: other)
    logits = y @ torch.cat([x, other]).t()
    assert torch.allclose(loss, F.cross_entropy(logits, torch.arange(2)))


def test_ll_term_queries_keys_and_gradients():
    views = make_views()
    c1, c2 = views
    loss, stats = stica_loss(views, 2, 0, 0, 0, crop_temperature=0.5, alpha=0.0, gather=no_gather)
    expected = 0.5 * (nce_loss(c1["large"][1], c2["large"][1], None, 0.5)[0]
                      + nce_loss(c2["large"][1], c1["large"][1], None, 0.5)[0])
    assert torch.allclose(loss, expected) and torch.allclose(stats["loss_ll"], expected)
    assert set(stats) == {"loss_crops", "loss_av", "loss_ll", "acc_crops", "acc_av", "nce_acc"}
    loss.backward()
    assert c1["large"][1].grad is not None and c2["large"][1].grad is not None
    for t in (c1["large"][0], c2["large"][0], c1["video"], c1["audio"], c2["video"]):
        assert t.grad is None  # alpha = 0: the cross-modal term is only reported


def test_sl_term_hand_computed_and_stop_gradient():
    large = leaf(I2)
    views = [{"video": leaf(I2), "audio": leaf(I2), "large": [large], "small": [None, None], "tlarge": [],
              "tsmall": []},
             {"video": leaf(I2), "audio": leaf(I2), "large": [None], "small": [leaf(I2), leaf(SWAP)],
              "tlarge": [], "tsmall": []}]
    loss, stats = stica_loss(views, 1, 2, 0, 0, crop_temperature=0.5, alpha=0.0, gather=no_gather)
    # small crop 0 == large crop: logits [2, 0] on the target -> log(1 + e^-2); small crop 1 swapped: log(1 + e^2)
    expected = 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2)))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert stats["loss_sl"].item() == pytest.approx(expected, abs=1e-6)
    assert stats["acc_crops"].item() == pytest.approx(0.5)
    loss.backward()
    assert large.grad is None  # view 1's large crops are detached targets
    assert views[1]["small"][0].grad is not None and views[1]["small"][1].grad is not None


def test_temporal_terms_mirror_the_spatial_ones():
    views = make_views(seed=1)
    c1, c2 = views
    loss, stats = stica_loss(views, 0, 0, 2, 2, crop_temperature=0.5, alpha=0.0, gather=no_gather)
    tltl = 0.5 * (nce_loss(c1["tlarge"][1], c2["tlarge"][1], None, 0.5)[0]
                  + nce_loss(c2["tlarge"][1], c1["tlarge"][1], None, 0.5)[0])
    tstl = [nce_loss(c2["tsmall"][j], c1["tlarge"][i], None, 0.5)[0] for i in range(2) for j in range(2)]
    assert torch.allclose(stats["loss_tltl"], tltl)
    assert torch.allclose(stats["loss_tstl"], sum(tstl) / 4)
    assert torch.allclose(loss, (tltl + sum(tstl)) / 5)
    loss.backward()
    assert c1["tlarge"][0].grad is None and c2["tlarge"][0].grad is None
    assert c1["tlarge"][1].grad is not None and c2["tlarge"][1].grad is not None  # through the TL-TL term
    assert all(t.grad is not None for t in c2["tsmall"]) and all(t.grad is None for t in c1["tsmall"])
    assert all(t.grad is None for t in c1["large"] + c2["large"] + c1["small"] + c2["small"])


def test_crop_loss_is_the_plain_mean_over_all_comparisons():
    views = make_views(n_large=2, n_small=3, n_tlarge=1, n_tsmall=1, seed=2)
    c1, c2 = views
    _, stats = stica_loss(views, 2, 3, 1, 1, crop_temperature=0.5, alpha=0.5, gather=no_gather)
    ll = contrastive(c2["large"][1], c1["large"][1], 0.5, gather=no_gather)[0]
    sl = [nce_loss(c2["small"][j], c1["large"][i], None, 0.5)[0] for i in range(2) for j in range(3)]
    tstl = nce_loss(c2["tsmall"][0], c1["tlarge"][0], None, 0.5)[0]
    assert active_crop_terms(2, 3, 1, 1) == {"ll": 1, "sl": 6, "tstl": 1}
    assert torch.allclose(stats["loss_crops"], (ll + sum(sl) + tstl) / 8)
    assert torch.allclose(stats["loss_sl"], sum(sl) / 6)


def test_cross_modal_term_and_final_weighting_hand_computed():
    def views():
        return [{"video": leaf(I2), "audio": leaf(I2), "large": [leaf(I2)], "small": [leaf(I2)], "tlarge": [],
                 "tsmall": []},
                {"video": leaf(I2), "audio": leaf(SWAP), "large": [None], "small": [leaf(SWAP)], "tlarge": [],
                 "tsmall": []}]

    # cross-modal at tau = 0.1: view 1 matches (log(1 + e^-10)), view 2 swapped (log(1 + e^10)), symmetric
    av = 0.5 * (math.log(1 + math.exp(-10)) + math.log(1 + math.exp(10)))
    crops = math.log(1 + math.exp(2))  # tau = 0.5, swapped small crop
    for alpha in (0.0, 0.25, 0.5):
        loss, stats = stica_loss(views(), 1, 1, 0, 0, crop_temperature=0.5, cross_modal_temperature=0.1,
                                 alpha=alpha, gather=no_gather)
        assert stats["loss_av"].item() == pytest.approx(av, abs=1e-5)
        assert stats["loss_crops"].item() == pytest.approx(crops, abs=1e-6)
        assert loss.item() == pytest.approx((1 - alpha) * crops + alpha * av, abs=1e-5)
    assert stats["acc_av"].item() == pytest.approx(0.5) and stats["acc_crops"].item() == 0.0
    # nce_acc: mean over the comparisons: the S-L crop (0), g(view 1) (1, both directions), g(view 2) (0)
    assert stats["nce_acc"].item() == pytest.approx((0 + 1 + 0) / 3)
    # cross-modal only: allowed with alpha = 1 and no crop term
    loss, stats = stica_loss(views(), 1, 0, 0, 0, alpha=1.0, gather=no_gather)
    assert loss.item() == pytest.approx(av, abs=1e-5) and stats["loss_crops"].item() == 0.0


def test_keys_are_gathered_from_all_processes_local_first():
    views = make_views(n_large=1, n_small=1, n_tlarge=0, n_tsmall=0, seed=3)
    c1, c2 = views
    others = {}
    gathered = []

    def fake_gather(t):
        gathered.append(t)
        others.setdefault(id(t), F.normalize(torch.randn(2, 4), dim=1))
        return others[id(t)]

    _, stats = stica_loss(views, 1, 1, 0, 0, crop_temperature=0.5, alpha=0.5, gather=fake_gather)
    assert gathered[0] is c1["large"][0]  # S-L gathers the large (key) crop, never the small queries
    assert not any(t is c2["small"][0] for t in gathered)
    keys = torch.cat([c1["large"][0], others[id(c1["large"][0])]])
    expected = F.cross_entropy(c2["small"][0] @ keys.t() / 0.5, torch.arange(3))
    assert torch.allclose(stats["loss_sl"], expected)
    # cross-modal: video and audio of both views are gathered (symmetric)
    for t in (c1["video"], c1["audio"], c2["video"], c2["audio"]):
        assert any(g is t for g in gathered)


def test_loss_rejects_missing_crops_and_bad_configs():
    views = make_views()
    views[1]["small"][1] = None
    with pytest.raises(ValueError, match="small crop 1 of view 2"):
        stica_loss(views, 2, 2, 0, 0, gather=no_gather)
    with pytest.raises(ValueError, match="STICA.NUM_LARGE_CROPS=1.*STICA.CROSS_MODAL_ALPHA"):
        STiCANCELoss(1, 0, 0, 0)
    with pytest.raises(ValueError, match="no STiCA crop term"):
        stica_loss(make_views(), 0, 4, 0, 1, alpha=0.5, gather=no_gather)
    with pytest.raises(ValueError, match="alpha"):
        STiCANCELoss(alpha=1.5)
    with pytest.raises(ValueError, match="at most 2"):
        STiCANCELoss(3, 1, 0, 0)
    assert STiCANCELoss(1, 0, 0, 0, alpha=1.0).terms == {}


def test_loss_with_the_model_output_is_finite_and_matches_function(tiny_batch):
    video, audio = tiny_batch
    torch.manual_seed(0)
    model = tiny_model(num_large_crops=1, num_small_crops=2, num_large_tcrops=2, num_small_tcrops=0)
    out = model(video, audio, generator=torch.Generator().manual_seed(1))
    loss_fn = STiCANCELoss(1, 2, 2, 0)
    loss, stats = loss_fn(out)
    assert torch.isfinite(loss)
    assert set(stats) == {"loss_crops", "loss_av", "loss_sl", "loss_tltl", "acc_crops", "acc_av", "nce_acc"}
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())
    ref, _ = stica_loss(out, 1, 2, 2, 0)
    assert torch.allclose(loss, ref)


# ---------------------------------------------------------------------------------------------------------------
# Config, registry, builder
# ---------------------------------------------------------------------------------------------------------------
def stica_cfg(width=8):
    cfg = get_cfg()
    cfg.MODEL.MODEL_NAME = "STiCA"
    cfg.MODEL.LOSS_FUNC = "stica_nce"
    cfg.RESNET.WIDTH_PER_GROUP = width
    cfg.GDT.EMBED_DIM = 16
    cfg.NUM_GPUS = 0
    cfg.TRAIN.BATCH_SIZE = 8
    cfg.TEST.BATCH_SIZE = 8
    return cfg


def test_default_stica_config_is_valid():
    cfg = assert_and_infer_cfg(stica_cfg())
    s = cfg.STICA
    assert (s.NUM_LARGE_CROPS, s.NUM_SMALL_CROPS, s.NUM_LARGE_TCROPS, s.NUM_SMALL_TCROPS) == (2, 4, 2, 1)
    assert (s.CROP_TEMPERATURE, s.CROSS_MODAL_TEMPERATURE, s.CROSS_MODAL_ALPHA) == (0.5, 0.1, 0.5)
    assert crop_sizes((4, 7, 7), s.SPATIAL_CROP_FRACS, s.TEMPORAL_CROP_FRACS) == crop_sizes((4, 7, 7))


@pytest.mark.parametrize("overrides, match", [
    (["STICA.NUM_LARGE_CROPS", 1, "STICA.NUM_SMALL_CROPS", 0, "STICA.NUM_LARGE_TCROPS", 0,
      "STICA.NUM_SMALL_TCROPS", 0], r"no STiCA crop term is active .*STICA.NUM_LARGE_CROPS.*STICA.CROSS_MODAL_ALPHA"),
    (["STICA.NUM_LARGE_CROPS", 0, "STICA.NUM_LARGE_TCROPS", 0], "no STiCA crop term"),
    (["STICA.NUM_LARGE_CROPS", 3], "at most 2 large crops"),
    (["STICA.CROSS_MODAL_ALPHA", 1.5], "STICA.CROSS_MODAL_ALPHA"),
    (["STICA.CROP_TEMPERATURE", 0.0], "STICA.CROP_TEMPERATURE"),
    (["STICA.SPATIAL_CROP_FRACS", [0.9]], "STICA.SPATIAL_CROP_FRACS"),
    (["STICA.NUM_LAYERS", 2, "STICA.NUM_HEADS", 5], "STICA.NUM_HEADS"),
    (["STICA.NUM_LAYERS", 2, "STICA.POSITIONAL_EMB", True, "STICA.MAX_POSITIONS", 2], "STICA.MAX_POSITIONS"),
    (["STICA.CROP_COMPAT", True, "DATA.TRAIN_CROP_SIZE", 64, "DATA.TRAIN_JITTER_SCALES", [64, 80]],
     "STICA.CROP_COMPAT"),
    (["STICA.CROP_COMPAT", True, "DATA.NUM_FRAMES", 48], "STICA.CROP_COMPAT"),
])
def test_invalid_stica_configs_are_rejected(overrides, match):
    cfg = stica_cfg()
    for key, value in zip(overrides[::2], overrides[1::2]):
        node, name = key.split(".")
        cfg[node][name] = value
    with pytest.raises(ConfigError, match=match):
        assert_and_infer_cfg(cfg)


def test_cross_modal_only_config_is_accepted():
    cfg = stica_cfg()
    cfg.STICA.NUM_LARGE_CROPS, cfg.STICA.NUM_SMALL_CROPS = 1, 0
    cfg.STICA.NUM_LARGE_TCROPS, cfg.STICA.NUM_SMALL_TCROPS = 0, 0
    cfg.STICA.CROSS_MODAL_ALPHA = 1.0
    assert_and_infer_cfg(cfg)
    assert LOSS_REGISTRY.get("stica_nce").from_cfg(cfg).terms == {}
    cfg.MODEL.MODEL_NAME = "GDT"  # STiCA checks only apply to STiCA
    cfg.STICA.CROSS_MODAL_ALPHA = 0.5
    assert_and_infer_cfg(cfg)


def test_registry_builder_and_cfg_forms(tiny_batch):
    assert MODEL_REGISTRY.get("STiCA") is STiCA
    assert LOSS_REGISTRY.get("stica_nce") is STiCANCELoss
    cfg = stica_cfg(width=8)
    cfg.STICA.NUM_LAYERS = 2
    cfg.STICA.NUM_SMALL_CROPS = 3
    model = build_model(cfg)
    assert isinstance(model, STiCA) and isinstance(model.pooling[2], TransformerPooling)
    assert model.pooling[2].transformer[0].ffn.lin1.weight.shape == (256, 64)  # 4 x (8 x width)
    assert model.mlp_v.block_forward[2].weight.shape == (64, 64)  # hidden 512 scaled by 8/64
    assert model.mlp_v.block_forward[8].weight.shape == (16, 64)
    assert model.num_crops == {"large": 2, "small": 3, "tlarge": 2, "tsmall": 1}
    a = on_meta(STiCA, cfg)
    assert describe(a) == describe(model)
    with pytest.raises(TypeError):
        STiCA(64)
    loss_fn = STiCANCELoss.from_cfg(cfg)
    assert (loss_fn.num_large, loss_fn.num_small, loss_fn.num_large_t, loss_fn.num_small_t) == (2, 3, 2, 1)
    assert (loss_fn.crop_temperature, loss_fn.cross_modal_temperature, loss_fn.alpha) == (0.5, 0.1, 0.5)
    video, audio = tiny_batch
    loss, _ = loss_fn(model(video, audio, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(loss)
