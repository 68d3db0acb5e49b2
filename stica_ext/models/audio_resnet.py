"""2-D ResNet audio backbones (ResNet-9 / ResNet-18) for log filterbank spectrograms (spec 1.3).

Parameter names follow the torchvision ResNet layout, so the ``audio_network.base.*`` entries of the released
GDT checkpoints load without a key map::

    conv1, bn1                                  Conv2d(1 -> width, 7x7, stride 2), BN (then ReLU, MaxPool 3x3/2)
    layer{1..4}.{b}.{conv1,bn1,conv2,bn2}       BasicBlock: 3x3 conv, BN, ReLU, 3x3 conv, BN
    layer{2,3,4}.0.downsample.{0,1}             1x1 conv (stride 2), BN
    fc                                          optional dead Linear(512 -> 1000) of the reference ResNet-9

The reference ResNet-9 keeps a 1000-way ``fc`` that is never executed; released checkpoints apparently lack it.
Here it exists only with ``with_dead_fc=True`` (to reproduce the reference key set) and is never called.
"""

import torch
import torch.nn as nn

__all__ = ["AudioResNet", "BasicBlock2d", "resnet9", "resnet18"]


class BasicBlock2d(nn.Module):
    """``ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x))``; the stride sits on ``conv1``."""

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class AudioResNet(nn.Module):
    """2-D ResNet on spectrograms (frequency = height, time = width).

    Args:
        layers: blocks per stage; ``(1, 1, 1, 1)`` = ResNet-9, ``(2, 2, 2, 2)`` = ResNet-18.
        width: width of stage 1; stages are ``width * (1, 2, 4, 8)`` (``64`` = published).
        in_channels: spectrogram channels (1).
        with_dead_fc: add the reference ResNet-9's unused ``fc`` (``Linear(8*width, 1000)``); never executed.

    Input ``B x 1 x F x T`` (e.g. ``40 x 99`` or ``257 x 99``); conv1 and maxpool each halve both axes (ceil),
    layer2-4 halve them again: ``40 x 99`` -> layer4 map ``8*width x 2 x 4``. Output ``B x out_dim``
    (``out_dim = 8 * width``, 512 at width 64).

    Initialisation: Kaiming-normal (fan_out, ReLU) for every conv except ``conv1``, which keeps PyTorch's default
    Conv2d init as in the reference (there it is swapped in after the init loop); BN weight 1, bias 0.
    """

    def __init__(self, layers=(1, 1, 1, 1), width=64, in_channels=1, with_dead_fc=False):
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must list 4 stage depths, got {layers}")
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_planes = width
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._make_layer(in_planes, planes, blocks, stride))
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_dim = in_planes
        self.width = width
        self.layers = tuple(layers)
        # Never executed; present only to reproduce the reference ResNet-9 state_dict (keys fc.weight, fc.bias).
        self.fc = nn.Linear(in_planes, 1000) if with_dead_fc else None
        if self.fc is not None:  # never executed: frozen so that optimisers and DDP ignore it
            self.fc.requires_grad_(False)
        self._init_weights()

    @staticmethod
    def _make_layer(in_planes, planes, blocks, stride):
        downsample = None
        if stride != 1 or in_planes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        mods = [BasicBlock2d(in_planes, planes, stride, downsample)]
        mods += [BasicBlock2d(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def zero_init_residual(self):
        """Set ``bn2.weight`` of every residual block to 0 (``RESNET.ZERO_INIT_FINAL_BN``)."""
        for m in self.modules():
            if isinstance(m, BasicBlock2d):
                nn.init.zeros_(m.bn2.weight)

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.conv1:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        """``B x 1 x F x T`` -> un-pooled layer4 map ``B x out_dim x F' x T'``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x):
        """Layer4 map ``B x C x F' x T'`` -> globally average-pooled ``B x C`` (batch axis always kept)."""
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
        """``B x 1 x F x T`` spectrogram -> pooled features ``B x out_dim``."""
        return self.forward_head(self.forward_features(x))


def resnet9(width=64, with_dead_fc=False):
    """ResNet-9 audio backbone (4,899,520 parameters at width 64; +513,000 with the dead fc)."""
    return AudioResNet(layers=(1, 1, 1, 1), width=width, with_dead_fc=with_dead_fc)


def resnet18(width=64):
    """ResNet-18 audio backbone (11,170,240 parameters at width 64; no fc)."""
    return AudioResNet(layers=(2, 2, 2, 2), width=width)
