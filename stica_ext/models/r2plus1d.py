"""R(2+1)D video backbones (R(2+1)D-18 / R(2+1)D-34), written with plain ``torch.nn``.

The module tree and parameter names follow spec section 1.2 exactly, so the ``video_network.base.*`` entries of
the released GDT checkpoints (spec Appendix A.1) load without any key map::

    stem.{0..5}                                   Conv3d(1x7x7) BN ReLU Conv3d(3x1x1) BN ReLU
    layer{1..4}.{b}.conv1.0.{0,1,2,3}             (2+1)D conv: spatial Conv3d, BN, ReLU, temporal Conv3d
    layer{1..4}.{b}.conv1.{1,2}                   block BN, ReLU
    layer{1..4}.{b}.conv2.0.{0,1,2,3} / conv2.1   second (2+1)D conv, block BN
    layer{2,3,4}.0.downsample.{0,1}               1x1x1 Conv3d (stride 2 in time and space), BN

``width`` scales every channel count: ``width=64`` is the published network (stage widths 64/128/256/512, stem
mid channels 45, 512-d output); smaller widths give narrow networks for CPU demos and tests.
"""

import torch
import torch.nn as nn

__all__ = [
    "R2Plus1D",
    "Conv2Plus1D",
    "BasicBlock2Plus1D",
    "midplanes",
    "stem_midplanes",
    "r2plus1d_18",
    "r2plus1d_34",
    "TemporalConv3d",
]


class TemporalConv3d(nn.Conv3d):
    """``nn.Conv3d`` for the ``3x1x1`` temporal convolutions (same parameters and state-dict names).

    Works around a CPU kernel fault: under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the weight gradient of
    a temporal conv (kernel 3, padding 1, stride 1) over a clip of exactly 2 feature frames comes back as
    inf / NaN for 16 or more channels (measured with torch 2.13). Those few small convolutions run in float32 on
    the CPU; every other case (and every GPU case) is an ordinary ``Conv3d``.
    """

    def forward(self, x):
        if x.device.type == "cpu" and x.shape[2] == 2 and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def midplanes(in_planes, out_planes):
    """Hidden width of a (2+1)D conv: ``floor(in * out * 27 / (9 * in + 3 * out))``.

    Computed once per block from the block's input and output widths and used for both of its convolutions
    (64->64: 144, 64->128: 230, 128->128: 288, 128->256: 460, 256->256: 576, 256->512: 921, 512->512: 1152).
    """
    return (in_planes * out_planes * 27) // (9 * in_planes + 3 * out_planes)


def stem_midplanes(width):
    """Stem hidden width: 45 at ``width=64``, scaled proportionally and rounded half up (e.g. 16 -> 11, 32 -> 23)."""
    return max(1, int(45 * width / 64 + 0.5))


class Conv2Plus1D(nn.Sequential):
    """Factorised 3-D conv: spatial ``1x3x3`` conv to ``mid`` channels, BN, ReLU, temporal ``3x1x1`` conv.

    Indices ``0`` (spatial conv, stride ``(1, s, s)``), ``1`` (BN), ``2`` (ReLU), ``3`` (temporal conv, stride
    ``(s, 1, 1)``). Input ``B x in x T x H x W`` -> output ``B x out x ceil(T/s) x ceil(H/s) x ceil(W/s)``.
    """

    def __init__(self, in_planes, out_planes, mid_planes, stride=1):
        super().__init__(
            nn.Conv3d(in_planes, mid_planes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                      padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid_planes),
            nn.ReLU(inplace=True),
            TemporalConv3d(mid_planes, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1),
                      padding=(1, 0, 0), bias=False),
        )


class BasicBlock2Plus1D(nn.Module):
    """Residual block ``ReLU(conv2(conv1(x)) + shortcut(x))`` with two (2+1)D convs.

    ``conv1 = [Conv2Plus1D(in, planes, mid, stride), BN, ReLU]``, ``conv2 = [Conv2Plus1D(planes, planes, mid, 1), BN]``
    with ``mid = midplanes(in, planes)``; ``downsample = [Conv3d 1x1x1 stride (s, s, s), BN]`` when given.
    """

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        mid = midplanes(in_planes, planes)
        self.conv1 = nn.Sequential(
            Conv2Plus1D(in_planes, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, mid, 1), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        return self.relu(out + shortcut)


class R2Plus1D(nn.Module):
    """R(2+1)D ResNet video backbone (spec 1.2).

    Args:
        layers: blocks per stage; ``(2, 2, 2, 2)`` = R(2+1)D-18, ``(3, 4, 6, 3)`` = R(2+1)D-34.
        width: width of stage 1; stages are ``width * (1, 2, 4, 8)`` and the stem's hidden width is
            :func:`stem_midplanes` ``(width)``. ``64`` is the published network.
        in_channels: input channels (3 for RGB).

    Input ``B x 3 x T x H x W``. Time and space are halved (ceil) by each of layer2-4; for ``3 x 30 x 112 x 112``
    the layer4 map is ``8*width x 4 x 7 x 7``. ``out_dim = 8 * width`` (512 at width 64).
    """

    def __init__(self, layers=(2, 2, 2, 2), width=64, in_channels=3):
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must list 4 stage depths, got {layers}")
        widths = [width, 2 * width, 4 * width, 8 * width]
        stem_mid = stem_midplanes(width)
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid),
            nn.ReLU(inplace=True),
            TemporalConv3d(stem_mid, width, kernel_size=(3, 1, 1), stride=1, padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
        in_planes = width
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._make_layer(in_planes, planes, blocks, stride))
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.out_dim = in_planes
        self.width = width
        self.layers = tuple(layers)
        self._init_weights()

    @staticmethod
    def _make_layer(in_planes, planes, blocks, stride):
        downsample = None
        if stride != 1 or in_planes != planes:
            downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm3d(planes))
        mods = [BasicBlock2Plus1D(in_planes, planes, stride, downsample)]
        mods += [BasicBlock2Plus1D(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def zero_init_residual(self):
        """Set the weight of the last BatchNorm of every residual block to 0, so each block starts as the identity
        (``RESNET.ZERO_INIT_FINAL_BN``; trains faster from scratch)."""
        for m in self.modules():
            if isinstance(m, BasicBlock2Plus1D):
                nn.init.zeros_(m.conv2[1].weight)

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        """``B x 3 x T x H x W`` -> un-pooled layer4 map ``B x out_dim x T' x H' x W'``."""
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x):
        """Layer4 map ``B x C x T' x H' x W'`` -> globally average-pooled ``B x C`` (batch axis always kept)."""
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
        """``B x 3 x T x H x W`` -> pooled features ``B x out_dim``."""
        return self.forward_head(self.forward_features(x))


def r2plus1d_18(width=64):
    """R(2+1)D-18 (31,300,125 parameters at width 64). No pretrained-weight download (load checkpoints explicitly)."""
    return R2Plus1D(layers=(2, 2, 2, 2), width=width)


def r2plus1d_34(width=64):
    """R(2+1)D-34 (61,626,461 parameters at width 64)."""
    return R2Plus1D(layers=(3, 4, 6, 3), width=width)
