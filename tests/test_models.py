"""Backbones, heads and the GDT model: checkpoint key layout, parameter counts, shapes, embeddings, builder.

Full-width models are built on the ``meta`` device (shapes only, no memory, no init cost); forwards use narrow widths
and tiny inputs so the whole file runs in seconds on a CPU.
"""

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from stica_ext.models import (
    GDT,
    AudioResNet,
    MLPHead,
    R2Plus1D,
    build_head,
    build_model,
    midplanes,
    r2plus1d_18,
    r2plus1d_34,
    resnet9,
    resnet18,
)
from stica_ext.models.r2plus1d import stem_midplanes
from stica_ext.registry import MODEL_REGISTRY

DATA = Path(__file__).parent / "data"


def read_fixture(name):
    """Lines ``name (d0,d1,...) dtype`` -> list of (name, shape tuple, dtype string)."""
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


# ---------------------------------------------------------------------------------------------------------------
# Released-checkpoint key layout (spec Appendix A.1, A.2, A.8)
# ---------------------------------------------------------------------------------------------------------------
A1 = "state_dict_gdt_r2plus1d18_resnet9_mlp.txt"
A2 = "state_dict_gdt_r2plus1d18_resnet9_linear.txt"
A8 = "state_dict_gdt_r2plus1d34_resnet18_mlp.txt"


def test_fixtures_have_the_spec_sizes():
    assert len(read_fixture(A1)) == 312
    assert len(read_fixture(A2)) == 300
    assert len(read_fixture(A8)) == 550


def test_state_dict_matches_reference_a1_with_dead_fc():
    model = on_meta(GDT, audio_dead_fc=True)
    assert describe(model) == read_fixture(A1)  # names, shapes, dtypes and order


def test_default_gdt_state_dict_is_reference_a1():
    model = on_meta(GDT)
    assert describe(model) == read_fixture(A1)
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("audio_network.base.fc."))


def test_state_dict_matches_reference_a1_without_dead_fc():
    model = on_meta(GDT, audio_dead_fc=False)
    expected = [r for r in read_fixture(A1) if not r[0].startswith("audio_network.base.fc.")]
    assert len(expected) == 310
    assert describe(model) == expected


def test_state_dict_matches_reference_a2_linear_heads():
    model = on_meta(GDT, use_mlp=False)
    assert describe(model) == read_fixture(A2)


def test_state_dict_matches_reference_a8_r2plus1d34_resnet18():
    model = on_meta(GDT, video_arch="r2plus1d_34", audio_arch="resnet18")
    assert describe(model) == read_fixture(A8)


def test_dead_fc_only_for_resnet9():
    with pytest.raises(ValueError, match="ResNet-9"):
        on_meta(GDT, audio_arch="resnet18", audio_dead_fc=True)


# ---------------------------------------------------------------------------------------------------------------
# Parameter counts (spec 1.2, 1.3, 1.4, Appendix A headers)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("factory, expected", [
    (r2plus1d_18, 31_300_125),
    (r2plus1d_34, 61_626_461),
    (resnet9, 4_899_520),
    (resnet18, 11_170_240),
])
def test_backbone_parameter_counts(factory, expected):
    assert n_params(on_meta(factory)) == expected


def test_dead_fc_and_head_parameter_counts():
    assert n_params(on_meta(resnet9, with_dead_fc=True)) == 4_899_520 + 513_000
    assert n_params(MLPHead(512)) == 394_496


@pytest.mark.parametrize("kwargs, expected", [
    (dict(audio_dead_fc=True), 37_501_637),
    (dict(use_mlp=False, audio_dead_fc=True), 36_975_301),
    (dict(video_arch="r2plus1d_34", audio_arch="resnet18"), 73_585_693),
])
def test_gdt_parameter_counts(kwargs, expected):
    assert n_params(on_meta(GDT, **kwargs)) == expected


# ---------------------------------------------------------------------------------------------------------------
# R(2+1)D structure
# ---------------------------------------------------------------------------------------------------------------
def test_midplanes_table():
    pairs = [(64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    assert [midplanes(i, o) for i, o in pairs] == [144, 230, 288, 460, 576, 921, 1152]


def test_midplanes_used_for_both_convs_of_each_block():
    net = on_meta(r2plus1d_34)
    for li, (cin, cout) in enumerate([(64, 64), (64, 128), (128, 256), (256, 512)], start=1):
        layer = getattr(net, f"layer{li}")
        for b, block in enumerate(layer):
            block_in = cin if b == 0 else cout
            mid = midplanes(block_in, cout)
            for conv in (block.conv1, block.conv2):
                assert conv[0][0].out_channels == mid and conv[0][3].in_channels == mid


def test_strides_and_kernels():
    net = on_meta(r2plus1d_18)
    assert net.stem[0].kernel_size == (1, 7, 7) and net.stem[0].stride == (1, 2, 2)
    assert net.stem[3].kernel_size == (3, 1, 1) and net.stem[3].stride == (1, 1, 1)
    assert net.layer1[0].downsample is None
    for li in (2, 3, 4):
        block = getattr(net, f"layer{li}")[0]
        assert block.conv1[0][0].stride == (1, 2, 2)
        assert block.conv1[0][3].stride == (2, 1, 1)
        assert block.downsample[0].stride == (2, 2, 2)
        assert getattr(net, f"layer{li}")[1].downsample is None
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv3d))


def test_narrow_width_scales_channels():
    net = on_meta(r2plus1d_18, width=16)
    assert stem_midplanes(64) == 45 and stem_midplanes(16) == 11
    assert net.stem[0].out_channels == 11 and net.stem[3].out_channels == 16
    assert [getattr(net, f"layer{i}")[-1].conv2[1].num_features for i in (1, 2, 3, 4)] == [16, 32, 64, 128]
    assert net.layer1[0].conv1[0][0].out_channels == midplanes(16, 16) == 36
    assert net.out_dim == 128
    audio = on_meta(resnet9, width=16)
    assert audio.conv1.out_channels == 16 and audio.layer4[0].bn2.num_features == 128 and audio.out_dim == 128
    model = on_meta(GDT, width=16, mlp_hidden_dim=128)
    assert model.feat_dim == 128
    assert model.mlp_v.block_forward[2].weight.shape == (128, 128)
    assert model.mlp_v.block_forward[8].weight.shape == (256, 128)


def test_initialisation():
    torch.manual_seed(0)
    net = r2plus1d_18(width=16)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm3d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    w = net.layer3[1].conv1[0][0].weight  # Conv3d(64 -> 144, 1x3x3): fan_out = 144 * 9
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / (w.shape[0] * 9)), rel=0.05)
    audio = resnet9(width=16)
    # conv1 keeps PyTorch's default init: uniform within 1/sqrt(fan_in), fan_in = 49
    assert audio.conv1.weight.abs().max().item() <= 1 / 7 + 1e-6
    w = audio.layer2[0].conv1.weight  # fan_out = 32 * 9
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / (32 * 9)), rel=0.1)
    for m in audio.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


# ---------------------------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------------------------
def test_video_layer4_map_for_published_clip_size():
    net = r2plus1d_18(width=4).eval()
    with torch.no_grad():
        fmap = net.forward_features(torch.randn(1, 3, 30, 112, 112))
    assert fmap.shape == (1, 32, 4, 7, 7)


@pytest.mark.parametrize("frames, t_out", [(30, 4), (32, 4), (60, 8), (90, 12), (120, 15)])
def test_video_layer4_time_length(frames, t_out):
    net = r2plus1d_18(width=4).eval()
    with torch.no_grad():
        fmap = net.forward_features(torch.randn(1, 3, frames, 16, 16))
    assert fmap.shape == (1, 32, t_out, 1, 1)


def test_video_tiny_clip_shapes():
    net = r2plus1d_18(width=16)
    x = torch.randn(2, 3, 8, 32, 32)
    fmap = net.forward_features(x)
    # time 8 -> 8 -> 4 -> 2 -> 1; space 32 -> 16 (stem) -> 16 -> 8 -> 4 -> 2
    assert fmap.shape == (2, 128, 1, 2, 2)
    assert net(x).shape == (2, 128)
    assert torch.allclose(net.forward_head(fmap), fmap.mean(dim=(2, 3, 4)), atol=1e-6)


@pytest.mark.parametrize("freq, frames, fmap_hw", [(40, 99, (2, 4)), (257, 99, (9, 4)), (257, 199, (9, 7))])
def test_audio_shapes(freq, frames, fmap_hw):
    net = resnet9(width=8).eval()
    with torch.no_grad():
        spec = torch.randn(2, 1, freq, frames)
        assert net.forward_features(spec).shape == (2, 64, *fmap_hw)
        assert net(spec).shape == (2, 64)


def test_resnet18_audio_shapes():
    net = resnet18(width=8)
    assert net(torch.randn(2, 1, 40, 99)).shape == (2, 64)


def test_batch_of_one_keeps_batch_axis():
    video = r2plus1d_18(width=8)
    assert video(torch.randn(1, 3, 8, 32, 32)).shape == (1, 64)
    audio = resnet9(width=8, with_dead_fc=True)
    assert audio(torch.randn(1, 1, 40, 99)).shape == (1, 64)
    model = GDT(width=8, mlp_hidden_dim=64).eval()  # eval: the head's BatchNorm1d needs B > 1 in training
    with torch.no_grad():
        zv, za = model(torch.randn(1, 3, 8, 32, 32), torch.randn(1, 1, 40, 99))
        assert zv.shape == (1, 256) and za.shape == (1, 256)
        assert model.video_features(torch.randn(1, 3, 8, 32, 32)).shape == (1, 64)


# ---------------------------------------------------------------------------------------------------------------
# Heads and GDT forward
# ---------------------------------------------------------------------------------------------------------------
def test_mlp_head_layout_and_linear_head():
    head = MLPHead(64, 32, hidden_dim=48, dropout=0.3)
    types = [type(m).__name__ for m in head.block_forward]
    assert types == ["Flatten", "Dropout", "Linear", "Unsqueeze", "BatchNorm1d", "Flatten", "ReLU", "Dropout", "Linear"]
    assert head.block_forward[2].bias is None and head.block_forward[8].bias is not None
    assert head.block_forward[1].p == 0.3 and head.block_forward[7].p == 0.3
    assert head(torch.randn(4, 64)).shape == (4, 32)
    assert head(torch.randn(4, 64, 1, 1, 1)).shape == (4, 32)  # index 0 flattens
    linear = build_head(64, 32, use_mlp=False)
    assert isinstance(linear, nn.Linear) and list(linear.state_dict()) == ["weight", "bias"]
    assert isinstance(build_head(64, 32, use_mlp=True, hidden_dim=48), MLPHead)


@pytest.fixture(scope="module")
def tiny_batch():
    torch.manual_seed(0)
    return torch.randn(2, 3, 8, 32, 32), torch.randn(2, 1, 40, 99)


def test_gdt_forward_unit_norm_embeddings(tiny_batch):
    video, audio = tiny_batch
    torch.manual_seed(0)
    model = GDT(width=16, mlp_hidden_dim=128)
    zv, za = model(video, audio)
    assert zv.shape == (2, 256) and za.shape == (2, 256)
    assert torch.allclose(zv.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(za.norm(dim=1), torch.ones(2), atol=1e-5)
    assert model.video_features(video).shape == (2, 128)
    assert model.audio_features(audio).shape == (2, 128)

    model.eval()
    with torch.no_grad():
        zv, za = model(video, audio)
        assert torch.allclose(model.encode_video(video), zv, atol=1e-6)
        assert torch.allclose(model.encode_audio(audio), za, atol=1e-6)
        fv, fa = model.forward_features(video, audio)
        assert torch.allclose(model.forward_head(fv, fa)[0], zv, atol=1e-6)


def test_gdt_without_norm_feat_is_not_normalised(tiny_batch):
    video, audio = tiny_batch
    torch.manual_seed(0)
    model = GDT(width=8, mlp_hidden_dim=64, norm_feat=False, use_mlp=False).eval()
    with torch.no_grad():
        zv, za = model(video, audio)
    assert zv.shape == (2, 256)
    assert not torch.allclose(zv.norm(dim=1), torch.ones(2), atol=1e-3)
    assert torch.allclose(zv, model.mlp_v(model.video_features(video)))


def test_gdt_backward_reaches_every_used_parameter(tiny_batch):
    video, audio = tiny_batch
    model = GDT(width=8, mlp_hidden_dim=64, audio_dead_fc=True)
    zv, za = model(video, audio)
    (zv * za).sum().backward()
    for name, p in model.named_parameters():
        if name.startswith("audio_network.base.fc."):
            assert p.grad is None, name  # the dead fc is never executed
        else:
            assert p.grad is not None, name


# ---------------------------------------------------------------------------------------------------------------
# Config and registry
# ---------------------------------------------------------------------------------------------------------------
def small_cfg(width=16):
    try:
        from stica_ext.config import get_cfg

        cfg = get_cfg()
    except Exception:  # the project config may be unavailable; build the keys GDT reads
        from fvcore.common.config import CfgNode

        cfg = CfgNode()
        cfg.MODEL = CfgNode({"MODEL_NAME": "GDT", "ARCH": "r2plus1d_18"})
        cfg.AUDIO = CfgNode({"ARCH": "resnet9"})
        cfg.RESNET = CfgNode({"WIDTH_PER_GROUP": 64})
        cfg.GDT = CfgNode({"EMBED_DIM": 256, "USE_MLP": True, "MLP_HIDDEN_DIM": 512, "MLP_DROPOUT": 0.3,
                           "NORM_FEAT": True})
    cfg.RESNET.WIDTH_PER_GROUP = width
    cfg.GDT.EMBED_DIM = 32
    return cfg


def test_registry_has_gdt():
    assert MODEL_REGISTRY.get("GDT") is GDT


def test_build_model_from_cfg(tiny_batch):
    cfg = small_cfg(width=16)
    model = build_model(cfg)
    assert isinstance(model, GDT)
    assert model.feat_dim == 128
    assert model.mlp_v.block_forward[2].weight.shape == (128, 128)  # hidden 512 scaled by 16/64
    assert model.mlp_a.block_forward[8].weight.shape == (32, 128)
    assert model.state_dict()["audio_network.base.fc.weight"].shape == (1000, 128)  # dead fc kept, frozen
    assert not model.audio_network.base.fc.weight.requires_grad
    zv, za = model(*tiny_batch)
    assert zv.shape == (2, 32) and za.shape == (2, 32)


def test_multi_view_forward_runs_each_view_as_its_own_batch(tiny_batch):
    torch.manual_seed(0)
    model = GDT(width=8, mlp_hidden_dim=64, embed_dim=16).train()
    video, audio = tiny_batch
    video2 = torch.randn_like(video) * 3 + 1  # a differently distributed second view
    audio2 = torch.randn_like(audio)
    zv, za = model(torch.stack([video, video2], 1), torch.stack([audio, audio2], 1))
    assert zv.shape == (2, 2, 16) and za.shape == (2, 2, 16)
    # per-view BatchNorm statistics: identical to forwarding each view pair separately in train mode
    torch.manual_seed(0)
    ref = GDT(width=8, mlp_hidden_dim=64, embed_dim=16).train()
    ref.load_state_dict(model.state_dict())
    for m in list(model.modules()) + list(ref.modules()):
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    zv, za = model(torch.stack([video, video2], 1), torch.stack([audio, audio2], 1))
    for i, (v, a) in enumerate([(video, audio), (video2, audio2)]):
        rv, ra = ref(v, a)
        assert torch.allclose(zv[:, i], rv, atol=1e-5) and torch.allclose(za[:, i], ra, atol=1e-5)
    with pytest.raises(ValueError, match="same"):
        model(torch.stack([video, video2], 1), audio.unsqueeze(1))


def test_cfg_positional_form_equals_from_cfg():
    cfg = small_cfg(width=8)
    cfg.MODEL.ARCH = "r2plus1d_34"
    cfg.AUDIO.ARCH = "resnet18"
    cfg.GDT.USE_MLP = False
    a = on_meta(GDT, cfg)
    b = on_meta(GDT.from_cfg, cfg)
    assert describe(a) == describe(b)
    assert len(a.video_network.base.layer3) == 6 and len(a.audio_network.base.layer1) == 2
    assert isinstance(a.mlp_v, nn.Linear) and a.mlp_v.weight.shape == (32, 64)
    with pytest.raises(TypeError):
        GDT(64)


def test_build_model_unknown_name():
    with pytest.raises(KeyError, match="NotAModel"):
        build_model(small_cfg(), name="NotAModel")


def test_backbone_classes_exported():
    assert isinstance(on_meta(r2plus1d_18), R2Plus1D)
    assert isinstance(on_meta(resnet18), AudioResNet)


def test_temporal_conv_weight_grad_under_cpu_bf16_autocast_is_finite():
    """A 2-frame temporal conv (the shape that trips the CPU bf16 kernel) still gets the float32 gradient."""
    from stica_ext.models.r2plus1d import TemporalConv3d

    torch.manual_seed(0)
    conv = TemporalConv3d(32, 32, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False)
    x = torch.randn(2, 32, 2, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv(x).float().sum().backward()
    g_amp = conv.weight.grad.clone()
    conv.weight.grad = None
    conv(x).sum().backward()
    assert torch.isfinite(g_amp).all()
    torch.testing.assert_close(g_amp, conv.weight.grad, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # other clip lengths keep bf16 compute
        assert conv(torch.randn(2, 32, 4, 6, 6)).dtype == torch.bfloat16
